import math
import random

import pytest
import torch

from ddflow.recover.augment import RecoverAugment
from ddflow.recover.schedules import crop_scale_bounds

T = 1000


@pytest.mark.parametrize("m", [0.25, 0.5, 1.0])
@pytest.mark.parametrize("t", [0, 100, 249, 250, 499, 600, 999])
def test_schedules_equal_the_formulas(m, t):
    bl, bu = 0.08, 1.0
    u = t / (m * T)
    before = t < m * T
    # Independent spelling of reference-algorithms.md §2.1.
    want = {
        "step": 1.0 if before else bl,
        "linear": bl + (bu - bl) * (1 - u) if before else bl,
        "cosine": bl + (bu - bl) * (1 + math.cos(math.pi * u)) / 2 if before else bl,
    }
    for mode, lower in want.items():
        assert crop_scale_bounds(t, T, mode, m, bl, bu) == pytest.approx((lower, bu)), mode


def test_cosine_milestone_one_anneals_over_the_whole_run():
    lows = [crop_scale_bounds(t, T, "cosine", 1.0, 0.08, 1.0)[0] for t in range(T)]
    assert lows[0] == pytest.approx(1.0) and lows[500] == pytest.approx(0.54)
    assert all(a >= b for a, b in zip(lows, lows[1:]))
    assert lows[-1] == pytest.approx(0.08, abs=1e-4)


def test_milestone_zero_is_sre2l():
    for mode in ("step", "linear", "cosine"):
        assert {crop_scale_bounds(t, T, mode, 0.0, 0.08, 1.0) for t in range(0, T, 50)} == {
            (0.08, 1.0)
        }
    sre2l = RecoverAugment(crop=True, min_scale=0.08, flip=False)
    cda0 = RecoverAugment(crop=True, min_scale=0.08, schedule="cosine", milestone=0.0, flip=False)
    x = torch.randn(2, 3, 32, 32)
    for t in range(20):
        assert torch.equal(sre2l(x, t, 20, random.Random(t)), cda0(x, t, 20, random.Random(t)))


def test_reverse_and_constant():
    assert crop_scale_bounds(100, T, "reverse_step", 0.4, 0.08, 1.0) == (0.08, 1.0)
    assert crop_scale_bounds(400, T, "reverse_step", 0.4, 0.08, 1.0) == (1.0, 1.0)
    assert crop_scale_bounds(5, T, "constant", 0.7, 0.08, 0.4) == (0.08, 0.4)


def test_early_steps_of_cosine_see_nearly_whole_images():
    aug = RecoverAugment(crop=True, min_scale=0.08, schedule="cosine", milestone=1.0, flip=False)
    x = torch.zeros(1, 1, 64, 64, requires_grad=True)
    aug(x, 0, T, random.Random(0)).sum().backward()
    assert (x.grad != 0).float().mean() > 0.7  # the box covers most of the image


def test_write_back_gradient_only_inside_box_for_scheduled_crop():
    aug = RecoverAugment(crop=True, min_scale=0.08, schedule="cosine", milestone=1.0, flip=False)
    x = torch.randn(2, 1, 32, 32, requires_grad=True)
    aug(x, 900, T, random.Random(3)).square().sum().backward()
    touched = x.grad.abs().sum((0, 1)) > 0
    rows, cols = touched.any(1).nonzero(), touched.any(0).nonzero()
    box = torch.zeros_like(touched)
    box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
    assert touched.sum() < 32 * 32 and torch.equal(touched, box)  # one rectangle, zero elsewhere


def test_per_image_crop_draws_a_box_per_image():
    x = torch.randn(1, 1, 32, 32).repeat(4, 1, 1, 1)
    shared = RecoverAugment(crop=True, min_scale=0.1, max_scale=0.3, flip=False)
    per = RecoverAugment(crop=True, min_scale=0.1, max_scale=0.3, flip=False, per_image_crop=True)
    out_shared, out_per = shared(x, 0, 1, random.Random(0)), per(x, 0, 1, random.Random(0))
    assert all(torch.equal(out_shared[0], out_shared[i]) for i in range(4))
    assert not all(torch.equal(out_per[0], out_per[i]) for i in range(4))
