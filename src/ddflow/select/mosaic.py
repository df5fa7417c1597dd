"""RDED's selection of teacher-scored real crops and their k x k mosaic (reference §3.2).

Per class: `candidates` random real images, `num_crops` RandomResizedCrops (square, size/k) of
each, scored by the teacher's cross-entropy after zero-padding to full size; the best crop of each
image is kept, crops are sorted by ascending CE, and image i of the class is the k x k grid whose
cell j is kept crop j*ipc + i (resized to size/k, nearest). k = 1 gives whole-size single crops.
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
def mosaic_class(
    teacher: nn.Module,
    norm: Normalizer,
    images,
    label: int,
    ipc: int,
    factor: int,
    num_crops: int,
    candidates: int,
    rng: random.Random,
) -> torch.Tensor:
    """Normalized (ipc, C, H, W) mosaics for one class from its uint8 training images.

    `images` indexes like a uint8 array; only the sampled candidates are read from it.
    """
    n_cells = ipc * factor * factor
    picks = rng.sample(range(len(images)), min(candidates, len(images)))
    if len(picks) < n_cells:
        raise ValueError(
            f"class {label}: {len(picks)} candidate images < IPC x factor^2 = "
            f"{n_cells}; lower the mosaic factor or raise candidates"
        )
    x = norm.to_tensor(images[picks])
    _, _, h, w = x.shape
    ph, pw = h // factor, w // factor
    crops = torch.stack(
        [
            torch.cat(
                [
                    crop_resize(
                        x[i : i + 1],
                        sample_rrc_box(h, w, (0.08, 1.0), rng, ratio=(1.0, 1.0)),
                        (ph, pw),
                        True,
                    )
                    for _ in range(num_crops)
                ]
            )
            for i in range(len(picks))
        ]
    )
    # scored in chunks sized for the device: a class's candidates x crops at full size (ImageNet:
    # 300 x 5 images of ~50 MB activations each) would not fit one forward
    flat = crops.flatten(0, 1)
    pad = ((w - pw) // 2, w - pw - (w - pw) // 2, (h - ph) // 2, h - ph - (h - ph) // 2)
    chunk = inference_batch(teacher, x.shape[1:], x.device)
    target = torch.full((chunk,), label, device=x.device)
    ce = torch.cat(
        [
            F.cross_entropy(teacher(F.pad(part, pad)), target[: len(part)], reduction="none")
            for part in flat.split(chunk)
        ]
    ).view(len(picks), num_crops)
    best_ce, best = ce.min(1)
    kept = crops[torch.arange(len(picks)), best][best_ce.argsort()][:n_cells]
    rows = []
    for i in range(ipc):
        cells = [
            F.interpolate(kept[j * ipc + i : j * ipc + i + 1], size=(ph, pw), mode="nearest")
            for j in range(factor * factor)
        ]
        grid = torch.cat(
            [torch.cat(cells[r * factor : (r + 1) * factor], dim=3) for r in range(factor)], dim=2
        )
        rows.append(F.pad(grid, (0, w - grid.shape[3], 0, h - grid.shape[2]), mode="replicate"))
    return torch.cat(rows)
