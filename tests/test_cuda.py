"""Checks that need a GPU (run where one is available; skipped elsewhere with the reason)."""

import random

import pytest
import torch

from ddflow.models import build_model
from ddflow.recover.augment import RecoverAugment
from ddflow.recover.bn_loss import BNStatLoss, _moments
from ddflow.recover.loop import freeze, recover_batch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _teacher():
    torch.manual_seed(0)
    teacher = build_model("resnet18_lowres", 10, 3, (32, 32)).cuda().train()
    with torch.no_grad():
        teacher(torch.randn(64, 3, 32, 32, device="cuda"))
    return freeze(teacher)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cuda_recovery_is_channels_last_and_finite(precision):
    teacher = _teacher()
    assert teacher.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    x0 = torch.randn(20, 3, 32, 32, generator=torch.Generator().manual_seed(1)).cuda()
    lo = torch.full((1, 3, 1, 1), -2.5, device="cuda")
    bn = BNStatLoss(teacher)
    rows = [torch.arange(0, 20, 2, device="cuda"), None]  # a DELT-style active subset, then all
    out = recover_batch(
        teacher,
        bn,
        x0,
        torch.arange(20, device="cuda") % 10,
        iterations=12,
        lr=0.1,
        r_bn=0.05,
        augment=RecoverAugment(crop=True, flip=True, jitter=4),
        bounds=(lo, -lo),
        rng=random.Random(0),
        precision=precision,
        active_at=lambda step: rows[step // 6],
    )
    bn.remove()
    assert out.is_contiguous(memory_format=torch.channels_last) and torch.isfinite(out).all()
    assert (out >= lo).all() and (out <= -lo).all() and not torch.equal(out, x0)


def test_bn_moments_on_gpu_match_float64():
    x = torch.randn(16, 64, 28, 28, device="cuda") * 2 + 0.5
    ref = x.double()
    mean, var = ref.mean((0, 2, 3)), ref.var((0, 2, 3), unbiased=False)
    for t in (x, x.contiguous(memory_format=torch.channels_last), x.bfloat16()):
        m, v = _moments(t)
        tol = 1e-4 if t.dtype == torch.float32 else 3e-2
        torch.testing.assert_close(m.double(), mean, rtol=tol, atol=tol)
        torch.testing.assert_close(v.double(), var, rtol=tol, atol=tol)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cuda_students_train_from_pinned_prefetched_batches(precision):
    import numpy as np

    from ddflow.data.datasets import DatasetBundle
    from ddflow.train.student import train_student

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (200, 32, 32, 3), dtype=np.uint8)
    y = np.repeat(np.arange(10), 20)
    bundle = DatasetBundle(
        x, y, x[:100], y[:100], [str(c) for c in range(10)], [0.5] * 3, [0.25] * 3
    )
    teacher = freeze(_teacher())
    cfg = {
        "arch": "resnet18_lowres", "epochs": 2, "batch_size": 50, "lr": 1e-3, "weight_decay": 0.01,
        "no_decay_bn_bias": True, "schedule": "half_cosine", "temperature": 20,
        "t2_factor": False, "min_scale": 0.08, "max_scale": 1.0, "hflip": True, "cutmix": 1.0,
        "eval_every": 1, "randaugment": "rand-m6-n2-mstd1.0", "labels": "online",
        "precision": precision,
    }  # fmt: skip
    seen = []
    hook = teacher.register_forward_hook(lambda m, i, o: seen.append((o.dtype, i[0].is_cuda)))
    out = train_student(x[:100], teacher, bundle, cfg, 0, torch.device("cuda"))
    hook.remove()
    assert all(np.isfinite(p["train_loss"]) for p in out["curve"])
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    assert set(seen) == {(dtype, True)}  # the online teacher under the student's precision
