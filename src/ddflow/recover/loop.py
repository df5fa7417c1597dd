"""The shared recovery loop (SRe2L §1.2): Adam on pixels, cosine lr, CE + r_bn * BN loss.

No parameter gradients are ever computed (the teacher is frozen) and there is no per-step host
sync: the loss is read only every `log_every` steps, which also catches non-finite values early.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ddflow.recover.augment import RecoverAugment
from ddflow.recover.bn_loss import BNStatLoss, _parts
from ddflow.recover.resume import ShardResume

log = logging.getLogger(__name__)


class NonFiniteLoss(RuntimeError):
    pass


def freeze(teacher: nn.Module) -> nn.Module:
    """eval(), no parameter gradients; channels_last on CUDA (faster convolutions there)."""
    teacher.eval()
    teacher.requires_grad_(False)
    if next(teacher.parameters()).is_cuda:
        teacher.to(memory_format=torch.channels_last)
    return teacher


def cosine_lr(step: int, total: int, base: float) -> float:
    return 0.5 * (1 + math.cos(math.pi * step / total)) * base


def _ce(logits: torch.Tensor, labels: torch.Tensor, k: int, chunks) -> torch.Tensor:
    """The class cross-entropy: the batch mean, or with k packed batches the sum of their means."""
    if k == 1:
        return F.cross_entropy(logits.float(), labels)
    each = F.cross_entropy(logits.float(), labels, reduction="none")
    return torch.stack([p.mean() for p in _parts(each, chunks)]).sum()


def _autocast(x: torch.Tensor, precision: str):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast(x.device.type, dtype or torch.bfloat16, enabled=dtype is not None)


def recover_batch(
    teacher: nn.Module,
    bn_loss: BNStatLoss,
    x_init: torch.Tensor,
    labels: torch.Tensor,
    *,
    iterations: int,
    lr: float,
    r_bn: float,
    augment: RecoverAugment,
    bounds: tuple[torch.Tensor, torch.Tensor],
    rng: random.Random | list[random.Random],
    log_every: int = 100,
    tag: str = "",
    on_step: Callable[[int, torch.Tensor], None] | None = None,
    active_at: Callable[[int], torch.Tensor | None] | None = None,
    resume: tuple[ShardResume, int] | None = None,
    precision: str = "fp32",
    report: Callable[[int, dict], None] | None = None,
    teachers: list[tuple[nn.Module, object]] | None = None,
    teacher_at: Callable[[int], int] | None = None,
    sizes: tuple[int, ...] | None = None,
    extra: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    committee: list[tuple[nn.Module, object, float]] | None = None,
    window: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Optimise one batch and return its last iterate (the authors' "best" logic is dead code).

    `on_step(k, x)` sees the images after k steps (k = 0 is the initialization), for snapshots.
    `active_at(step)` gives the rows optimised at that step (None = all): only those are forwarded,
    so BN statistics cover the active images only, while one Adam spans the whole tensor (DELT).
    `resume = (state, key)` continues batch `key` from its last save and saves periodically.
    `precision = "bf16"` runs the teacher under bf16 autocast (pixels, Adam and BN statistics
    stay float32); it changes the numerics, so it is a method key, part of the stage id.
    `precision = "fp16"` runs it under fp16 autocast with a dynamic loss scale (FADRM's
    GradScaler: a step whose gradient overflows is skipped and the scale halved).
    A list of k RNGs packs k independent batches along N (runtime.pack_batches): each chunk draws
    its own augmentation and has its own BN statistics and CE mean, and the loss is their sum, so
    each batch gets its own gradient; Adam and clamp are elementwise. One launch, k batches.
    `report(step, {"loss", "ce"})` is called where the loss is read (progress and metrics).
    Statistics-matching methods (G-VBSM, EDC): `teachers` [(model, its statistics loss)] taken
    in turn, `teacher_at(step)` the one of each step; `sizes` the packed batches' sizes (the
    authors' per-device sub-batches, one RNG each; default equal); `extra(xa, labels)` a term
    over the whole augmented batch (the eigen-spectrum term), added to the loss.
    A `committee` [(model, its statistics loss, weight)] (CV-DD) forwards every member each step:
    the loss is the weighted sum of each member's CE + r_bn * statistics term.
    `window = (offset, total)`: this call is steps offset.. of one schedule of `total` steps
    (FADRM's stages: a fresh Adam each, one cosine and one teacher counter over all of them).
    """
    rngs = rng if isinstance(rng, list) else [rng]
    k = len(rngs)
    if k > 1 and active_at is not None:
        raise ValueError("packed batches cannot have active subsets (DELT shards are one batch)")
    chunks = tuple(sizes) if sizes else k
    pairs = teachers or [(teacher, bn_loss)]
    for _, stat, *_ in pairs + (committee or []):
        stat.chunks = chunks
    fmt = torch.channels_last if x_init.is_cuda else torch.contiguous_format
    x = x_init.clone().contiguous(memory_format=fmt).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr, betas=(0.5, 0.9), eps=1e-8)
    scaler = torch.amp.GradScaler(x.device.type, enabled=precision == "fp16")
    offset, total = window or (0, iterations)
    lo, hi = bounds
    start = resume[0].restore(resume[1], x, opt, rngs, scaler) if resume else 0
    if on_step:
        on_step(0, x.detach())
    for step in range(start, iterations):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(offset + step, total, lr)
        rows = active_at(step) if active_at else None
        xb, yb = (x, labels) if rows is None else (x[rows], labels[rows])
        model, stat = pairs[teacher_at(offset + step) if teacher_at else 0]
        if k == 1:  # the unpacked path, kept op for op (and byte for byte)
            xa = augment(xb, offset + step, total, rngs[0])
        else:
            parts = _parts(xb, chunks)
            xa = torch.cat([augment(p, offset + step, total, r) for p, r in zip(parts, rngs)])
        if hasattr(stat, "set_labels"):
            stat.set_labels(yb)
        if committee:
            ce = reg = 0.0
            for member, member_stat, weight in committee:
                with _autocast(x, precision):
                    logits = member(xa)
                ce = ce + weight * _ce(logits, yb, k, chunks)
                reg = reg + weight * member_stat.value()
            loss = ce + r_bn * reg
        else:
            with _autocast(x, precision):
                logits = teacher(xa) if teachers is None else model(xa)
            ce = _ce(logits, yb, k, chunks)
            loss = ce + r_bn * stat.value()
        if extra is not None:
            loss = loss + extra(xa, yb)
        opt.zero_grad(set_to_none=True)
        if scaler.is_enabled():
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        with torch.no_grad():
            x.clamp_(lo, hi)
        if on_step:
            on_step(step + 1, x.detach())
        if (step + 1) % log_every == 0 or step + 1 == iterations:
            value = loss.item()
            if not math.isfinite(value):
                raise NonFiniteLoss(
                    f"recovery {tag} step {step + 1}: loss is {value}; lower the lr or r_bn. "
                    "No image was written."
                )
            log.info("%s step %d/%d loss %.4f ce %.4f", tag, step + 1, iterations, value, ce.item())
            if report:
                report(step + 1, {"loss": value, "ce": ce.item()})
        if resume and resume[0].due(step + 1, iterations):
            resume[0].save(resume[1], step + 1, x, opt, rngs, scaler)
    if not torch.isfinite(x).all():
        raise NonFiniteLoss(f"recovery {tag}: non-finite pixels; no image was written")
    return x.detach()
