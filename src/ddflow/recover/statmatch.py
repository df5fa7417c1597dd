"""Multi-teacher statistics recovery (G-VBSM, EDC: reference-frontier.md §1.3, §2.4), on the
shared loop (recover/loop.py) with the loss terms of recover/terms.py.

The authors order every (class, IPC index) pair class-major, cut that list into global batches
of `batch_size`, and split each batch over their GPUs, each device matching statistics over its
own sub-batch with no SyncBN. Here one device runs a global batch as `stat_group`-sized chunks
with their own statistics, EMA states, drops and augmentation draws (exactly the per-device
algorithm), and the eigen-spectrum term over the whole batch as the authors gather it. A shard
is a run of whole global batches: its class block times IPC is a multiple of the batch size.

Teachers take turns, one a step, from a counter that runs across batches, as each device's
counter does; it is computed from the batch's place in the global order, so an image does not
depend on how batches are grouped into shards. The EMA states of the statistics, which the
released scripts carry from one batch to the next, start afresh with each batch here, for the
same reason: a carried state weighs alpha^k after k steps (0.4: under 1e-4 after 10 of 4,000
steps; 0.8: after 42 of 1,000).
"""

from __future__ import annotations

import math
import random

import numpy as np
import torch
from torch import nn

from ddflow.data.pixels import Normalizer
from ddflow.progress import Tracker
from ddflow.recover.augment import RecoverAugment
from ddflow.recover.loop import recover_batch
from ddflow.recover.shards import Shard, batch_seed
from ddflow.recover.terms import StatMatch, dd_spectrum


def classes_per_shard(ipc: int, batch_size: int, batches: int) -> int:
    """Whole classes whose IPC images fill whole global batches (`batches` of them at least)."""
    return max(1, math.lcm(ipc, batch_size) // ipc) * max(1, batches * batch_size //
                                                            math.lcm(ipc, batch_size))  # fmt: skip


def group_sizes(n: int, group: int) -> tuple[int, ...]:
    """A global batch over the authors' devices: `group` images each, the last one the rest."""
    return tuple(min(group, n - s) for s in range(0, n, group))


def real_starts(images, labels: np.ndarray, shard: Shard, norm: Normalizer, stage_id: str,
                seed: int) -> torch.Tensor:  # fmt: skip
    """EDC's starts: each synthetic image one image of its class from the pool (the training
    set, or a start set's images), drawn uniformly with replacement (so some start from the same
    one, as released), randomly flipped; each draw seeded by its (class, IPC index), whatever
    the shard."""
    from ddflow.data.files import take

    rows, flips = [], []
    for c in range(shard.c0, shard.c1):
        pool = np.flatnonzero(labels == c)
        for i in range(shard.i0, shard.i1):
            rng = random.Random(f"{stage_id}/{seed}/real/{c}/{i}")
            rows.append(pool[rng.randrange(len(pool))])
            flips.append(rng.random() < 0.5)
    x = norm.to_tensor(np.asarray(take(images, np.asarray(rows))[:]))
    return torch.where(torch.as_tensor(flips).view(-1, 1, 1, 1), x.flip(-1), x)


def stat_losses(teachers, method: dict, stats: list[dict], rng: random.Random) -> list:
    """One StatMatch a teacher, configured by the method's terms."""
    return [
        StatMatch(
            t,
            bn=True,
            conv=method["conv_stats"],
            targets=s,
            patch=method["patch"],
            class_weight=method["class_weight"],
            class_patch_keys=method["class_patch_keys"],
            ema_alpha=method["ema_alpha"],
            ema_first=method["ema_first"],
            drop_rate=method["drop_rate"],
            first_multiplier=method["first_multiplier"],
            rng=rng,
        )  # fmt: skip
        for t, s in zip(teachers, stats)
    ]


def recover_statmatch_shard(
    teachers: list[nn.Module],
    stats: list[dict],
    norm: Normalizer,
    chw: tuple[int, int, int],
    method: dict,
    stage_id: str,
    shard: Shard,
    device: torch.device,
    log_every: int,
    init: torch.Tensor | None,
    resume=None,
) -> dict[str, np.ndarray]:
    """A shard's images (class-major), labels, IPC indices and iterations."""
    ipc, bs = shard.i1 - shard.i0, method["batch_size"]
    classes = np.repeat(np.arange(shard.c0, shard.c1), ipc)
    index = np.tile(np.arange(ipc), shard.c1 - shard.c0)
    first_batch = shard.c0 * ipc // bs  # this shard's first global batch
    rng = random.Random(batch_seed(stage_id, shard.c0, 0) ^ method["seed"])
    losses = stat_losses(teachers, method, stats, rng)
    pairs = list(zip(teachers, losses))
    augment = RecoverAugment.from_method(method)
    lo, hi = norm.bounds()
    dd, tau = method["dd_weight"], method["tau"]
    spectrum = (lambda xa, y: dd * dd_spectrum(xa, y, tau)) if dd else None
    out = []
    tracker = Tracker(f"shard {shard.name}", math.ceil(len(classes) / bs), "batch")
    try:
        for b, s in enumerate(range(0, len(classes), bs)):
            rows = slice(s, s + bs)
            sizes = group_sizes(len(classes[rows]), method["stat_group"])
            g = first_batch + b
            seeds = [batch_seed(stage_id, g, d) ^ method["seed"] for d in range(len(sizes))]
            if init is None:
                gen = torch.Generator().manual_seed(seeds[0])
                x0 = torch.randn(len(classes[rows]), *chw, generator=gen)
            else:
                x0 = init[rows]
            for loss in losses:
                loss.reset()
            counter = g * method["iterations"]
            x = recover_batch(
                None, None, x0.to(device), torch.as_tensor(classes[rows], device=device),
                iterations=method["iterations"], lr=method["lr"], r_bn=method["r_bn"],
                augment=augment, bounds=(lo, hi), rng=[random.Random(v) for v in seeds],
                log_every=log_every, tag=f"{shard.name} batch {b}", sizes=sizes, teachers=pairs,
                teacher_at=lambda step, c=counter: (c + step) % len(pairs),
                extra=spectrum,
                precision=method["precision"],
            )  # fmt: skip
            out.append(norm.to_uint8(x))
            tracker.update(b + 1)
    finally:
        for loss in losses:
            loss.remove()
    return {
        "images": np.concatenate(out),
        "labels": classes.astype(np.int64),
        "ipc_index": index.astype(np.int64),
        "iterations": np.full(len(classes), method["iterations"], np.int64),
    }
