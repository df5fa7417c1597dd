"""DELT's EarlyLate rounds (reference-algorithms.md §4.2).

MI max iterations, RI round iterations, R = MI // RI rounds. A class's IPC images split, in
selection order, into R groups (sizes IPC // R, the first IPC % R one larger); group g joins at
round g and all finish together, so group g is optimised (R - g) * RI steps. IPC 1 has no rounds.
"""

from __future__ import annotations

import numpy as np


def group_sizes(ipc: int, rounds: int) -> list[int]:
    return [ipc // rounds + (1 if g < ipc % rounds else 0) for g in range(rounds)]


def image_groups(
    ipc: int, max_iterations: int, round_iterations: int, early_late: bool = True
) -> np.ndarray:
    """Group (= joining round) of each of a class's IPC images, in selection order."""
    rounds = max_iterations // round_iterations if early_late and ipc > 1 else 1
    return np.repeat(np.arange(rounds), group_sizes(ipc, rounds))


def iterations_per_image(
    groups: np.ndarray, max_iterations: int, round_iterations: int
) -> np.ndarray:
    return max_iterations - groups * round_iterations
