"""Validate a distilled set: train a student from scratch on soft labels, test on real data.

Recipe (RDED/DELT validation, reference-algorithms.md §3.3/§4.3): AdamW, half or full cosine per
epoch, per-sample RandomResizedCrop + flip, one CutMix box per batch (train/views.py), and the loss
of the label protocol (labels/protocols.py): by default KL to the teacher's softened output on the
same mixed image. SRe2L-CL's continual-learning students take SGD and DSA, CIM's a mosaic-cell
crop and IDC's DiffAug (train/dsa.py) instead. The headline is top-1 at the last epoch. With a
validation split the epoch chosen on it is reported too (test top-1 there); the best test top-1
seen is kept only because the papers report it (it selects on test).
"""

from __future__ import annotations

import contextlib
import logging
import math

import numpy as np
import torch
from torch import nn

from ddflow.config import batch_size_for
from ddflow.data.datasets import DatasetBundle
from ddflow.data.pixels import Normalizer
from ddflow.data.prefetch import host_batch, prefetch
from ddflow.labels.protocols import Protocol, make_protocol, split_soft
from ddflow.labels.stored import StoredLabels
from ddflow.models import build_model
from ddflow.progress import Tracker
from ddflow.train.common import (
    Precision,
    WeightEMA,
    check_finite,
    evaluate,
    param_groups,
    rand_augment,
    seed_everything,
    tv_rand_augment,
)
from ddflow.train.dsa import student_augment
from ddflow.train.views import render

log = logging.getLogger(__name__)


def epoch_lr_factor(epoch: int, epochs: int, schedule: str, end: float = 0.5) -> float:
    """half_cosine ends at 0.5 x lr (RDED/DELT); cosine ends at 0 (SRe2L ImageNet); linear_to
    falls linearly to `end` (EDC ImageNet: its "cos" runs this way, to 0.5); cos2 is EDC
    CIFAR-100's: the half cosine to 5/6 of training, then its value there times (1 - e/E);
    multistep is CIM's MultiStepLR: x0.2 from epoch int(2E/3) and again from int(5E/6)."""
    if schedule == "multistep":
        return 0.2 ** sum(epoch >= m for m in (int(2 * epochs / 3), int(5 * epochs / 6)))
    if schedule == "linear_to":
        return 1.0 - (1.0 - end) * epoch / epochs
    if schedule == "cos2" and epoch > epochs * 5 / 6:
        return 0.5 * (1 + math.cos(math.pi * 5 / 12)) * (1 - epoch / epochs)
    span = 2 * epochs if schedule in ("half_cosine", "cos2") else epochs
    return 0.5 * (1 + math.cos(math.pi * epoch / span))


def student_step(
    model: nn.Module,
    protocol: Protocol,
    opt: torch.optim.Optimizer,
    norm: Normalizer,
    fast: Precision,
    step: tuple,
    augment: tuple | None = None,
    micro: int | None = None,
) -> torch.Tensor:
    """One optimisation step on a prepared batch (uint8 host images, labels, view, stored
    logits); returns the loss on the device, unread: the host syncs once an epoch, not per step.
    Its operator calls do not grow with the batch (benchmarks/student_speed.py counts them)."""
    batch, labels, view, view_soft = step
    device = norm.mean.device
    x = fast.layout(render(norm.to_tensor(batch), view))  # normalized per batch
    if augment is not None:  # (function, its generator): DSA or IDC's DiffAug
        x = augment[0](x, augment[1])
    y = labels.to(device, non_blocking=True)
    opt.zero_grad(set_to_none=True)
    if micro is None:
        with fast.autocast():
            loss = protocol.loss(model(x), x, view, y, view_soft)
        loss.backward()
    else:  # the authors' accumulation steps: BatchNorm sees each micro-batch alone
        loss = 0.0
        for part in torch.arange(len(x), device=device).split(micro):
            soft = None if view_soft is None else view_soft[part.cpu()]
            with fast.autocast():
                term = protocol.loss(model(x[part]), x[part], view, y[part], soft)
            (term * (len(part) / len(x))).backward()
            loss = loss + term.detach() * (len(part) / len(x))
    opt.step()
    return loss.detach()


def train_student(
    images: np.ndarray,
    teacher: nn.Module | None,
    bundle: DatasetBundle,
    cfg: dict,
    seed: int,
    device: torch.device,
    *,
    targets: np.ndarray | None = None,
    stored: StoredLabels | None = None,
    model: nn.Module | None = None,
) -> dict:
    """Train under the protocol cfg['labels']; `targets` are the images' classes (hard terms),
    `stored` the relabel stage's labels (the teacher is then not needed, and None); `model`
    replaces a fresh cfg['arch'] (it is trained in place)."""
    seed_everything(seed)
    device = torch.device(device)
    c, h, w = bundle.image_shape
    if model is None:
        model = build_model(cfg["arch"], bundle.num_classes, c, (h, w))
    model = model.to(device)  # a given model (a pruned network) starts from its own weights
    n_params = sum(p.numel() for p in model.parameters())
    teacher = teacher.to(device) if teacher is not None else None
    norm = Normalizer(bundle.mean, bundle.std, device)
    groups = param_groups(model, cfg["weight_decay"], cfg["no_decay_bn_bias"])
    if cfg.get("optimizer", "adamw") == "sgd":  # SRe2L-CL's continual-learning students
        opt = torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg["momentum"])
    else:
        opt = torch.optim.AdamW(groups, lr=cfg["lr"])
    epochs = cfg["epochs"]
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda e: epoch_lr_factor(e, epochs, cfg["schedule"], cfg.get("schedule_end", 0.5))
    )
    ra = rand_augment(cfg["randaugment"], h, bundle.mean) if cfg["randaugment"] else None
    if cfg.get("tv_randaugment") is not None:
        ra = tv_rand_augment(cfg["tv_randaugment"])
    ema = WeightEMA(model, cfg["ema_decay"]) if cfg.get("ema_decay") else None
    n = len(images)
    bs = min(batch_size_for(cfg["batch_size"], n // bundle.num_classes), n)
    y = np.asarray(targets if targets is not None else np.zeros(n), np.int64)
    augment = student_augment(cfg)
    if augment is not None:  # replaces crops, flips, CutMix; order is kept
        augment = (augment, torch.Generator().manual_seed(seed))
        cfg = {**cfg, "min_scale": 1.0, "max_scale": 1.0, "hflip": False, "cutmix": 0.0}
    protocol = make_protocol(cfg, seed, n, bs, (h, w), teacher=teacher, stored=stored)
    fast = Precision(cfg.get("precision", "fp32"), device)
    model, teacher = fast.prepare(model), fast.prepare(teacher)

    def load(view):  # in the prefetch thread: decode (files), RandAugment, pinned host copies
        batch = images[view.idx]
        return host_batch(ra(batch) if ra else batch, device), host_batch(y[view.idx], device)

    curve = []
    tracker = Tracker(f"student seed {seed}", epochs, "epoch")
    for epoch in range(1, epochs + 1):
        model.train()
        views, soft = protocol.epoch(epoch)
        # On the device, read once an epoch: no host sync per step.
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        seen = sum(len(v.idx) for v in views)  # n, or a label pool's draws
        batches = zip(views, split_soft(soft, views), prefetch(views, load))
        for b, (view, (_, view_soft), (batch, labels)) in enumerate(batches, 1):
            step = (batch, labels, view, view_soft)
            loss = student_step(model, protocol, opt, norm, fast, step, augment,
                                cfg.get("micro_batch"))  # fmt: skip
            loss_sum += loss * len(labels)
            if ema:
                ema.update(model)
            tracker.tick(epoch - 1 + b / len(views))
        loss_mean = loss_sum.item() / seen
        sched.step()
        check_finite(f"student (seed {seed})", epoch, loss_mean, model, "student.lr")
        point = {"epoch": epoch, "train_loss": loss_mean}
        window = epoch > int(cfg.get("eval_from", 0.0) * epochs)  # FADRM's --simple: last 20 %
        if (window and epoch % cfg["eval_every"] == 0) or epoch == epochs:
            with ema.swapped(model) if ema else contextlib.nullcontext():
                point["test_top1"] = evaluate(model, bundle.test_x, bundle.test_y, norm)
                if bundle.val_x is not None:
                    point["val_top1"] = evaluate(model, bundle.val_x, bundle.val_y, norm)
            log.info(
                "student seed %d epoch %d/%d loss %.4f test top-1 %.2f",
                seed,
                epoch,
                epochs,
                point["train_loss"],
                point["test_top1"],
            )
        curve.append(point)
        tracker.update(epoch, **{k: v for k, v in point.items() if k != "epoch"})
    evals = [p for p in curve if "test_top1" in p]
    best = max(evals, key=lambda p: p["test_top1"])
    out = {
        "top1_last": evals[-1]["test_top1"],
        "top1_best": best["test_top1"],
        "best_epoch": best["epoch"],
        "curve": curve,
        "n_images": n,
        "batch_size": bs,
        "params": n_params,
    }
    if bundle.val_x is not None:
        chosen = max(evals, key=lambda p: p["val_top1"])  # ties: the earliest epoch
        out["val_top1_last"] = evals[-1]["val_top1"]  # what a swept setting is chosen on
        out["val_selected_epoch"] = chosen["epoch"]
        out["top1_val_selected"] = chosen["test_top1"]
    return out
