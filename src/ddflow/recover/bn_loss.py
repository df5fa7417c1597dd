"""BatchNorm-statistics matching loss (SRe2L's regulariser, reference-algorithms.md §1.2).

For the input f of every BatchNorm2d: R_l = ||mu(f) - running_mean||_2 + ||var(f) - running_var||_2
with mu, var over (N, H, W), biased variance; total = sum_l w_l R_l, w_1 = first_bn_multiplier.
The teacher stays in eval(), so its forward uses running stats; only this term sees batch stats.
"""

from __future__ import annotations

import torch
from torch import nn


class BNStatLoss:
    """Forward hooks on every BatchNorm2d; `value()` is the weighted sum after a forward."""

    def __init__(self, model: nn.Module, first_bn_multiplier: float = 10.0):
        self.bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        if not self.bns:
            raise ValueError("BN-statistics recovery needs a teacher with BatchNorm2d layers")
        self.weights = [first_bn_multiplier] + [1.0] * (len(self.bns) - 1)
        self.terms: list[torch.Tensor | None] = [None] * len(self.bns)
        self.handles = [bn.register_forward_hook(self._hook(i)) for i, bn in enumerate(self.bns)]

    def _hook(self, i: int):
        def hook(module: nn.BatchNorm2d, inputs, output):
            var, mean = torch.var_mean(inputs[0], dim=(0, 2, 3), correction=0)
            self.terms[i] = torch.linalg.vector_norm(
                mean - module.running_mean
            ) + torch.linalg.vector_norm(var - module.running_var)

        return hook

    def value(self) -> torch.Tensor:
        return sum(w * t for w, t in zip(self.weights, self.terms))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
