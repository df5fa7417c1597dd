"""EDC's ImageNet-1K starts (reference-frontier.md §2.2; recover/data_synthesis_without_optim.py):
2 x 2 mosaics of the real patches a teacher ensemble is most confident on.

Per class: every training image scored by the cross-entropy of the ensemble's mean logits, the
`candidates` lowest kept in that order; of them the first whole chunks of `chunk` images (300 in
chunks of 64: the first 256) each take `draws` RandomResizedCrop + flip draws, one box and one
coin for the whole chunk (torchvision's transforms on a batch tensor, as released); the patches
are scored the same way, sorted by ascending cross-entropy, the first 4 x IPC resized to half
size (bilinear, antialiased) and tiled consecutively: image i holds patches 4i..4i+3 (top-left,
top-right, bottom-left, bottom-right), so the lowest four make image 0. Difference: the released
generator writes each patch as a JPEG and reads it back; here patches stay in memory.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from torch import nn

from ddflow.compute import inference_batch
from ddflow.data.pixels import Normalizer
from ddflow.recover.augment import crop_resize, sample_rrc_box


@torch.no_grad()
def ensemble_ce(teachers: list[nn.Module], x: torch.Tensor, label: int) -> torch.Tensor:
    """Cross-entropy of the teachers' mean logits on each image, in chunks sized for the device."""
    chunk = min(inference_batch(t, x.shape[1:], x.device) for t in teachers)
    out = []
    for part in x.split(chunk):
        logits = torch.stack([t(part) for t in teachers]).mean(0)
        target = torch.full((len(part),), label, device=x.device)
        out.append(F.cross_entropy(logits, target, reduction="none"))
    return torch.cat(out)


def _scored(teachers, norm: Normalizer, images, label: int, chunk: int) -> torch.Tensor:
    """Ensemble CE of every image of the class, its uint8 rows converted a chunk at a time."""
    n = len(images)
    parts = [list(range(s, min(s + chunk, n))) for s in range(0, n, chunk)]
    return torch.cat([ensemble_ce(teachers, norm.to_tensor(images[p]), label) for p in parts])


@torch.no_grad()
def edc_mosaic_class(
    teachers: list[nn.Module],
    norm: Normalizer,
    images,
    label: int,
    ipc: int,
    method: dict,
    rng: random.Random,
) -> torch.Tensor:
    """Normalized (ipc, C, H, W) mosaics of one class from its uint8 training images."""
    ce = _scored(teachers, norm, images, label, 256)
    order = ce.argsort()[: method["candidates"]].tolist()
    whole = len(order) // method["chunk"]
    if whole * method["chunk"] * method["draws"] < 4 * ipc:
        raise ValueError(
            f"class {label}: {len(order)} candidates make {whole} chunks of {method['chunk']} "
            f"x {method['draws']} draws, fewer patches than 4 x IPC = {4 * ipc}; raise "
            "candidates or draws, or lower chunk"
        )
    kept = norm.to_tensor(images[order[: whole * method["chunk"]]])
    _, _, h, w = kept.shape
    patches, losses = [], []
    for part in kept.split(method["chunk"]):
        for _ in range(method["draws"]):
            box = sample_rrc_box(h, w, (method["min_scale"], 1.0), rng)
            p = crop_resize(part, box, (h, w), True)
            p = p.flip(-1) if rng.random() < 0.5 else p
            patches.append(p)
            losses.append(ensemble_ce(teachers, p, label))
    best = torch.cat(losses).argsort()[: 4 * ipc]
    cells = F.interpolate(torch.cat(patches)[best], size=(h // 2, w // 2), mode="bilinear",
                          align_corners=False, antialias=True)  # fmt: skip
    cells = cells.view(ipc, 2, 2, kept.shape[1], h // 2, w // 2)
    grid = torch.cat([torch.cat([cells[:, r, 0], cells[:, r, 1]], dim=3) for r in (0, 1)], dim=2)
    return F.pad(grid, (0, w - grid.shape[3], 0, h - grid.shape[2]), mode="replicate")
