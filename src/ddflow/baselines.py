"""Random real subset: the baseline every distilled set must beat under the same student recipe.

One seeded permutation per class, so the IPC-N subset is a prefix of the IPC-M subset (N < M).
"""

from __future__ import annotations

import numpy as np

from ddflow.select.coreset import per_class


def random_subset(labels: np.ndarray, ipc: int, seed: int, num_classes: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return per_class(labels, num_classes, ipc, lambda idx: rng.permutation(len(idx))[:ipc])
