"""Teacher ranking of real training images (DELT data_selection, reference-algorithms.md §4.1).

Every training image is scored by the teacher's softmax probability of its true class; the full
ranking is kept, and a criterion picks each class's images *in order*: that order decides which
images get the longest EarlyLate optimisation. The coreset kinds' one teacher pass (features and
EL2N) is here too.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ddflow.compute import inference_batch
from ddflow.data.pixels import Normalizer, chw_of
from ddflow.data.prefetch import batches
from ddflow.metrics.diversity import features_and_logits
from ddflow.select.coreset import el2n, per_class

CRITERIA = ("lowest", "highest", "medium")


@torch.no_grad()
def true_class_probs(
    teacher: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    norm: Normalizer,
    batch_size: int | None = None,
    class_rows: list[int] | None = None,
) -> np.ndarray:
    """Softmax probability of each image's class; `class_rows` maps dataset classes to the
    outputs of a model that knows more classes (DELT ranked ImageNet-100 with ImageNet-1K's).
    Batches are sized for the device unless given."""
    teacher.eval()
    device = norm.mean.device
    batch_size = batch_size or inference_batch(teacher, chw_of(images), device)
    rows = torch.as_tensor(class_rows) if class_rows is not None else None
    out = []
    for s, batch in batches(images, batch_size, device, task="ranking"):
        probs = teacher(norm.to_tensor(batch)).softmax(1).cpu()
        y = torch.as_tensor(labels[s : s + batch_size])
        y = rows[y] if rows is not None else y
        out.append(probs.gather(1, y[:, None])[:, 0].numpy())
    return np.concatenate(out)


def medium_order(n: int) -> list[int]:
    """Positions in an ascending ranking: mid, mid+1, mid-1, mid+2, ... with mid = ceil(n/2)."""
    mid = math.ceil(n / 2)
    order = [mid + (k + 1) // 2 * (1 if k % 2 else -1) for k in range(2 * n + 2)]
    return [p for p in order if 0 <= p < n][:n]


def select(
    scores: np.ndarray, labels: np.ndarray, num_classes: int, ipc: int, criterion: str
) -> np.ndarray:
    """Indices (num_classes, ipc) into the training set, each row in selection order."""
    if criterion not in CRITERIA:
        raise ValueError(f"unknown selection criterion '{criterion}'; known: {CRITERIA}")

    def pick(idx: np.ndarray) -> np.ndarray:
        order = np.argsort(scores[idx], kind="stable")  # ascending
        if criterion == "lowest":
            return order[:ipc]
        if criterion == "highest":
            return order[::-1][:ipc]
        return order[medium_order(len(order))[:ipc]]

    return per_class(labels, num_classes, ipc, pick).reshape(num_classes, ipc)


@torch.no_grad()
def teacher_scores(
    model: nn.Module, images, labels: np.ndarray, norm: Normalizer, batch_size: int | None = None
) -> dict[str, np.ndarray]:
    """One pass of the teacher over the training set: L2-normalised penultimate features
    (float16, safe once unit length: a 1.28M-image set's are 1.3 GB) and EL2N."""
    model.eval()
    device = norm.mean.device
    batch_size = batch_size or inference_batch(model, chw_of(images), device)
    feats, scores = [], []
    for s, batch in batches(images, batch_size, device, task="features"):
        f, logits = features_and_logits(model, norm.to_tensor(batch))
        feats.append(F.normalize(f.float(), dim=1).cpu().numpy().astype(np.float16))
        probs = logits.softmax(1).cpu().numpy()
        scores.append(el2n(probs, labels[s : s + batch_size]).astype(np.float32))
    return {"features": np.concatenate(feats), "el2n": np.concatenate(scores), "labels": labels}
