"""Teacher statistics: the targets G-VBSM and EDC match besides BatchNorm's running statistics
(reference-frontier.md §1.2, §2.3), from one augmented pass of a teacher over the training set.

For the input x (N, C, H, W) of every convolution, per batch: the channel mean and biased variance
over (N, H, W), and the "patch" moments: x resized bilinearly to the next multiple of `patch` in H
and W, cut into patch x patch cells, the mean and biased variance over (N, C, cell) of each cell.
Each batch's moments are weighted by its size over the training set's (so the targets are
averages of per-batch moments, as the authors' hooks accumulate them, not population moments).
With `per_class`, every BatchNorm and convolution input also gets per-class targets: each image's
channel moments over (H, W) and cell moments over (C, cell), averaged over the class's images.

With `class_bn` (a momentum), the pass is LPLD's class-aware BatchNorm (reference-frontier.md
§3.1) instead: for every BatchNorm input and every class in a batch, the channel mean and biased
variance over that class's images (N_c, H, W) move into the class's row by the momentum, from 0
and 1, as the authors' buffers do in eval mode; a class is updated only by batches that hold it.

`import_statistics` reads the targets G-VBSM ships instead (`<model class>=<module>/running.npz`
per convolution, keys running_dd_mean / _var and running_patch_mean / _var), checked against the
teacher's convolutions and their input sizes.

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
    n, bs, patch = len(labels), spec["batch_size"], spec.get("patch")
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

    def class_bn_hook(name: str):
        def fn(module, inputs):
            y, x = current["labels"], inputs[0].float()
            sums = torch.stack((x.sum((2, 3)), x.square().sum((2, 3))), 1).double()  # (N, 2, C)
            per = sums.new_zeros(num_classes, *sums.shape[1:]).index_add_(0, y, sums)
            present = current["present"]
            raw = per[present] / (current["counts"][present, None, None] * x[0, 0].numel())
            moments = torch.stack((raw[:, 0], (raw[:, 1] - raw[:, 0].square()).clamp_min(0)), 1)
            key = f"{name}|bn_class"
            if key not in out:
                out[key] = moments.new_zeros(num_classes, *moments.shape[1:])
            m = spec["class_bn"]
            out[key][present] = (1 - m) * out[key][present] + m * moments

        return fn

    if spec.get("class_bn"):
        wanted, make = [(n, m) for n, m in hooked if isinstance(m, nn.BatchNorm2d)], class_bn_hook
    else:  # BatchNorm inputs only have per-class targets: the global ones are running statistics
        wanted = [(n, m) for n, m in hooked if isinstance(m, nn.Conv2d) or spec.get("per_class")]

        def make(name):
            return hook(name, isinstance(dict(wanted)[name], nn.Conv2d))

    handles = [m.register_forward_pre_hook(make(n)) for n, m in wanted]
    updates = torch.zeros(num_classes, dtype=torch.float64)
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
            batch_counts = torch.bincount(y, minlength=num_classes).double()
            current["counts"] = batch_counts.to(device)
            current["present"] = (batch_counts > 0).to(device)
            model(x)
            counts += batch_counts
            updates += batch_counts > 0
            tracker.update(done)
    finally:
        for h in handles:
            h.remove()
    result = {k: v.double().cpu().numpy() for k, v in out.items()}
    if spec.get("per_class"):
        result["|class_count"] = counts.numpy()
    if spec.get("class_bn"):  # what a shard's EMA moved from zero, and by how many updates
        result["|bn_class_updates"] = updates.numpy()
        result["|bn_class_momentum"] = np.asarray(spec["class_bn"], np.float64)
    return result


def merge(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Shards of one pass, in pass order: sums (their batches' weights are already over the whole
    dataset), and class-aware BatchNorm EMAs folded exactly (a later shard's u updates scale what
    came before by (1 - momentum)^u and add its own)."""
    if "|bn_class_updates" not in parts[0]:
        return {k: sum(p[k] for p in parts) for k in parts[0]}
    keep = 1 - float(parts[0]["|bn_class_momentum"])
    merged = dict(parts[0])
    for p in parts[1:]:
        decay = keep ** p["|bn_class_updates"]
        for k in p:
            if k.endswith("|bn_class"):
                merged[k] = merged[k] * decay[:, None, None] + p[k]
        merged["|bn_class_updates"] = merged["|bn_class_updates"] + p["|bn_class_updates"]
    return merged


def finish(stats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-class sums divided by the class counts (a class no image reached is an error); the
    class-aware BatchNorm rows with their buffers' initial 0 and 1 decayed in."""
    counts = stats.get("|class_count")
    updates = stats.get("|bn_class_updates")
    if updates is not None:
        if (updates == 0).any():
            missing = np.flatnonzero(updates == 0)[:5].tolist()
            raise ValueError(f"class-aware BatchNorm statistics: classes {missing} were never seen")
        start = (1 - float(stats["|bn_class_momentum"])) ** updates  # the initial buffers' weight
        return {k: v + np.stack([0 * start, start], 1)[:, :, None] if k.endswith("|bn_class") else v
                for k, v in stats.items() if not k.startswith("|bn_class_")}  # fmt: skip
    if counts is None:
        return dict(stats)
    if (counts == 0).any():
        missing = np.flatnonzero(counts == 0)[:5].tolist()
        raise ValueError(f"teacher statistics: classes {missing} have no training image")
    return {k: (v / counts[:, None] if "|class_" in k else v) for k, v in stats.items()}


SHIPPED_KEYS = {"running_dd_mean": "mean", "running_dd_var": "var",
                "running_patch_mean": "patch_mean", "running_patch_var": "patch_var"}  # fmt: skip


@torch.no_grad()
def import_statistics(folder, model: nn.Module, chw: tuple[int, int, int], patch: int) -> dict:
    """The shipped `running.npz` of every convolution of `model` as the pass's global targets
    (`<layer>|<stat>`); a file missing, left over or of another shape is refused by name."""
    from pathlib import Path

    from ddflow.data.datasets import DataError

    convs = [n for n, m in sites(model) if isinstance(m, nn.Conv2d)]
    shapes: dict[str, tuple] = {}
    modules = dict(model.named_modules())

    def shape_of(name):
        def fn(module, inputs):
            shapes[name] = tuple(inputs[0].shape[1:])

        return fn

    handles = [modules[n].register_forward_pre_hook(shape_of(n)) for n in convs]
    try:
        model.eval()(torch.zeros(1, *chw, device=next(model.parameters()).device))
    finally:
        for h in handles:
            h.remove()
    found = {d.name.split("=", 1)[-1]: d for d in Path(folder).iterdir() if d.is_dir()}
    extra = sorted(set(found) - set(convs))
    if extra:
        raise DataError(f"statistics folder '{folder}': {extra[:3]} are not convolutions of the "
                        "teacher; are these another model's statistics?")  # fmt: skip
    out = {}
    for name in convs:
        path = found[name] / "running.npz" if name in found else None
        if path is None or not path.is_file():
            raise DataError(f"statistics folder '{folder}' has no <class>={name}/running.npz for "
                            f"the teacher's convolution '{name}'")  # fmt: skip
        data = np.load(path)
        c, h, w = shapes[name]
        cells = math.ceil(h / patch) * math.ceil(w / patch)
        for theirs, ours in SHIPPED_KEYS.items():
            v = np.asarray(data[theirs], np.float64).reshape(-1)
            want = c if ours in ("mean", "var") else cells
            if v.size != want or not np.isfinite(v).all():
                raise DataError(
                    f"'{path}': {theirs} has {v.size} values (finite: {np.isfinite(v).all()}); "
                    f"'{name}' takes {c} channels and {cells} cells of {patch} px at this image "
                    "size: are they this teacher's, at this size and methods.<name>.patch?"
                )
            out[f"{name}|{ours}"] = v
    return out
