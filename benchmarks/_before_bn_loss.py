"""BEFORE, kept verbatim for benchmarks/student_speed.py's "before" count (ddflow does not use
it): the BN-statistics op as it was until the per-layer norms were fused.

BatchNorm-statistics matching loss (SRe2L's regulariser, reference-algorithms.md §1.2).

For the input f of every BatchNorm2d: R_l = ||mu(f) - running_mean||_2 + ||var(f) - running_var||_2
with mu, var over (N, H, W), biased variance; total = sum_l w_l R_l, w_1 = first_bn_multiplier.
The teacher stays in eval(), so its forward uses running stats; only this term sees batch stats.

Speed: autograd through var_mean costs more than the convolutions on CPU. The gradient of R_l is
a per-channel affine function of f, dR/df = a / M + 2 b (f - mu) / M with a, b the unit
directions of (mu - running_mean) and (var - running_var) and M = N*H*W, so a custom op computes
the statistics with contiguous row sums and adds that gradient in closed form.
"""

from __future__ import annotations

import torch
from torch import nn


def _moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance over (N, H, W), in float32 at least (bf16 inputs)."""
    if x.dtype in (torch.bfloat16, torch.float16):
        # Reductions that accumulate in float32 as they read: no float copy of the activation.
        dims = (0, 2, 3)
        mean = x.mean(dims, dtype=torch.float32)
        sq = torch.linalg.vector_norm(x, dim=dims, dtype=torch.float32).square()
        return mean, (sq / (x.numel() // x.shape[1]) - mean.square()).clamp_min(0)
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        var, mean = torch.var_mean(x.permute(0, 2, 3, 1).reshape(-1, x.shape[1]), 0, correction=0)
        return mean, var
    if not x.is_contiguous():
        var, mean = torch.var_mean(x, dim=(0, 2, 3), correction=0)
        return mean, var
    n, c = x.shape[:2]
    rows = x.view(n, c, -1)
    m = rows.shape[0] * rows.shape[2]
    s1 = rows.sum(2).double().sum(0)
    s2 = torch.linalg.vector_norm(rows, dim=2).double().square().sum(0)
    mean = s1 / m
    var = (s2 / m - mean.square()).clamp_min(0)
    return mean.to(x.dtype), var.to(x.dtype)


def _unit(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    norm = torch.linalg.vector_norm(v)
    return norm, torch.where(norm > 0, v / norm.clamp_min(1e-30), torch.zeros_like(v))


class _BNStatTerm(torch.autograd.Function):
    """Identity on x, plus the scalar R_l as a second output with a closed-form gradient.

    With `chunks` > 1, x holds that many independent batches packed along N (runtime
    pack_batches): each chunk gets its own statistics and R_l is the sum over chunks, so every
    batch sees exactly the loss it would see alone.
    """

    @staticmethod
    def forward(ctx, x, running_mean, running_var, chunks):
        terms, stats = [], []
        for part in x.detach().chunk(chunks):
            mean, var = _moments(part)
            # bf16 autocast: statistics and directions stay float32; the gradient is cast back.
            norm_m, dir_m = _unit(mean - running_mean)
            norm_v, dir_v = _unit(var - running_var)
            terms.append(norm_m + norm_v)
            stats.append(torch.stack((mean, dir_m, dir_v)))
        ctx.save_for_backward(x, *stats)
        return x.view_as(x), terms[0] if chunks == 1 else torch.stack(terms).sum()

    @staticmethod
    def backward(ctx, grad_x, grad_term):
        x, *stats = ctx.saved_tensors
        parts = x.chunk(len(stats))
        m = parts[0].numel() // x.shape[1]
        shape = (1, -1) + (1,) * (x.dim() - 2)
        grads = []
        for part, (mean, dir_m, dir_v) in zip(parts, stats):
            beta = (grad_term * 2 / m) * dir_v
            alpha = (grad_term / m) * dir_m - beta * mean
            # In x's dtype (bf16 under autocast), so no float copy of the activation is made.
            grads.append(
                torch.addcmul(alpha.to(x.dtype).view(shape), part, beta.to(x.dtype).view(shape))
            )
        grad = grads[0] if len(grads) == 1 else torch.cat(grads)
        if grad_x is not None:
            grad += grad_x
        return grad, None, None, None


class BNStatLoss:
    """Pre-hooks on every BatchNorm2d; `value()` is the weighted sum after a forward.

    `chunks`: how many independent batches the forward holds, packed along N (see _BNStatTerm).
    """

    def __init__(self, model: nn.Module, first_bn_multiplier: float = 10.0, chunks: int = 1):
        self.chunks = chunks
        self.bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        if not self.bns:
            raise ValueError("BN-statistics recovery needs a teacher with BatchNorm2d layers")
        self.weights = [first_bn_multiplier] + [1.0] * (len(self.bns) - 1)
        self.terms: list[torch.Tensor | None] = [None] * len(self.bns)
        self.handles = [
            bn.register_forward_pre_hook(self._hook(i)) for i, bn in enumerate(self.bns)
        ]

    def _hook(self, i: int):
        def hook(module: nn.BatchNorm2d, inputs):
            x, self.terms[i] = _BNStatTerm.apply(
                inputs[0], module.running_mean, module.running_var, self.chunks
            )
            return (x,)

        return hook

    def value(self) -> torch.Tensor:
        return sum(w * t for w, t in zip(self.weights, self.terms))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
