"""Teacher ranking of real training images (DELT data_selection, reference-algorithms.md §4.1).

Every training image is scored by the teacher's softmax probability of its true class; the full
ranking is kept, and a criterion picks each class's images *in order*: that order decides which
images get the longest EarlyLate optimisation.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ddflow.data.datasets import DataError
from ddflow.data.pixels import Normalizer

CRITERIA = ("lowest", "highest", "medium")


@torch.no_grad()
def true_class_probs(
    teacher: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    norm: Normalizer,
    batch_size: int = 500,
    class_rows: list[int] | None = None,
) -> np.ndarray:
    """Softmax probability of each image's class; `class_rows` maps dataset classes to the
    outputs of a model that knows more classes (DELT ranked ImageNet-100 with ImageNet-1K's)."""
    teacher.eval()
    rows = torch.as_tensor(class_rows) if class_rows is not None else None
    out = []
    for s in range(0, len(labels), batch_size):
        probs = teacher(norm.to_tensor(images[s : s + batch_size])).softmax(1).cpu()
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
    rows = []
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        if len(idx) < ipc:
            raise DataError(
                f"config key 'ipc': class {c} has {len(idx)} training images, fewer than IPC "
                f"{ipc}; lower ipc"
            )
        ascending = idx[np.argsort(scores[idx], kind="stable")]
        if criterion == "lowest":
            rows.append(ascending[:ipc])
        elif criterion == "highest":
            rows.append(ascending[::-1][:ipc])
        else:
            rows.append(ascending[medium_order(len(ascending))[:ipc]])
    return np.stack(rows)
