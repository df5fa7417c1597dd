"""DELT recovery of one shard: class-major batches from teacher-selected real images, EarlyLate.

A shard is one batch: the IPC images of each of `batch_images // ipc` consecutive classes,
in selection order (reference-algorithms.md §4.2). Its seed depends on (stage id, first class).
"""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn

from ddflow.data.pixels import Normalizer
from ddflow.progress import Tracker
from ddflow.recover.augment import RecoverAugment
from ddflow.recover.bn_loss import BNStatLoss
from ddflow.recover.early_late import image_groups, iterations_per_image
from ddflow.recover.loop import freeze, recover_batch
from ddflow.recover.resume import ShardResume
from ddflow.recover.shards import Shard, batch_seed


def recover_delt_shard(
    teacher: nn.Module,
    norm: Normalizer,
    init: torch.Tensor,
    method: dict,
    stage_id: str,
    shard: Shard,
    device: torch.device,
    log_every: int = 100,
    resume: ShardResume | None = None,
    bn: BNStatLoss | None = None,
    extra=None,
) -> dict[str, np.ndarray]:
    """`init`: normalized (n_classes * ipc, C, H, W), class-major, each class in selection order;
    `bn` another statistics target on the teacher (LPLD's class rows), `extra(xa, labels)` a term
    added to the loss (recover_batch)."""
    ipc = shard.i1 - shard.i0
    mi, ri = method["iterations"], method["round_iterations"]
    groups = np.tile(image_groups(ipc, mi, ri, method["early_late"]), shard.c1 - shard.c0)
    rounds = int(groups.max()) + 1
    active = [torch.as_tensor(np.flatnonzero(groups <= r), device=device) for r in range(rounds)]

    def active_at(step: int) -> torch.Tensor | None:
        r = step // ri
        return active[r] if r < rounds - 1 else None

    teacher = freeze(teacher.to(device))
    labels = torch.arange(shard.c0, shard.c1, device=device).repeat_interleave(ipc)
    seed = batch_seed(stage_id, shard.c0, 0) ^ method["seed"]
    bn = bn or BNStatLoss(teacher, method["first_bn_multiplier"])
    tracker = Tracker(f"shard {shard.name}", mi, "step")
    try:
        x = recover_batch(
            teacher,
            bn,
            init.to(device),
            labels,
            iterations=mi,
            lr=method["lr"],
            r_bn=method["r_bn"],
            augment=RecoverAugment.from_method(method),
            bounds=norm.bounds(),
            rng=random.Random(seed),
            precision=method["precision"],
            log_every=log_every,
            tag=shard.name,
            active_at=active_at if rounds > 1 else None,
            resume=(resume, 0) if resume else None,
            report=lambda step, metrics: tracker.update(step, **metrics),
            extra=extra,
        )
    finally:
        bn.remove()
    return {
        "images": norm.to_uint8(x),
        "labels": labels.cpu().numpy(),
        "ipc_index": np.tile(np.arange(ipc), shard.c1 - shard.c0),
        "iterations": iterations_per_image(groups, mi, ri),
    }
