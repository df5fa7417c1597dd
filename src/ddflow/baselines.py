"""Random real subset: the baseline every distilled set must beat under the same student recipe.

One seeded permutation per class, so the IPC-N subset is a prefix of the IPC-M subset (N < M).
"""

from __future__ import annotations

import numpy as np

from ddflow.data.datasets import DataError


def random_subset(labels: np.ndarray, ipc: int, seed: int, num_classes: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picks = []
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        if len(idx) < ipc:
            raise DataError(
                f"config key 'ipc': class {c} has {len(idx)} training images, fewer than IPC "
                f"{ipc}; lower ipc"
            )
        picks.append(idx[rng.permutation(len(idx))[:ipc]])
    return np.concatenate(picks)
