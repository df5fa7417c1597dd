"""Differentiable crop/flip/roll applied to the synthetic tensor during recovery.

The crop is slicing plus bilinear resize on the full-resolution tensor, so autograd writes the
gradient back into the crop region only (CDA's "ReverseRandomResizedCrop" is exactly this).
By default one box, one flip and one roll are drawn per step for the whole batch, as torchvision
transforms do on a 4-D tensor in the authors' code; per-image draws are a different algorithm.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ddflow.recover.schedules import crop_scale_bounds

RATIO = (3 / 4, 4 / 3)


def sample_rrc_box(
    height: int,
    width: int,
    scale: tuple[float, float],
    rng: random.Random,
    ratio: tuple[float, float] = RATIO,
) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop.get_params, drawn from `rng`: (top, left, h, w)."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, height - h), rng.randint(0, width - w), h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def crop_resize(
    x: torch.Tensor, box: tuple[int, int, int, int], size: tuple[int, int], antialias: bool
) -> torch.Tensor:
    top, left, h, w = box
    crop = x[..., top : top + h, left : left + w]
    if (h, w) == tuple(size):
        return crop
    return F.interpolate(crop, size=size, mode="bilinear", align_corners=False, antialias=antialias)


@dataclass
class RecoverAugment:
    """Per-step augmentation of the recovery loop (SRe2L §1.2 order: crop, flip, roll)."""

    crop: bool = True
    min_scale: float = 0.08  # beta_l
    max_scale: float = 1.0  # beta_u
    schedule: str = "constant"
    milestone: float = 0.0
    per_image_crop: bool = False
    antialias: bool = False
    flip: bool = True
    jitter: int = 0
    jitter_mode: str = "positive"  # SRe2L ImageNet/CIFAR: randint(0, j); Tiny: randint(-j, j)
    pad: int = 0  # without crop: RandomCrop(size, pad), zero padding (G-VBSM's small sets)

    @classmethod
    def from_method(cls, m: dict) -> RecoverAugment:
        return cls(
            crop=m["crop"],
            min_scale=m["min_scale"],
            max_scale=m["max_scale"],
            schedule=m["crop_schedule"],
            milestone=m["milestone"],
            per_image_crop=m["crop_per_image"],
            antialias=m["antialias"],
            flip=m["flip"],
            jitter=m["jitter"],
            jitter_mode=m["jitter_mode"],
            pad=m.get("pad", 0),
        )

    def scale_bounds(self, step: int, total: int) -> tuple[float, float]:
        return crop_scale_bounds(
            step, total, self.schedule, self.milestone, self.min_scale, self.max_scale
        )

    def __call__(self, x: torch.Tensor, step: int, total: int, rng: random.Random) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.crop:
            scale = self.scale_bounds(step, total)
            if self.per_image_crop:
                x = torch.cat(
                    [
                        crop_resize(
                            x[i : i + 1], sample_rrc_box(h, w, scale, rng), (h, w), self.antialias
                        )
                        for i in range(len(x))
                    ]
                )
            else:
                x = crop_resize(x, sample_rrc_box(h, w, scale, rng), (h, w), self.antialias)
        elif self.pad:  # torchvision RandomCrop(size, padding) on the batch: one window
            top, left = rng.randint(0, 2 * self.pad), rng.randint(0, 2 * self.pad)
            x = F.pad(x, (self.pad,) * 4)[..., top : top + h, left : left + w]
        if self.flip and rng.random() < 0.5:
            x = x.flip(-1)
        if self.jitter:
            lo = 0 if self.jitter_mode == "positive" else -self.jitter
            dy, dx = rng.randint(lo, self.jitter), rng.randint(lo, self.jitter)
            x = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
        return x
