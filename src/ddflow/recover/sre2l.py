"""SRe2L recovery of one shard: class-balanced batches, one image per class per IPC index."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn

from ddflow.data.pixels import Normalizer
from ddflow.recover.augment import RecoverAugment
from ddflow.recover.bn_loss import BNStatLoss
from ddflow.recover.init import gaussian_init
from ddflow.recover.loop import freeze, recover_batch
from ddflow.recover.shards import Shard, batch_seed


def recover_shard(
    teacher: nn.Module,
    norm: Normalizer,
    chw: tuple[int, int, int],
    method: dict,
    stage_id: str,
    shard: Shard,
    device: torch.device,
    log_every: int = 100,
) -> dict[str, np.ndarray]:
    """Images (uint8 NHWC), labels and IPC indices of every (class, IPC index) in the shard."""
    teacher = freeze(teacher.to(device))
    bn = BNStatLoss(teacher, method["first_bn_multiplier"])
    augment = RecoverAugment.from_method(method)
    labels = torch.arange(shard.c0, shard.c1, device=device)
    out = {"images": [], "labels": [], "ipc_index": []}
    try:
        for ipc_index in range(shard.i0, shard.i1):
            seed = batch_seed(stage_id, shard.c0, ipc_index) ^ method["seed"]
            x0 = gaussian_init(len(labels), chw, seed).to(device)
            x = recover_batch(
                teacher,
                bn,
                x0,
                labels,
                iterations=method["iterations"],
                lr=method["lr"],
                r_bn=method["r_bn"],
                augment=augment,
                bounds=norm.bounds(),
                rng=random.Random(seed),
                log_every=log_every,
                tag=f"{shard.name} ipc {ipc_index}",
            )
            out["images"].append(norm.to_uint8(x))
            out["labels"].append(labels.cpu().numpy())
            out["ipc_index"].append(np.full(len(labels), ipc_index))
    finally:
        bn.remove()
    return {k: np.concatenate(v) for k, v in out.items()}
