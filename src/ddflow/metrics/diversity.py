"""Intra-class diversity of a distilled set (DELT Figure 2, left).

For every image, the cosine similarity between its teacher penultimate feature (the input of the
last Linear layer) and its class centroid; averaged per class and overall. Lower = more diverse.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ddflow.data.pixels import Normalizer, chw_of
from ddflow.data.prefetch import batches
from ddflow.models.registry import final_linear


@torch.no_grad()
def features_and_logits(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The input of the model's last Linear layer, and its output, for one batch."""
    classifier = model.get_submodule(final_linear(model))
    feats = []
    handle = classifier.register_forward_hook(lambda m, inp, out: feats.append(inp[0].flatten(1)))
    try:
        logits = model(x)
    finally:
        handle.remove()
    return feats[0], logits


@torch.no_grad()
def penultimate_features(
    model: nn.Module, images: np.ndarray, norm: Normalizer, batch_size: int | None = None
) -> torch.Tensor:
    """Features of uint8 images, normalized per batch (a 224-px set is tens of GB as floats),
    in batches sized for the device unless given."""
    from ddflow.compute import inference_batch

    model.eval()
    device = norm.mean.device
    batch_size = batch_size or inference_batch(model, chw_of(images), device)
    return torch.cat(
        [
            features_and_logits(model, norm.to_tensor(batch))[0].cpu()
            for _, batch in batches(images, batch_size, device, task="diversity features")
        ]
    )


def centroid_cosine(features: torch.Tensor, labels: np.ndarray) -> dict:
    per_class = {}
    for c in np.unique(labels):
        f = features[torch.as_tensor(labels == c)]
        per_class[int(c)] = F.cosine_similarity(f, f.mean(0, keepdim=True)).mean().item()
    return {
        "mean_cosine_to_centroid": float(np.mean(list(per_class.values()))),
        "per_class": per_class,
    }
