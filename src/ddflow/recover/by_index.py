"""The shard skeleton of the kinds that recover one class-balanced batch per IPC index with a list
of BatchNorm teachers (committee: CV-DD, fadrm: FADRM(+)): each index's start and seed, resuming
the indices a killed job finished, progress over the whole shard, and the index-major arrays.
The kinds differ only in how one batch is optimised (`recover_one`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

from ddflow.data.pixels import Normalizer
from ddflow.progress import Tracker
from ddflow.recover.bn_loss import BNStatLoss, NoBNStats, member_bn_loss
from ddflow.recover.init import gaussian_init
from ddflow.recover.loop import freeze
from ddflow.recover.resume import ShardResume
from ddflow.recover.shards import Shard, batch_seed, index_major


@contextlib.contextmanager
def bn_members(
    teachers: list[nn.Module], method: dict, device: torch.device
) -> Iterator[list[tuple[nn.Module, BNStatLoss | NoBNStats]]]:
    """Frozen teachers on the device, each with its BatchNorm term; the hooks go on exit."""
    teachers = [freeze(t.to(device)) for t in teachers]
    stats = [member_bn_loss(t, method["first_bn_multiplier"]) for t in teachers]
    try:
        yield list(zip(teachers, stats))
    finally:
        for s in stats:
            s.remove()


def recover_each_index(
    shard: Shard,
    method: dict,
    stage_id: str,
    chw: tuple[int, int, int],
    norm: Normalizer,
    steps: int,
    recover_one: Callable[..., torch.Tensor],
    init_fn=None,
    resume: ShardResume | None = None,
) -> dict[str, np.ndarray]:
    """`recover_one(i, x0, seed, resume_at, report)` optimises IPC index i's batch of the shard's
    classes from its start `x0` (normalized) in `steps` steps and returns it."""
    c0, c1 = shard.c0, shard.c1
    images = {i: resume.finished(i) for i in range(shard.i0, shard.i1)} if resume else {}
    todo = [i for i in range(shard.i0, shard.i1) if images.get(i) is None]
    tracker = Tracker(f"shard {shard.name}", len(todo) * steps, "step")
    for n, i in enumerate(todo):
        seed = batch_seed(stage_id, c0, i) ^ method["seed"]
        x0 = gaussian_init(c1 - c0, chw, seed) if init_fn is None else init_fn(c0, c1, i)

        def report(step, metrics, offset=n * steps):
            tracker.update(offset + step, **metrics)

        x = recover_one(i, x0, seed, (resume, i) if resume else None, report)
        images[i] = norm.to_uint8(x)
        if resume:
            resume.finish(i, images[i])
    return index_major(images, shard, steps)
