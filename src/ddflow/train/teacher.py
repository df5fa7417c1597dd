"""Squeeze: train the teacher on the real training split (SGD, cosine with optional warm-up; or
CDA's ImageNet-21K recipe: Adam, label smoothing, CutoutPIL and RandAugment, from ImageNet-1K
weights), or load published/local weights (the papers' ImageNet teachers) and measure them on
the test split (top-1 and top-5).
"""

from __future__ import annotations

import logging
import math
import random

import numpy as np
import torch
import torch.nn.functional as F

from ddflow.config import teacher_is_loaded
from ddflow.data.datasets import DatasetBundle
from ddflow.data.pixels import Normalizer
from ddflow.data.prefetch import host_batch, prefetch
from ddflow.models import build_model
from ddflow.models.pretrained import init_from, load_pretrained
from ddflow.progress import Tracker
from ddflow.train.common import (
    check_finite,
    cutout,
    evaluate,
    param_groups,
    per_sample_rrc,
    rand_augment,
    random_crop_pad,
    random_hflip,
    seed_everything,
    topk_accuracy,
)

log = logging.getLogger(__name__)


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return 0.01 + 0.99 * step / warmup  # torchvision reference: linear from 0.01
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))


def host_augmentation(cfg: dict, size: int, mean: list[float]):
    """The squeeze's augmentation of uint8 images on the host, in the prefetch thread (Ridnik et
    al.'s order: CutoutPIL, then RandAugment); identity when neither is configured."""
    rng = np.random.default_rng(cfg["seed"])  # drawn in batch order by the one prefetch thread
    ra = rand_augment(cfg["randaugment"], size, mean) if cfg.get("randaugment") else None
    factor = cfg.get("cutout", 0)

    def apply(images: np.ndarray) -> np.ndarray:
        images = cutout(images, factor, rng) if factor else images
        return ra(images) if ra else images

    return apply


def train_teacher(bundle: DatasetBundle, cfg: dict, device: torch.device):
    """Return (model, metrics); metrics carry the per-epoch curve and final test top-1."""
    gen = seed_everything(cfg["seed"])
    device = torch.device(device)
    rng = random.Random(cfg["seed"])
    c, h, w = bundle.image_shape
    model = build_model(cfg["arch"], bundle.num_classes, c, (h, w))
    init = None
    if cfg.get("init"):
        init = init_from(
            model, {**cfg["init"], "arch": cfg["arch"]}, bundle.classes, bundle.image_shape,
            bundle.mean, bundle.std,
        )  # fmt: skip
        log.info("teacher starts from %s (fresh: %s)", init.get("weights", init.get("path")),
                 init["fresh"])  # fmt: skip
    model = model.to(device)
    norm = Normalizer(bundle.mean, bundle.std, device)
    groups = param_groups(model, cfg["weight_decay"], cfg.get("no_decay_bn_bias", False))
    if cfg.get("optimizer", "sgd") == "adam":  # Ridnik et al.'s / CDA's ImageNet-21K squeeze
        opt = torch.optim.Adam(groups, lr=cfg["lr"])
    else:
        opt = torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg["momentum"])
    host_augment = host_augmentation(cfg, h, bundle.mean)
    n = len(bundle.train_y)
    steps_per_epoch = math.ceil(n / cfg["batch_size"])
    total, warmup = cfg["epochs"] * steps_per_epoch, cfg["warmup_epochs"] * steps_per_epoch
    constant = cfg.get("schedule") == "constant"
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 1.0 if constant else warmup_cosine(s, total, warmup)
    )
    labels = np.asarray(bundle.train_y, np.int64)
    curve = []
    tracker = Tracker("teacher", cfg["epochs"], "epoch")
    bs = cfg["batch_size"]

    def load(idx: torch.Tensor):  # in the prefetch thread: decode (files), host augmentation
        rows = idx.numpy()
        images = host_augment(bundle.train_x[rows])
        return host_batch(images, device), host_batch(labels[rows], device)

    for epoch in range(1, cfg["epochs"] + 1):
        model.train()
        perm = torch.randperm(n, generator=gen)
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)  # read once an epoch
        for b, (batch, y) in enumerate(prefetch(perm.split(bs), load), 1):
            x = norm.to_tensor(batch)
            if cfg.get("min_scale"):  # the torchvision reference recipe (Tiny, ImageNet teachers)
                x = per_sample_rrc(x, (cfg["min_scale"], 1.0), rng)
            else:
                x = random_crop_pad(x, cfg["crop_padding"], gen)
            if cfg["hflip"]:
                x = random_hflip(x, gen)
            y = y.to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y, label_smoothing=cfg.get("label_smoothing", 0.0))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.detach() * len(y)
            tracker.tick(epoch - 1 + min(b * bs, n) / n)
        loss_mean = loss_sum.item() / n
        check_finite("teacher", epoch, loss_mean, model, "teacher.lr")
        acc = topk_accuracy(model, bundle.test_x, bundle.test_y, norm)
        top1 = acc[1]
        curve.append(
            {"epoch": epoch, "train_loss": loss_mean, "test_top1": top1, "test_top5": acc[5]}
        )
        tracker.update(epoch, train_loss=loss_mean, test_top1=top1)
        log.info(
            "teacher epoch %d/%d loss %.4f test top-1 %.2f",
            epoch,
            cfg["epochs"],
            loss_mean,
            top1,
        )
    model.eval()
    last = {"test_top1": curve[-1]["test_top1"], "test_top5": curve[-1]["test_top5"]}
    return model, {**last, "curve": curve, **({"init": init} if init else {})}


def squeeze(bundle: DatasetBundle, cfg: dict, device: torch.device):
    """(model, metrics): the configured weights when a teacher is loaded, else a trained one."""
    norm = Normalizer(bundle.mean, bundle.std, device)
    if teacher_is_loaded(cfg):
        model, source = load_pretrained(
            cfg, bundle.classes, bundle.image_shape, bundle.mean, bundle.std
        )
        model = model.to(device)
        acc = topk_accuracy(model, bundle.test_x, bundle.test_y, norm, task="teacher test")
        metrics = {"test_top1": acc[1], "test_top5": acc[5]}
        metrics["source"] = source
        log.info("teacher loaded from %s: test top-1 %.2f", source, metrics["test_top1"])
    else:
        model, metrics = train_teacher(bundle, cfg, device)
    if bundle.val_x is not None:
        metrics["val_top1"] = evaluate(model, bundle.val_x, bundle.val_y, norm)
    return model, metrics
