"""How well a classifier recognises a set's images whole and as random crops (CDA Table 9).

CDA classifies its, SRe2L's and real ImageNet-1K images with a pretrained MobileNet-V2, on the
global image and as the mean over 10 random crops: SRe2L's images, optimised on small crops,
are recognised as crops far better than whole; a curriculum closes that gap towards real images.
Crops are RandomResizedCrop boxes (scale 0.08-1, as recovery and students draw them), resized
back to the image size, one fresh box per image and round, seeded.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn

from ddflow.data.pixels import Normalizer, chw_of
from ddflow.data.prefetch import batches
from ddflow.train.common import per_sample_rrc

CROPS = 10
SCALE = (0.08, 1.0)


@torch.no_grad()
def view_top1(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    norm: Normalizer,
    crops: int = CROPS,
    seed: int = 0,
    batch_size: int | None = None,
) -> dict:
    """Top-1 (%) on the whole images, and the mean top-1 over `crops` rounds of random crops."""
    from ddflow.compute import inference_batch

    model.eval()
    device = norm.mean.device
    batch_size = batch_size or inference_batch(model, chw_of(images), device)
    rng = random.Random(seed)
    y = torch.as_tensor(labels)
    correct_global, correct_crops = 0, 0
    for s, batch in batches(images, batch_size, device, task="recognition"):
        x = norm.to_tensor(batch)
        target = y[s : s + batch_size]
        correct_global += (model(x).argmax(1).cpu() == target).sum().item()
        for _ in range(crops):
            out = model(per_sample_rrc(x, SCALE, rng))
            correct_crops += (out.argmax(1).cpu() == target).sum().item()
    n = len(labels)
    return {
        "top1_global": 100.0 * correct_global / n,
        "top1_crops": 100.0 * correct_crops / (n * crops),
        "crops": crops,
    }
