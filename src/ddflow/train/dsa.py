"""Differentiable Siamese Augmentation (Zhao & Bilen), mode "S": the augmentation SRe2L-CL trains
its continual-learning students with (applications.md §1.2).

Each batch draws one family of `color_crop_cutout_flip_scale_rotate` uniformly (color is
brightness, then saturation, then contrast); that family's parameters are drawn per image. It works
on normalized batches, as DSA does. The ranges are DSA's defaults: scale 1.2, rotate +-15 degrees,
crop-pad 0.125, cutout 0.5, flip 0.5, brightness 1.0, saturation 2.0, contrast 0.5.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

FAMILIES = ("color", "crop", "cutout", "flip", "scale", "rotate")


def _u(gen: torch.Generator, n: int, x: torch.Tensor) -> torch.Tensor:
    """n uniform draws in [0, 1) from the CPU generator, shaped to broadcast over (C, H, W)."""
    return torch.rand(n, generator=gen).to(x.device, x.dtype).view(n, 1, 1, 1)


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, align_corners=True)


def _scale(x, gen, ratio=1.2):
    n = len(x)
    sx = torch.rand(n, generator=gen) * (ratio - 1 / ratio) + 1 / ratio
    sy = torch.rand(n, generator=gen) * (ratio - 1 / ratio) + 1 / ratio
    zero = torch.zeros(n)
    theta = torch.stack([torch.stack([sx, zero, zero], 1), torch.stack([zero, sy, zero], 1)], 1)
    return _affine(x, theta)


def _rotate(x, gen, degrees=15.0):
    n = len(x)
    a = (torch.rand(n, generator=gen) - 0.5) * 2 * degrees / 180 * math.pi
    zero = torch.zeros(n)
    rows = [torch.stack([a.cos(), a.sin(), zero], 1), torch.stack([-a.sin(), a.cos(), zero], 1)]
    return _affine(x, torch.stack(rows, 1))


def _flip(x, gen, prob=0.5):
    return torch.where(_u(gen, len(x), x) < prob, x.flip(3), x)


def _color(x, gen, brightness=1.0, saturation=2.0, contrast=0.5):
    n = len(x)
    x = x + (_u(gen, n, x) - 0.5) * brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_u(gen, n, x) * saturation) + mean
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (_u(gen, n, x) + contrast) + mean


def _crop(x, gen, ratio=0.125):
    """Translate each image by up to ratio x its size (whole pixels), zeros shifted in."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (n,), generator=gen)
    dx = torch.randint(-sw, sw + 1, (n,), generator=gen)
    ys = (torch.arange(h).view(1, h) + dy.view(n, 1)).to(x.device)  # source row of each row
    xs = (torch.arange(w).view(1, w) + dx.view(n, 1)).to(x.device)
    inside = ((ys >= 0) & (ys < h)).view(n, 1, h, 1) & ((xs >= 0) & (xs < w)).view(n, 1, 1, w)
    rows = ys.clamp(0, h - 1).view(n, 1, h, 1).expand(-1, x.shape[1], -1, w)
    out = x.gather(2, rows)
    cols = xs.clamp(0, w - 1).view(n, 1, 1, w).expand(-1, x.shape[1], h, -1)
    return out.gather(3, cols) * inside


def _cutout(x, gen, ratio=0.5):
    """Zero one box of ratio x the size per image, centred anywhere (clipped at the border)."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n,), generator=gen).view(n, 1)
    cx = torch.randint(0, w + (1 - cw % 2), (n,), generator=gen).view(n, 1)
    rows = torch.arange(h).view(1, h)
    cols = torch.arange(w).view(1, w)
    in_y = (rows >= cy - ch // 2) & (rows < cy - ch // 2 + ch)
    in_x = (cols >= cx - cw // 2) & (cols < cx - cw // 2 + cw)
    keep = ~(in_y.view(n, 1, h, 1) & in_x.view(n, 1, 1, w))
    return x * keep.to(x.device, x.dtype)


_FNS = {
    "color": _color,
    "crop": _crop,
    "cutout": _cutout,
    "flip": _flip,
    "scale": _scale,
    "rotate": _rotate,
}


def dsa(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One DSA draw for a normalized batch: one family for the batch, its parameters per image."""
    family = FAMILIES[int(torch.randint(0, len(FAMILIES), (1,), generator=gen))]
    return _FNS[family](x, gen)
