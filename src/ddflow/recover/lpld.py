"""LPLD recovery of one class (reference-frontier.md §3.2): SRe2L's loop on a batch of the class's
IPC images from Gaussian noise, its BatchNorm term matched to the class's rows of the teacher's
class-aware statistics (recover/stats.py with `class_bn`), plus the released script's priors.

A shard is one class, so an image depends only on (stage id, class): the batch-shared crop, flip
and roll of SRe2L draw from the class's seed, as the authors' per-class loop draws them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ddflow.data.pixels import Normalizer
from ddflow.recover.bn_loss import ClassBNStatLoss
from ddflow.recover.delt import recover_delt_shard
from ddflow.recover.init import gaussian_init
from ddflow.recover.resume import ShardResume
from ddflow.recover.shards import Shard, batch_seed


def image_priors(xa: torch.Tensor, tv_l2: float, l2_scale: float) -> torch.Tensor:
    """`tv_l2` x the L2 total variation of the augmented batch (the norms of its four neighbour
    differences: right, down and both diagonals) + `l2_scale` x its images' mean L2 norm."""
    diffs = (
        xa[..., :, :-1] - xa[..., :, 1:],
        xa[..., :-1, :] - xa[..., 1:, :],
        xa[..., 1:, :-1] - xa[..., :-1, 1:],
        xa[..., :-1, :-1] - xa[..., 1:, 1:],
    )
    tv = sum(torch.linalg.vector_norm(d) for d in diffs)
    return tv_l2 * tv + l2_scale * torch.linalg.vector_norm(xa.flatten(1), dim=1).mean()


def recover_lpld_shard(
    teacher: nn.Module,
    stats: dict[str, np.ndarray],
    norm: Normalizer,
    chw: tuple[int, int, int],
    method: dict,
    stage_id: str,
    shard: Shard,
    device: torch.device,
    log_every: int = 100,
    resume: ShardResume | None = None,
) -> dict[str, np.ndarray]:
    if shard.c1 - shard.c0 != 1:
        raise ValueError(f"LPLD recovers one class a shard, not {shard.c1 - shard.c0}")
    seed = batch_seed(stage_id, shard.c0, 0) ^ method["seed"]
    init = gaussian_init(shard.i1 - shard.i0, chw, seed)
    bn = ClassBNStatLoss(teacher.to(device), stats, method["first_bn_multiplier"])
    tv, l2 = method["tv_l2"], method["l2_scale"]
    one_round = {**method, "early_late": False, "round_iterations": method["iterations"]}
    return recover_delt_shard(
        teacher, norm, init, one_round, stage_id, shard, device, log_every, resume, bn=bn,
        extra=(lambda xa, y: image_priors(xa, tv, l2)) if tv or l2 else None,
    )  # fmt: skip
