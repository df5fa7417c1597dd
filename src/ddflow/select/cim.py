"""CIM's synthesis (reference-frontier.md §6.1): per class, the 4 x IPC candidate images the
observer (the teacher) is most confident on, in 2 x 2 mosaics, then a perturbation of the
mosaics refined so that each cell, upsampled to full size, has the intermediate features of the
real image it came from under the same differentiable augmentation.

Cell k of mosaic m is kept image k * IPC + m (RDED's layout), resized (nearest) to half size.
Each of `iterations` AdamW steps augments the real images and the cells together with one draw of
IDC's DiffAug('crop_cutout_flip', batch=True): one flip, one shift and one cutout box for the whole
batch, in that order ("siamese": each pair sees the same); the loss is the sum over pairs of the
mean absolute feature difference at the input of `feature_layer` (null: the classifier's). The
pairs are forwarded in chunks sized for the device, each chunk's gradient accumulated, so the
step is the whole class's.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from torch import nn

from ddflow.compute import inference_batch
from ddflow.data.pixels import Normalizer
from ddflow.select.edc_mosaic import ensemble_ce
from ddflow.train.dsa import _FNS

CHAIN = ("flip", "crop", "cutout")  # the order DiffAug applies 'crop_cutout_flip' in


def paired_augment(a: torch.Tensor, b: torch.Tensor, gen: torch.Generator):
    """The chain on [a; b] with one parameter draw for the whole batch (DiffAug's batch=True).
    The ops move or mask every channel alike, so the batch is drawn as one image of all the
    channels."""
    both = torch.cat([a, b])
    shape = both.shape
    for name in CHAIN:
        both = _FNS[name](both.reshape(1, -1, *shape[-2:]), gen).reshape(shape)
    return both[: len(a)], both[len(a) :]


class _Reached(Exception):
    pass


class FeatureAt:
    """The input of one module of a frozen model (the forward stops there); the model's own
    calls (the scoring) run whole."""

    def __init__(self, model: nn.Module, layer: str | None):
        from ddflow.models.registry import final_linear

        self.model = model
        name = layer or final_linear(model)
        modules = dict(model.named_modules())
        if name not in modules:
            raise ValueError(
                f"feature_layer '{name}' is not a module of the teacher; choose one of "
                f"{[n for n in modules if n][:12]}..."
            )
        self.handle = modules[name].register_forward_pre_hook(self._hook)
        self.out, self.active = None, False

    def _hook(self, module, inputs):
        if self.active:
            self.out = inputs[0]
            raise _Reached

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.active = True
        try:
            self.model(x)
        except _Reached:
            pass
        finally:
            self.active = False
        return self.out

    def remove(self) -> None:
        self.handle.remove()


def lowest_ce(teacher: nn.Module, x: torch.Tensor, label: int, n: int) -> torch.Tensor:
    """The n images of x (normalized, one class) the teacher is most confident on, in that
    order, scored in chunks sized for the device."""
    return x[ensemble_ce([teacher], x, label).argsort()[:n]]


def mosaics(kept: torch.Tensor, ipc: int) -> torch.Tensor:
    """(ipc, C, H, W): image m the 2 x 2 grid of kept images m, ipc + m, 2 ipc + m, 3 ipc + m."""
    h, w = kept.shape[-2:]
    cells = F.interpolate(kept, size=(h // 2, w // 2), mode="nearest")
    cells = cells.view(4, ipc, kept.shape[1], h // 2, w // 2)
    top = torch.cat([cells[0], cells[1]], dim=3)
    bottom = torch.cat([cells[2], cells[3]], dim=3)
    grid = torch.cat([top, bottom], dim=2)
    return F.pad(grid, (0, w - grid.shape[3], 0, h - grid.shape[2]), mode="replicate")


def cells(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """(4 * ipc, C, H, W): cell k of every mosaic, upsampled (bilinear), ordered as the kept."""
    h2, w2 = hw[0] // 2, hw[1] // 2
    parts = [x[..., :h2, :w2], x[..., :h2, w2 : 2 * w2], x[..., h2 : 2 * h2, :w2],
             x[..., h2 : 2 * h2, w2 : 2 * w2]]  # fmt: skip
    return torch.cat([F.interpolate(p, size=hw, mode="bilinear", align_corners=False)
                      for p in parts])  # fmt: skip


def cim_class(
    teacher: nn.Module,
    norm: Normalizer,
    images,
    label: int,
    ipc: int,
    method: dict,
    rng: random.Random,
    features: FeatureAt,
) -> torch.Tensor:
    """Normalized (ipc, C, H, W) refined mosaics of one class from its uint8 training images."""
    n = 4 * ipc
    picks = rng.sample(range(len(images)), min(method["candidates"], len(images)))
    if len(picks) < n:
        raise ValueError(
            f"class {label}: {len(picks)} candidate images < 4 x IPC = {n}; raise candidates "
            "or lower ipc"
        )
    kept = lowest_ce(teacher, norm.to_tensor(images[sorted(picks)]), label, n)
    base = mosaics(kept, ipc)
    delta = torch.zeros_like(base, requires_grad=True)
    opt = torch.optim.AdamW([delta], lr=method["lr"], weight_decay=method["weight_decay"])
    gen = torch.Generator().manual_seed(rng.getrandbits(63))
    chunk = max(1, inference_batch(teacher, base.shape[1:], base.device) // 2)
    hw = tuple(base.shape[-2:])
    for _ in range(method["iterations"]):
        real, fake = paired_augment(kept, cells(base + delta, hw), gen)
        opt.zero_grad(set_to_none=True)
        parts = list(zip(real.split(chunk), fake.split(chunk)))
        for j, (r, f) in enumerate(parts):
            with torch.no_grad():
                target = features(r)
            got = features(f)
            loss = (got - target).abs().flatten(1).mean(1).sum()
            loss.backward(retain_graph=j + 1 < len(parts))
        opt.step()
    out = (base + delta).detach()
    if not torch.isfinite(out).all():
        raise ValueError(f"class {label}: non-finite pixels after refinement; lower lr")
    return out
