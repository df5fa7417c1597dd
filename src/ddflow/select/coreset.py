"""Coreset selection per class from the teacher: herding, k-center greedy, EL2N.

Each returns positions in the order they were chosen, so the first N of an IPC-M selection are
the IPC-N selection (greedy sequences and score orders both nest), as for the random subset.
Distances are computed in float64 on L2-normalised features, so selections do not depend on
the feature file's float16 storage beyond its rounding.
"""

from __future__ import annotations

import numpy as np

from ddflow.data.datasets import DataError


def _unit(features: np.ndarray) -> np.ndarray:
    f = np.asarray(features, dtype=np.float64)
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)


def herding(features: np.ndarray, k: int) -> np.ndarray:
    """Welling's herding as iCaRL selects exemplars: each step adds the sample that brings the
    mean of those chosen closest to the class mean. Ties go to the lowest position."""
    f = _unit(features)
    mu = f.mean(0)
    chosen: list[int] = []
    total = np.zeros(f.shape[1])
    free = np.ones(len(f), dtype=bool)
    for step in range(1, k + 1):
        dist = np.linalg.norm(mu - (total + f) / step, axis=1)
        dist[~free] = np.inf
        j = int(np.argmin(dist))
        chosen.append(j)
        total += f[j]
        free[j] = False
    return np.asarray(chosen, dtype=np.int64)


def k_center_greedy(features: np.ndarray, k: int) -> np.ndarray:
    """Sener and Savarese's greedy k-center (a 2-approximation of the minimax radius): start
    at the sample nearest the class mean, then add the sample farthest from all chosen ones."""
    f = _unit(features)
    first = int(np.argmin(np.linalg.norm(f - f.mean(0), axis=1)))
    chosen = [first]
    nearest = np.linalg.norm(f - f[first], axis=1)
    for _ in range(k - 1):
        j = int(np.argmax(nearest))
        chosen.append(j)
        nearest = np.minimum(nearest, np.linalg.norm(f - f[j], axis=1))
    return np.asarray(chosen, dtype=np.int64)


def el2n(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Paul et al.'s error L2-norm: ||softmax output - one-hot label||, from the teacher."""
    err = np.asarray(probs, dtype=np.float64).copy()
    err[np.arange(len(labels)), labels] -= 1.0
    return np.linalg.norm(err, axis=1)


def by_score(scores: np.ndarray, k: int, hardest: bool) -> np.ndarray:
    """The k highest (hardest) or lowest scores; ties go to the lowest position."""
    order = np.argsort(-scores if hardest else scores, kind="stable")
    return order[:k]


def per_class(labels: np.ndarray, num_classes: int, ipc: int, pick) -> np.ndarray:
    """Indices into the training set, class-major: `pick(indices_of_class)` returns the chosen
    positions within the class, in their order."""
    out = []
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        if len(idx) < ipc:
            raise DataError(
                f"config key 'ipc': class {c} has {len(idx)} training images, fewer than IPC "
                f"{ipc}; lower ipc"
            )
        out.append(idx[pick(idx)])
    return np.concatenate(out)
