"""BatchNorm-statistics matching loss (SRe2L's regulariser, reference-algorithms.md §1.2).

For the input f of every BatchNorm2d: R_l = ||mu(f) - running_mean||_2 + ||var(f) - running_var||_2
with mu, var over (N, H, W), biased variance; total = sum_l w_l R_l, w_1 = first_bn_multiplier.
The teacher stays in eval(), so its forward uses running stats; only this term sees batch stats.

Speed: autograd through var_mean costs more than the convolutions on CPU, so a custom op computes
each layer's statistics with contiguous row sums and adds their gradient to f's in closed form
(an affine function of f per channel). Everything after the statistics (distances, norms,
weights) runs once for all layers, so the term costs a few operator calls a layer, not ~20.
"""

from __future__ import annotations

import torch
from torch import nn


def _raw_moments(x: torch.Tensor) -> torch.Tensor:
    """Per-channel E[x] and E[x^2] over (N, H, W), (2, C) in float64: the variance is taken from
    them later, for all layers at once, in float64 (float32 at least for bf16 inputs)."""
    m = x.numel() // x.shape[1]
    if x.dtype in (torch.bfloat16, torch.float16):
        # Reductions that accumulate in float32 as they read: no float copy of the activation.
        dims = (0, 2, 3)
        mean = x.mean(dims, dtype=torch.float32)
        sq = torch.linalg.vector_norm(x, dim=dims, dtype=torch.float32).square()
        return torch.stack((mean, sq / m)).double()
    if not x.is_contiguous():  # channels_last (CUDA) or strided: one var_mean
        if x.is_contiguous(memory_format=torch.channels_last):
            var, mean = torch.var_mean(
                x.permute(0, 2, 3, 1).reshape(-1, x.shape[1]), 0, correction=0
            )
        else:
            var, mean = torch.var_mean(x, dim=(0, 2, 3), correction=0)
        mean = mean.double()
        return torch.stack((mean, var.double() + mean.square()))
    rows = x.view(x.shape[0], x.shape[1], -1)  # contiguous row sums, accumulated in float64
    sums = torch.stack((rows.sum(2), torch.linalg.vector_norm(rows, dim=2).square()))
    return sums.double().sum(1) / m


def _moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance over (N, H, W), in x's dtype (float32 for bf16)."""
    return _mean_var(_raw_moments(x), torch.float32 if x.dtype != torch.float64 else x.dtype)


def _mean_var(raw: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, var) from (..., 2, C) raw moments: var = E[x^2] - E[x]^2 in float64, floored at 0."""
    mean = raw.select(-2, 0)
    var = (raw.select(-2, 1) - mean.square()).clamp_min(0)
    return mean.to(dtype), var.to(dtype)


def _parts(x: torch.Tensor, chunks: int | tuple[int, ...]) -> tuple[torch.Tensor, ...]:
    """The independent batches x holds: `chunks` equal ones, or of the given sizes."""
    return x.split(list(chunks)) if isinstance(chunks, tuple | list) else x.chunk(chunks)


class _BNMoments(torch.autograd.Function):
    """Identity on x, plus its raw moments per chunk, (chunks, 2, C), whose gradient is added to
    x's in closed form: d/dx = g_1 / M + 2 g_2 x / M (E[x] and E[x^2] are affine in x and x^2).

    With `chunks` > 1, x holds that many independent batches packed along N (runtime
    pack_batches): each chunk gets its own statistics, so every batch sees exactly the loss it
    would see alone.
    """

    @staticmethod
    def forward(ctx, x, chunks):
        parts = _parts(x.detach(), chunks)
        raw = (
            torch.stack([_raw_moments(p) for p in parts])
            if len(parts) > 1
            else _raw_moments(x)[None]
        )
        ctx.save_for_backward(x)
        ctx.chunks = chunks
        return x.view_as(x), raw

    @staticmethod
    def backward(ctx, grad_x, grad_raw):
        (x,) = ctx.saved_tensors
        parts = _parts(x, ctx.chunks)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        grads = []
        for i, part in enumerate(parts):
            m = part.numel() // x.shape[1]
            # In x's dtype (bf16 under autocast), so no float copy of the activation is made.
            scaled = (grad_raw[i] * grad_raw.new_tensor([1 / m, 2 / m]).view(2, 1)).to(x.dtype)
            grads.append(torch.addcmul(scaled[0].view(shape), part, scaled[1].view(shape)))
        grad = grads[0] if len(grads) == 1 else torch.cat(grads)
        if grad_x is not None:
            grad += grad_x
        return grad, None


class BNStatLoss:
    """Pre-hooks on every BatchNorm2d; `value()` is the weighted sum after a forward.

    Each hook only takes its layer's moments; the distances to the running statistics, their
    norms and the weighted sum are computed for all layers at once (a few operator calls per step
    instead of some twenty per layer: on a GPU each is a kernel launch).
    `chunks`: how many independent batches the forward holds, packed along N (see _BNMoments).
    """

    def __init__(self, model: nn.Module, first_bn_multiplier: float = 10.0, chunks: int = 1):
        self.chunks = chunks
        self.bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        if not self.bns:
            raise ValueError("BN-statistics recovery needs a teacher with BatchNorm2d layers")
        self.weights = [first_bn_multiplier] + [1.0] * (len(self.bns) - 1)
        self.stats: list[torch.Tensor | None] = [None] * len(self.bns)
        self._running: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self.handles = [
            bn.register_forward_pre_hook(self._hook(i)) for i, bn in enumerate(self.bns)
        ]

    def _hook(self, i: int):
        def hook(module: nn.BatchNorm2d, inputs):
            x, self.stats[i] = _BNMoments.apply(inputs[0], self.chunks)
            return (x,)

        return hook

    def _targets(self, device: torch.device):
        """(running mean and var of all layers, (2, sum C); each channel's layer; the weights),
        built once: the teacher is frozen."""
        if self._running is None or self._running[0].device != device:
            running = torch.stack(
                [torch.cat([bn.running_mean for bn in self.bns]),
                 torch.cat([bn.running_var for bn in self.bns])]
            ).to(device)  # fmt: skip
            layer = torch.cat(
                [torch.full((bn.num_features,), i) for i, bn in enumerate(self.bns)]
            ).to(device)
            self._running = (running, layer, torch.tensor(self.weights, device=device))
        return self._running

    def target(self, device: torch.device) -> torch.Tensor:
        """What each layer's batch statistics are matched to: (2, sum C), or one per chunk."""
        return self._targets(device)[0]

    def terms(self) -> torch.Tensor:
        """R_l of every layer, summed over packed chunks: (layers,)."""
        raw = torch.cat(self.stats, dim=-1)  # (chunks, 2, sum C)
        running, layer = self.target(raw.device), self._targets(raw.device)[1]
        sq = (torch.stack(_mean_var(raw, running.dtype), 1) - running).square()
        per_layer = sq.new_zeros(*sq.shape[:2], len(self.bns)).index_add_(2, layer, sq)
        positive = per_layer > 0  # a zero distance has no direction: its gradient is 0
        norms = torch.where(positive, per_layer, 1.0).sqrt() * positive
        return norms.sum((0, 1))

    def value(self) -> torch.Tensor:
        return torch.dot(self.terms(), self._targets(self.stats[0].device)[2])

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


class NoBNStats:
    """The statistics term of a teacher without BatchNorm (FADRM+'s AlexNet, an instance-norm
    ConvNet) in a multi-teacher kind: nothing to match, so its steps are CE only, as released."""

    chunks = 1

    def value(self) -> torch.Tensor:
        return torch.zeros(())

    def remove(self) -> None:
        pass


def member_bn_loss(model: nn.Module, first_bn_multiplier: float) -> BNStatLoss | NoBNStats:
    """A list member's BN term (single-teacher kinds keep BNStatLoss's error for a BN-less one)."""
    if any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
        return BNStatLoss(model, first_bn_multiplier)
    return NoBNStats()


class ClassBNStatLoss(BNStatLoss):
    """LPLD's target (reference-frontier.md §3.2): each batch holds one class's images and is
    matched to that class's rows of the class-aware BatchNorm statistics (recover/stats.py,
    `<layer>|bn_class`: classes x (mean, var) x C), not to the running statistics that the
    teacher's forward still normalizes with. Packed chunks are each one class."""

    def __init__(self, model: nn.Module, stats: dict, first_bn_multiplier: float = 10.0,
                 chunks: int = 1):  # fmt: skip
        super().__init__(model, first_bn_multiplier, chunks)
        names = [n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
        missing = [n for n in names if f"{n}|bn_class" not in stats]
        if missing:
            raise ValueError(f"class-aware BatchNorm statistics lack layers {missing[:3]}")
        rows = torch.cat([torch.as_tensor(stats[f"{n}|bn_class"]) for n in names], -1)
        self.class_rows = rows.float()  # (classes, 2, sum C)
        self._class_target: torch.Tensor | None = None

    def set_labels(self, labels: torch.Tensor) -> None:
        first = torch.stack([p[0] for p in _parts(labels, self.chunks)])
        if self.class_rows.device != labels.device:
            self.class_rows = self.class_rows.to(labels.device)
        self._class_target = self.class_rows[first]  # (chunks, 2, sum C)

    def target(self, device: torch.device) -> torch.Tensor:
        if self._class_target is None:
            raise RuntimeError("ClassBNStatLoss: set_labels before the forward")
        return self._class_target
