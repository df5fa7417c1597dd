"""CV-DD's committee recovery (reference-frontier.md §5.2): SRe2L's class-balanced batches, one
IPC index each, where two teachers vote on every step. Each member forwards the augmented batch,
and the loss is the sum over members of softmax(prior / T)-weighted SRe2L losses (CE + r_bn x its
BatchNorm term).

Which two teachers form the committee of IPC index i depends on the set's IPC, as released: at
IPC 1 a fixed pair (the two best priors unless `ipc1_pair` gives the script's hard-coded one); up
to as many IPC indices as there are unordered pairs, the i-th pair in the teachers' order; beyond,
a pair drawn at random per index (the released draw is unseeded: here seeded by the stage id and
index, so every class block of an index meets the same pair and reruns reproduce it). The
committee of an index differs between IPC values, so each IPC value has its own shards.
"""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import torch
from torch import nn

from ddflow.data.pixels import Normalizer
from ddflow.recover.augment import RecoverAugment
from ddflow.recover.by_index import bn_members, recover_each_index
from ddflow.recover.loop import recover_batch
from ddflow.recover.resume import ShardResume
from ddflow.recover.shards import Shard


def committee(method: dict, ipc: int, index: int, stage_id: str) -> list[tuple[int, float]]:
    """[(teacher position, weight)] of the two members voting on IPC index `index`."""
    names, priors = method["teachers"], method["priors"]
    pairs = list(itertools.combinations(range(len(names)), 2))
    if ipc == 1:
        if method.get("ipc1_pair"):
            pair = tuple(method["ipc1_pair"])
        else:
            pair = tuple(sorted(sorted(range(len(names)), key=lambda t: -priors[t])[:2]))
    elif ipc <= len(pairs):
        pair = pairs[index]
    else:
        pair = tuple(sorted(random.Random(f"{stage_id}/committee/{index}").sample(
            range(len(names)), 2)))  # fmt: skip
    logits = [priors[t] / method["temperature"] for t in pair]
    top = max(logits)
    z = [math.exp(v - top) for v in logits]
    return [(t, w / sum(z)) for t, w in zip(pair, z)]


def recover_committee_shard(
    teachers: list[nn.Module],
    norm: Normalizer,
    chw: tuple[int, int, int],
    method: dict,
    stage_id: str,
    shard: Shard,
    ipc: int,
    device: torch.device,
    log_every: int = 100,
    init_fn=None,
    resume: ShardResume | None = None,
) -> dict[str, np.ndarray]:
    """The shard's class block at every IPC index of an `ipc`-image set, one batch an index."""
    augment = RecoverAugment.from_method(method)
    labels = torch.arange(shard.c0, shard.c1, device=device)
    with bn_members(teachers, method, device) as pairs:

        def recover_one(i, x0, seed, resume_at, report):
            members = [(*pairs[t], w) for t, w in committee(method, ipc, i, stage_id)]
            return recover_batch(
                members[0][0], members[0][1], x0.to(device), labels,
                iterations=method["iterations"], lr=method["lr"], r_bn=method["r_bn"],
                augment=augment, bounds=norm.bounds(), rng=random.Random(seed),
                precision=method["precision"], log_every=log_every,
                tag=f"c{shard.c0}-{shard.c1} ipc {i}", resume=resume_at, report=report,
                committee=members,
            )  # fmt: skip

        return recover_each_index(
            shard, method, stage_id, chw, norm, method["iterations"], recover_one, init_fn, resume
        )
