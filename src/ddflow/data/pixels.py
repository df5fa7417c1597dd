"""Conversions between stored uint8 images (N, H, W, C) and normalized tensors (N, C, H, W)."""

from __future__ import annotations

import numpy as np
import torch


def chw_of(images) -> tuple[int, int, int]:
    """(C, H, W) of uint8 (N, H, W, C) images (an array or ImageFiles), as a model takes them."""
    _, h, w, c = images.shape
    return c, h, w


class Normalizer:
    def __init__(self, mean: list[float], std: list[float], device: torch.device | str = "cpu"):
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)

    def to_tensor(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(images).to(self.mean.device, non_blocking=True)  # pinned: async
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        return (x - self.mean) / self.std

    def bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Valid pixel range [0, 1] in normalized space, per channel."""
        return (0 - self.mean) / self.std, (1 - self.mean) / self.std

    def to_uint8(self, x: torch.Tensor) -> np.ndarray:
        """Denormalize, clamp to [0, 1], x255 and truncate, as the authors' save does."""
        x01 = (x.detach() * self.std + self.mean).clamp_(0, 1)
        return (x01 * 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
