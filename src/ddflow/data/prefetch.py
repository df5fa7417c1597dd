"""Batches prepared ahead of compute: decoding (file storage), RandAugment and the host-to-device
copy of batch k+1 run while batch k trains.

One background thread prepares the batches in order (file decoding itself fans out over
`ImageFiles.workers` threads; PIL releases the GIL), at most `depth` ahead, so memory stays
bounded and every random draw a batch's preparation makes happens in the same order as without
prefetching. On CUDA the prepared host tensors are pinned, so their copy is asynchronous.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T")
R = TypeVar("R")

DEPTH = 2  # batches prepared ahead of the one training


def prefetch(items: Iterable[T], load: Callable[[T], R], depth: int = DEPTH) -> Iterator[R]:
    """load(item) for each item, in order, up to `depth` items ahead in one background thread;
    an exception raised by a load surfaces when its item is reached."""
    items = iter(items)
    with ThreadPoolExecutor(1, thread_name_prefix="ddflow-prefetch") as pool:
        pending = deque(pool.submit(load, item) for _, item in zip(range(depth), items))
        try:
            while pending:
                ready = pending.popleft().result()
                for item in items:
                    pending.append(pool.submit(load, item))
                    break
                yield ready
        finally:
            for future in pending:  # a consumer that stops early leaves nothing running
                future.cancel()


def batches(
    images, batch_size: int, device: torch.device, task: str | None = None
) -> Iterator[tuple[int, torch.Tensor]]:
    """(start, uint8 host batch) for consecutive batches of `images` (an array or ImageFiles), the
    next ones decoded while the caller computes on this one. With `task`, a pass that reports
    its progress (log and metrics, so `ddflow status` shows it) as it goes."""
    from ddflow.progress import Tracker

    starts = range(0, len(images), batch_size)
    tracker = Tracker(task, len(images), "image") if task else None

    def load(s: int) -> torch.Tensor:
        return host_batch(images[s : s + batch_size], device)

    for s, batch in zip(starts, prefetch(starts, load)):
        yield s, batch
        if tracker:
            tracker.update(min(s + batch_size, len(images)))


def host_batch(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 images as a CPU tensor, pinned when they go to a CUDA device."""
    t = torch.from_numpy(np.ascontiguousarray(images))
    return t.pin_memory() if device.type == "cuda" else t
