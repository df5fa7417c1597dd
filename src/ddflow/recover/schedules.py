"""Crop-scale schedules for recovery: CDA's curriculum on RandomResizedCrop (reference §2.1).

With t the step, T the total, m the milestone fraction and u = t / (mT):
  while t < mT: lower = beta_l + (beta_u - beta_l) * f(u), f = 1 (step), 1 - u (linear),
                (1 + cos(pi u)) / 2 (cosine); afterwards lower = beta_l.
The upper bound stays beta_u. m = 0 is plain SRe2L; the published CDA setting is cosine, m = 1.
`reverse_step` is the paper's reverse curriculum (Table 3): crops in [beta_l, beta_u] until the
milestone, then the whole image. `constant` is constant learning (Table 2) with fixed bounds.
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "step", "linear", "cosine", "reverse_step")


def crop_scale_bounds(
    step: int, total: int, schedule: str, milestone: float, beta_l: float, beta_u: float
) -> tuple[float, float]:
    """(lower, upper) RandomResizedCrop scale at `step` of `total`."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown crop schedule '{schedule}'; known: {SCHEDULES}")
    before = step < milestone * total
    if schedule == "constant" or not before and schedule != "reverse_step":
        return beta_l, beta_u
    if schedule == "reverse_step":
        return (beta_l, beta_u) if before else (beta_u, beta_u)
    u = step / (milestone * total)
    f = {"step": 1.0, "linear": 1.0 - u, "cosine": (1 + math.cos(math.pi * u)) / 2}[schedule]
    return beta_l + (beta_u - beta_l) * f, beta_u
