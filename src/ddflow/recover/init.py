"""Initializers of the synthetic tensor (in normalized space)."""

from __future__ import annotations

import torch


def gaussian_init(n: int, chw: tuple[int, int, int], seed: int) -> torch.Tensor:
    """SRe2L/CDA: x ~ N(0, 1) in normalized space, drawn on CPU so bytes match across devices."""
    return torch.randn((n, *chw), generator=torch.Generator().manual_seed(seed))
