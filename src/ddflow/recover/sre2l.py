"""SRe2L recovery of one shard: class-balanced batches, one image per class per IPC index."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn

from ddflow.data.pixels import Normalizer
from ddflow.progress import Tracker
from ddflow.recover.augment import RecoverAugment
from ddflow.recover.bn_loss import BNStatLoss
from ddflow.recover.init import gaussian_init
from ddflow.recover.loop import freeze, recover_batch
from ddflow.recover.resume import ShardResume
from ddflow.recover.shards import Shard, batch_seed


class BatchRecoverer:
    """Recovers class-balanced batches (one image per class for one IPC index) of one method.

    A batch's seed depends only on (stage id, first class, IPC index, method seed), so shards,
    snapshots and reruns all reproduce the same images.
    """

    def __init__(
        self,
        teacher: nn.Module,
        norm: Normalizer,
        chw: tuple[int, int, int],
        method: dict,
        stage_id: str,
        device: torch.device,
        log_every: int = 100,
        init_fn=None,
    ):
        self.teacher = freeze(teacher.to(device))
        self.norm, self.chw, self.method = norm, chw, method
        self.stage_id, self.device, self.log_every = stage_id, device, log_every
        self.augment = RecoverAugment.from_method(method)
        # (c0, c1, ipc_index) -> normalized images; default: Gaussian noise from the batch seed.
        self.init_fn = init_fn

    def __enter__(self):
        self.bn = BNStatLoss(self.teacher, self.method["first_bn_multiplier"])
        return self

    def __exit__(self, *exc):
        self.bn.remove()

    def _init(self, c0: int, c1: int, ipc_index: int, seed: int) -> torch.Tensor:
        if self.init_fn is None:
            return gaussian_init(c1 - c0, self.chw, seed)
        return self.init_fn(c0, c1, ipc_index)

    def batch(
        self,
        c0: int,
        c1: int,
        ipc_indices: list[int],
        on_step=None,
        resume: ShardResume | None = None,
        report=None,
    ) -> torch.Tensor:
        """The batches of `ipc_indices`, optimised together (packed along N), each as if alone."""
        m = self.method
        seeds = [batch_seed(self.stage_id, c0, i) ^ m["seed"] for i in ipc_indices]
        x0 = torch.cat([self._init(c0, c1, i, s) for i, s in zip(ipc_indices, seeds)])
        labels = torch.arange(c0, c1, device=self.device).repeat(len(ipc_indices))
        return recover_batch(
            self.teacher,
            self.bn,
            x0.to(self.device),
            labels,
            iterations=m["iterations"],
            lr=m["lr"],
            r_bn=m["r_bn"],
            augment=self.augment,
            bounds=self.norm.bounds(),
            rng=[random.Random(s) for s in seeds],
            precision=m["precision"],
            log_every=self.log_every,
            tag=f"c{c0}-{c1} ipc {ipc_indices}",
            on_step=on_step,
            resume=(resume, ipc_indices[0]) if resume else None,
            report=report,
        )


def recover_shard(
    teacher: nn.Module,
    norm: Normalizer,
    chw: tuple[int, int, int],
    method: dict,
    stage_id: str,
    shard: Shard,
    device: torch.device,
    log_every: int = 100,
    init_fn=None,
    resume: ShardResume | None = None,
    pack: int = 1,
) -> dict[str, np.ndarray]:
    """Images (uint8 NHWC), labels and IPC indices of every (class, IPC index) in the shard.

    `pack` batches (IPC indices) are optimised in one launch (runtime.pack_batches): the same
    algorithm, faster where one batch cannot fill a GPU.
    """
    images = {i: resume.finished(i) for i in range(shard.i0, shard.i1)} if resume else {}
    todo = [i for i in range(shard.i0, shard.i1) if images.get(i) is None]
    iterations = method["iterations"]
    launches = -(-len(todo) // pack)
    tracker = Tracker(f"shard {shard.name}", launches * iterations, "step")
    with BatchRecoverer(teacher, norm, chw, method, stage_id, device, log_every, init_fn) as rec:
        for p in range(0, len(todo), pack):
            group = todo[p : p + pack]
            offset = p // pack * iterations

            def report(step, metrics, offset=offset):
                tracker.update(offset + step, **metrics)

            x = rec.batch(shard.c0, shard.c1, group, resume=resume, report=report)
            for i, part in zip(group, x.chunk(len(group))):
                images[i] = norm.to_uint8(part)
                if resume:
                    resume.finish(i, images[i])
    out = {"images": [], "labels": [], "ipc_index": []}
    for ipc_index in range(shard.i0, shard.i1):
        out["images"].append(images[ipc_index])
        out["labels"].append(np.arange(shard.c0, shard.c1))
        out["ipc_index"].append(np.full(shard.c1 - shard.c0, ipc_index))
    out = {k: np.concatenate(v) for k, v in out.items()}
    out["iterations"] = np.full(len(out["labels"]), method["iterations"])
    return out


def recover_snapshots(
    teacher: nn.Module,
    norm: Normalizer,
    chw: tuple[int, int, int],
    method: dict,
    stage_id: str,
    num_classes: int,
    classes: list[int],
    steps: list[int],
    device: torch.device,
    init_fn=None,
) -> np.ndarray:
    """uint8 images (len(steps), len(classes), H, W, C) of IPC index 0 at the chosen steps."""
    bc = method["batch_classes"]
    wanted = sorted(set(min(s, method["iterations"]) for s in steps))
    out = np.zeros((len(steps), len(classes), chw[1], chw[2], chw[0]), dtype=np.uint8)
    with BatchRecoverer(teacher, norm, chw, method, stage_id, device, 10**9, init_fn) as rec:
        for c0 in sorted({c // bc * bc for c in classes}):
            c1 = min(c0 + bc, num_classes)
            seen = {}

            def keep(k, x, seen=seen):
                if k in wanted:
                    seen[k] = norm.to_uint8(x)

            rec.batch(c0, c1, [0], keep)
            for ci, c in enumerate(classes):
                if c0 <= c < c1:
                    for si, s in enumerate(steps):
                        out[si, ci] = seen[min(s, method["iterations"])][c - c0]
    return out
