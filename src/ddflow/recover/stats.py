"""Teacher statistics: the targets G-VBSM and EDC match besides BatchNorm's running statistics
(reference-frontier.md §1.2, §2.3), from one augmented pass of a teacher over the training set.

For the input x (N, C, H, W) of every convolution, per batch: the channel mean and biased variance
over (N, H, W), and the "patch" moments: x resized bilinearly to the next multiple of `patch` in H
and W, cut into patch x patch cells, the mean and biased variance over (N, C, cell) of each cell.
Each batch's moments are weighted by its size over the training set's (so the targets are
averages of per-batch moments, as the authors' hooks accumulate them, not population moments).
With `per_class`, every BatchNorm and convolution input also gets per-class targets: each image's
channel moments over (H, W) and cell moments over (C, cell), averaged over the class's images.

The pass draws its augmentation per image as the authors' data loaders do (RandomResizedCrop or a
padded random crop, and a flip) and visits the images in a seeded shuffled order; a stage shard
takes a range of that order's batches, so shards summed equal one pass exactly.
"""

from __future__ import annotations

import math
import random

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ddflow.data.pixels import Normalizer
from ddflow.data.prefetch import host_batch, prefetch
from ddflow.progress import Tracker

STATS = ("mean", "var", "patch_mean", "patch_var")


def sites(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The hooked layers, in named_modules order: every Conv2d and BatchNorm2d."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.BatchNorm2d)]


def _cells(x: torch.Tensor, patch: int) -> torch.Tensor:
    """(N, C, cells, patch * patch): x resized bilinearly up to multiples of `patch`, in cells
    taken row by row (the authors' einops pattern `(u h) (v w) -> (u v)`)."""
    n, c, h, w = x.shape
    hh, ww = math.ceil(h / patch) * patch, math.ceil(w / patch) * patch
    if (hh, ww) != (h, w):
        x = F.interpolate(x, size=(hh, ww), mode="bilinear")
    u, v = hh // patch, ww // patch
    x = x.reshape(n, c, u, patch, v, patch).permute(0, 1, 2, 4, 3, 5)
    return x.reshape(n, c, u * v, patch * patch)


def batch_moments(x: torch.Tensor, patch: int) -> dict[str, torch.Tensor]:
    """The four statistics of one batch: channel (C,) over (N, H, W); patch (cells,) over
    (N, C, cell); biased variances."""
    cells = _cells(x, patch).transpose(0, 2).flatten(1)  # (cells, N * C * cell)
    var, mean = torch.var_mean(x.transpose(0, 1).flatten(1), 1, correction=0)
    pvar, pmean = torch.var_mean(cells, 1, correction=0)
    return {"mean": mean, "var": var, "patch_mean": pmean, "patch_var": pvar}


def sample_moments(x: torch.Tensor, patch: int) -> dict[str, torch.Tensor]:
    """Per image: channel moments over (H, W), (N, C); cell moments over (C, cell), (N, cells)."""
    var, mean = torch.var_mean(x.flatten(2), 2, correction=0)
    cells = _cells(x, patch).transpose(1, 2).flatten(2)  # (N, cells, C * cell)
    pvar, pmean = torch.var_mean(cells, 2, correction=0)
    return {"mean": mean, "var": var, "patch_mean": pmean, "patch_var": pvar}


def augment_batch(x: torch.Tensor, spec: dict, rng: random.Random, gen: torch.Generator):
    """The pass's per-image augmentation: RandomResizedCrop(scale) or RandomCrop(size, padding),
    then a random flip (the authors' data-loader transforms, on normalized pixels)."""
    from ddflow.train.common import per_sample_rrc, random_crop_pad, random_hflip

    if spec.get("min_scale") is not None:
        x = per_sample_rrc(x, (spec["min_scale"], 1.0), rng)
    elif spec.get("crop_padding"):
        x = random_crop_pad(x, spec["crop_padding"], gen)
    return random_hflip(x, gen) if spec.get("hflip", True) else x


@torch.no_grad()
def teacher_statistics(
    model: nn.Module,
    images,
    labels: np.ndarray,
    norm: Normalizer,
    spec: dict,
    num_classes: int,
    batches: range | None = None,
) -> dict[str, np.ndarray]:
    """`{"<layer>|<stat>": array}` of one pass (or of `batches`, a range of its batches): global
    conv-input statistics already weighted by batch size over the dataset's, and, with
    spec['per_class'], per-class sums `<layer>|class_<stat>` (classes x dims) with the class
    counts `|class_count`, divided out by `finish`."""
    model.eval()
    device = norm.mean.device
    n, bs, patch = len(labels), spec["batch_size"], spec["patch"]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(spec["seed"]))
    chunks = order.split(bs)
    todo = range(len(chunks)) if batches is None else batches
    hooked = sites(model)
    out: dict[str, torch.Tensor] = {}
    current: dict = {}

    def hook(name: str, conv: bool):
        def fn(module, inputs):
            x = inputs[0].float()
            if conv:
                for k, v in batch_moments(x, patch).items():
                    key = f"{name}|{k}"
                    out[key] = out.get(key, 0) + v.double() * (len(x) / n)
            if spec.get("per_class"):
                y = current["labels"]
                for k, v in sample_moments(x, patch).items():
                    key = f"{name}|class_{k}"
                    if key not in out:
                        out[key] = v.new_zeros(num_classes, v.shape[1], dtype=torch.float64)
                    out[key].index_add_(0, y, v.double())

        return fn

    # BatchNorm inputs only have per-class targets: their global ones are the running statistics
    wanted = [(n, m) for n, m in hooked if isinstance(m, nn.Conv2d) or spec.get("per_class")]
    handles = [m.register_forward_pre_hook(hook(n, isinstance(m, nn.Conv2d))) for n, m in wanted]
    counts = torch.zeros(num_classes, dtype=torch.float64)
    tracker = Tracker("teacher statistics", len(todo), "batch")
    # every batch's augmentation draws from streams seeded by the batch's index in the pass, so a
    # shard of batches draws what the whole pass draws for them
    try:

        def load(b: int):
            idx = chunks[b].numpy()
            return b, host_batch(images[idx], device), torch.as_tensor(labels[idx])

        for done, (b, batch, y) in enumerate(prefetch(todo, load), 1):
            rng = random.Random(f"{spec['seed']}/{b}")
            gen = torch.Generator().manual_seed(spec["seed"] * 1_000_003 + b)
            x = augment_batch(norm.to_tensor(batch), spec, rng, gen)
            current["labels"] = y.to(device)
            model(x)
            counts.index_add_(0, y, torch.ones(len(y), dtype=torch.float64))
            tracker.update(done)
    finally:
        for h in handles:
            h.remove()
    result = {k: v.double().cpu().numpy() for k, v in out.items()}
    if spec.get("per_class"):
        result["|class_count"] = counts.numpy()
    return result


def merge(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Shards of one pass summed (their batches' weights are already over the whole dataset)."""
    return {k: sum(p[k] for p in parts) for k in parts[0]}


def finish(stats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-class sums divided by the class counts (a class no image reached is an error)."""
    counts = stats.get("|class_count")
    if counts is None:
        return dict(stats)
    if (counts == 0).any():
        missing = np.flatnonzero(counts == 0)[:5].tolist()
        raise ValueError(f"teacher statistics: classes {missing} have no training image")
    return {k: (v / counts[:, None] if "|class_" in k else v) for k, v in stats.items()}
