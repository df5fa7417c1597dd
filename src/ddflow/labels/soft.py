"""Soft labels from a teacher ("relabel"), computed online on the exact image the student sees.

KD loss: KL(log_softmax(student / T) || softmax(teacher / T)), batch-mean; RDED/DELT/SRe2L use no
T^2 factor, the Tiny-ImageNet script does (reference-algorithms.md §0.9), hence the switch.
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F
from torch import nn


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float,
    t2_factor: bool = False,
) -> torch.Tensor:
    loss = F.kl_div(
        F.log_softmax(student_logits.float() / temperature, dim=1),
        F.softmax(teacher_logits.float() / temperature, dim=1),  # bf16 teacher: float32 here
        reduction="batchmean",
    )
    return loss * temperature**2 if t2_factor else loss


def mse_gt(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, weight: float
) -> torch.Tensor:
    """G-VBSM's and EDC's student loss: MSE between the logits (mean over batch x classes) plus
    weight x cross-entropy on each image's own class (CutMix or not, as released)."""
    s = student_logits.float()
    return F.mse_loss(s, teacher_logits.float()) + weight * F.cross_entropy(s, labels)


class Ensemble(nn.Module):
    """Several teachers labelling as one (G-VBSM's and EDC's relabel and online ensembles): the
    mean of their logits, or with norm_mean each teacher's logits of the batch first rescaled to
    the teachers' mean Frobenius norm (G-VBSM ImageNet)."""

    def __init__(self, teachers: list[nn.Module], mode: str = "mean"):
        super().__init__()
        self.members, self.mode = nn.ModuleList(teachers), mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.stack([m(x).float() for m in self.members])  # (teachers, batch, classes)
        if self.mode == "norm_mean":
            norms = torch.linalg.matrix_norm(logits, keepdim=True)
            logits = logits / norms * norms.mean(0, keepdim=True)
        return logits.mean(0)


class BatchStatTeacher(nn.Module):
    """FADRM's and CV-DD's "BSSL" relabel (reference-frontier.md §4.3): the teacher is left in
    train mode, so each forward over `chunk` images normalizes with those images' own batch
    statistics (the released batch of 16 as two halves of 8). Its running statistics are never
    used in train mode; here they are also never moved (momentum 0), so the labeler is the
    same at every call. With `dropout` its dropout layers are in train mode too, as the released
    relabel leaves the whole model (AlexNet's p 0.5, MobileNet-V2's 0.2): each chunk's masks are
    drawn from a seed of its own pixels, so a label depends only on its image batch, online or
    stored, in whatever job or order it is made."""

    def __init__(self, teacher: nn.Module, chunk: int, dropout: bool = False):
        super().__init__()
        self.teacher, self.chunk = teacher, chunk
        self.bns = [m for m in teacher.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        self.drops = [m for m in teacher.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
        self.dropout = dropout and bool(self.drops)
        for bn in self.bns:
            bn.momentum = 0.0

    def _forward(self, part: torch.Tensor) -> torch.Tensor:
        if not self.dropout:
            return self.teacher(part)
        seed = int.from_bytes(hashlib.sha256(part.detach().cpu().numpy().tobytes()).digest()[:8])
        devices = [part.device] if part.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed >> 1)
            return self.teacher(part)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        live = self.bns + (self.drops if self.dropout else [])
        for m in live:
            m.train()
        try:
            return torch.cat([self._forward(part) for part in x.split(self.chunk)])
        finally:
            for m in live:
                m.eval()


class OnlineTeacher:
    """Frozen teacher in eval mode (fixes SRe2L-CIFAR's train-mode teacher quirk)."""

    def __init__(self, teacher: nn.Module):
        self.teacher = teacher.eval().requires_grad_(False)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.teacher(x)
