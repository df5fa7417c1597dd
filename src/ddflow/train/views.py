"""The student's augmented views, drawn once and replayable: what FKD relabel stores.

Each epoch's draws (batch order, per-image crop box and flip, the batch's CutMix box and
permutation) come from generators seeded by (seed, epoch) alone, so an epoch range can be relabelled
by its own job and a stored-label student replays exactly the images an online-teacher student with
the same seed would see (reference-algorithms.md §1.5).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import numpy as np
import torch

from ddflow.recover.augment import sample_rrc_box
from ddflow.train.common import resample_boxes


@dataclass
class View:
    """One batch: source rows, per-image crop boxes (top, left, h, w) or None (no crop), flips,
    and the CutMix box (y0, y1, x0, x1) with its permutation and label weight, or None."""

    idx: np.ndarray
    boxes: np.ndarray | None
    flips: np.ndarray
    mix_box: tuple[int, int, int, int] | None = None
    mix_perm: np.ndarray | None = None
    mix_lam: float = 1.0  # share of each image that is still its own (hard-label weight)


def epoch_streams(seed: int, epoch: int) -> tuple[torch.Generator, random.Random]:
    """Independent torch and Python generators for one epoch of one seed."""
    digest = hashlib.sha256(f"views:{seed}:{epoch}".encode()).digest()
    s = int.from_bytes(digest[:8], "little") >> 1
    return torch.Generator().manual_seed(s), random.Random(s)


def draw_epoch(
    n: int, batch_size: int, hw: tuple[int, int], cfg: dict, seed: int, epoch: int
) -> list[View]:
    """All views of one epoch under the student recipe `cfg` (min/max_scale, hflip, cutmix)."""
    gen, rng = epoch_streams(seed, epoch)
    h, w = hw
    scale = (cfg["min_scale"], cfg["max_scale"])
    perm = torch.randperm(n, generator=gen).numpy()
    views = []
    for s in range(0, n, batch_size):
        idx = perm[s : s + batch_size]
        b = len(idx)
        boxes = None
        if scale != (1.0, 1.0):
            boxes = np.array([sample_rrc_box(h, w, scale, rng) for _ in range(b)], np.int32)
        flips = np.zeros(b, bool)
        if cfg["hflip"]:
            flips = (torch.rand(b, generator=gen) < 0.5).numpy()
        view = View(idx, boxes, flips)
        if cfg["cutmix"] > 0:
            lam = rng.betavariate(cfg["cutmix"], cfg["cutmix"])
            cut = (1 - lam) ** 0.5
            ch, cw = int(h * cut), int(w * cut)
            cy = int(torch.randint(0, h, (1,), generator=gen))
            cx = int(torch.randint(0, w, (1,), generator=gen))
            y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
            x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
            view.mix_box = (y0, y1, x0, x1)
            view.mix_perm = torch.randperm(b, generator=gen).numpy()
            view.mix_lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
        views.append(view)
    return views


def render(x: torch.Tensor, view: View) -> torch.Tensor:
    """Apply a view to the normalized batch `x` (rows already `images[view.idx]`): crops and
    flips in one batched resample (train/common.py), CutMix as one indexed copy."""
    if view.boxes is not None:
        x = resample_boxes(x, view.boxes, view.flips)
    elif view.flips.any():
        mask = torch.as_tensor(view.flips, device=x.device).view(-1, 1, 1, 1)
        x = torch.where(mask, x.flip(-1), x)
    if view.mix_box is not None:
        y0, y1, x0, x1 = view.mix_box
        perm = torch.as_tensor(view.mix_perm, device=x.device)
        x = x.clone()
        x[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
    return x
