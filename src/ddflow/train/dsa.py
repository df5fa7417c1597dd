"""Differentiable Siamese Augmentation (Zhao & Bilen) and IDC's DiffAug built on the same ops.

DSA mode "S" (`dsa`), what SRe2L-CL trains its continual-learning students with (applications.md
§1.2): each batch draws one family of `color_crop_cutout_flip_scale_rotate` uniformly (color is
brightness, then saturation, then contrast); that family's parameters are drawn per image.
IDC's DiffAug (`idc`), what CIM's students take (reference-frontier.md §6.2): every image is
flipped, coloured and cut out, and one of crop, scale and rotate (drawn per batch) moves it, all
with parameters per image; before it `cell_crop` takes one mosaic cell of an image to full size.
Both work on normalized batches. The ranges are DSA's defaults: scale 1.2, rotate +-15 degrees,
crop-pad 0.125, cutout 0.5, flip 0.5, brightness 1.0, saturation 2.0, contrast 0.5.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

FAMILIES = ("color", "crop", "cutout", "flip", "scale", "rotate")


def _u(gen: torch.Generator, n: int, x: torch.Tensor) -> torch.Tensor:
    """n uniform draws in [0, 1) from the CPU generator, shaped to broadcast over (C, H, W)."""
    return torch.rand(n, generator=gen).to(x.device, x.dtype).view(n, 1, 1, 1)


def _affine(x: torch.Tensor, theta: torch.Tensor, corners: bool) -> torch.Tensor:
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=corners)
    return F.grid_sample(x, grid, align_corners=corners)


def _scale(x, gen, ratio=1.2, corners=True):
    n = len(x)
    sx = torch.rand(n, generator=gen) * (ratio - 1 / ratio) + 1 / ratio
    sy = torch.rand(n, generator=gen) * (ratio - 1 / ratio) + 1 / ratio
    zero = torch.zeros(n)
    theta = torch.stack([torch.stack([sx, zero, zero], 1), torch.stack([zero, sy, zero], 1)], 1)
    return _affine(x, theta, corners)


def _rotate(x, gen, degrees=15.0, corners=True):
    n = len(x)
    a = (torch.rand(n, generator=gen) - 0.5) * 2 * degrees / 180 * math.pi
    zero = torch.zeros(n)
    rows = [torch.stack([a.cos(), a.sin(), zero], 1), torch.stack([-a.sin(), a.cos(), zero], 1)]
    return _affine(x, torch.stack(rows, 1), corners)


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


# IDC samples its affine grids with PyTorch's default align_corners (False), DSA with True.
IDC_MOVES = (
    _crop,
    functools.partial(_scale, corners=False),
    functools.partial(_rotate, corners=False),
)


def idc(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """IDC's DiffAug('color_crop_cutout_flip_scale_rotate', batch=False) on a normalized batch."""
    x = _color(_flip(x, gen), gen)
    x = IDC_MOVES[int(torch.randint(0, len(IDC_MOVES), (1,), generator=gen))](x, gen)
    return _cutout(x, gen)


def cell_crop(x: torch.Tensor, gen: torch.Generator, factor: int) -> torch.Tensor:
    """CIM's RandomFactorResizedCrop per image: with probability 1 - 1/factor^2 one of the
    factor x factor cells (chosen uniformly), resized (bilinear) to the image's size, else the
    image whole."""
    if factor == 1:
        return x
    n, c, h, w = x.shape
    th, tw = h // factor, w // factor
    take = torch.rand(n, generator=gen) < 1 - 1 / factor**2
    row = torch.randint(0, factor, (n,), generator=gen)
    col = torch.randint(0, factor, (n,), generator=gen)
    grid = x[..., : factor * th, : factor * tw].reshape(n, c, factor, th, factor, tw)
    picked = grid.permute(0, 2, 4, 1, 3, 5)[torch.arange(n), row, col]  # (n, c, th, tw)
    up = F.interpolate(picked, size=(h, w), mode="bilinear", align_corners=False)
    return torch.where(take.to(x.device).view(n, 1, 1, 1), up, x)


def student_augment(cfg: dict):
    """The batch augmentation student.augment names (None for the replayable views), as a
    function of a normalized batch and the student's generator."""
    if cfg.get("augment", "views") == "dsa":
        return dsa
    if cfg.get("augment") == "idc":
        return lambda x, gen: idc(cell_crop(x, gen, cfg["cell_factor"]), gen)
    return None
