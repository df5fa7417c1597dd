"""FADRM's data-residual recovery (reference-frontier.md §4.2): SRe2L's class-balanced batches,
one IPC index each, optimised in stages at their own image sizes (ImageNet: 200, 224, 200, 224).

Each stage starts a fresh Adam on the current images; the lr follows one cosine over the sum of
the stages' budgets, and the teachers (FADRM+: three or four, FADRM: one) take turns one a step
on a counter that runs across stages. Between stages the images are resized to the next size
and mixed toward their start, x <- alpha * x + (1 - alpha) * resize(start): the "data residual"
that keeps real-image content the BN and CE terms would otherwise wash out. The last stage runs
at the data's size, so the saved image is the last iterate at full resolution.
"""

from __future__ import annotations

import random

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ddflow.data.pixels import Normalizer
from ddflow.recover.augment import RecoverAugment
from ddflow.recover.bn_loss import BNStatLoss
from ddflow.recover.by_index import bn_members, recover_each_index
from ddflow.recover.loop import recover_batch
from ddflow.recover.resume import ShardResume
from ddflow.recover.shards import Shard


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """The released scripts' F.interpolate(bilinear, align_corners=False); identity at size."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def residual_mix(x: torch.Tensor, start: torch.Tensor, size: int, alpha: float) -> torch.Tensor:
    """The images entering the next stage: alpha of the recovered ones, the rest the start."""
    return alpha * resize(x, size) + (1 - alpha) * resize(start, size)


def recover_staged(
    teachers: list[tuple[nn.Module, BNStatLoss]],
    start: torch.Tensor,
    labels: torch.Tensor,
    method: dict,
    augment: RecoverAugment,
    bounds,
    seed: int,
    log_every: int,
    tag: str,
    resume: tuple[ShardResume, int] | None = None,
    report=None,
) -> torch.Tensor:
    """One batch through every stage; `start` is the full-size start image (normalized)."""
    sizes, budgets = method["stage_sizes"], method["stage_iterations"]
    total, offset = sum(budgets), 0
    rng = random.Random(seed)
    x = resize(start, sizes[0])
    for k, budget in enumerate(budgets):
        x = recover_batch(
            teachers[0][0], teachers[0][1], x, labels, iterations=budget, lr=method["lr"],
            r_bn=method["r_bn"], augment=augment, bounds=bounds, rng=rng,
            precision=method["precision"], log_every=log_every, tag=f"{tag} stage {k}",
            teachers=teachers, teacher_at=lambda step: step % len(teachers),
            window=(offset, total),
            resume=(resume[0], resume[1] * len(sizes) + k) if resume else None,
            report=(lambda step, m, o=offset: report(o + step, m)) if report else None,
        )  # fmt: skip
        offset += budget
        if k + 1 < len(sizes):
            x = residual_mix(x, start, sizes[k + 1], method["residual"])
    return x


def recover_fadrm_shard(
    teachers: list[nn.Module],
    norm: Normalizer,
    chw: tuple[int, int, int],
    method: dict,
    stage_id: str,
    shard: Shard,
    device: torch.device,
    log_every: int = 100,
    init_fn=None,
    resume: ShardResume | None = None,
) -> dict[str, np.ndarray]:
    """The shard's class block at each of its IPC indices, one staged batch an index."""
    if method["stage_sizes"][-1] != chw[-1]:
        raise ValueError(
            f"stage_sizes ends at {method['stage_sizes'][-1]} px, the data is {chw[-1]} px: the "
            "last stage must run at the data's size (the saved images are its iterates)"
        )
    augment = RecoverAugment.from_method(method)
    labels = torch.arange(shard.c0, shard.c1, device=device)
    with bn_members(teachers, method, device) as pairs:

        def recover_one(i, x0, seed, resume_at, report):
            return recover_staged(
                pairs, x0.to(device), labels, method, augment, norm.bounds(), seed, log_every,
                f"c{shard.c0}-{shard.c1} ipc {i}", resume_at, report,
            )  # fmt: skip

        total = sum(method["stage_iterations"])
        return recover_each_index(
            shard, method, stage_id, chw, norm, total, recover_one, init_fn, resume
        )
