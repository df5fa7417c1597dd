"""Speed at scale without changing results: batched augmentation (same draws, same pixels up to
float rounding), a student step whose operator calls do not grow with the batch, the fused
BN-statistics term, prefetched batches, and the bf16 student recipe key."""

import random
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ddflow.compute import operator_calls  # noqa: E402
from ddflow.data.datasets import DatasetBundle  # noqa: E402
from ddflow.data.pixels import Normalizer  # noqa: E402
from ddflow.data.prefetch import prefetch  # noqa: E402
from ddflow.labels.protocols import make_protocol  # noqa: E402
from ddflow.models import build_model  # noqa: E402
from ddflow.recover.augment import crop_resize, sample_rrc_box  # noqa: E402
from ddflow.recover.bn_loss import BNStatLoss  # noqa: E402
from ddflow.recover.loop import freeze  # noqa: E402
from ddflow.train.common import (  # noqa: E402
    Precision,
    param_groups,
    per_sample_rrc,
    random_crop_pad,
    resample_boxes,
)
from ddflow.train.student import student_step, train_student  # noqa: E402
from ddflow.train.views import draw_epoch, render  # noqa: E402

RECIPE = {
    "min_scale": 0.08, "max_scale": 1.0, "hflip": True, "cutmix": 1.0, "labels": "online",
    "temperature": 20, "t2_factor": False, "epochs": 10,
}  # fmt: skip


def per_image(x, boxes, flips):
    """The per-image path the batched resample replaced: one crop_resize (antialiased) a row."""
    h, w = x.shape[-2:]
    out = torch.cat(
        [crop_resize(x[i : i + 1], tuple(b), (h, w), True) for i, b in enumerate(boxes)]
    )
    return torch.where(torch.as_tensor(flips).view(-1, 1, 1, 1), out.flip(-1), out)


@pytest.mark.parametrize("hw", [(32, 32), (224, 224), (20, 30)])
def test_batched_resample_equals_the_per_image_crops_and_flips(hw):
    rng = random.Random(0)
    x = torch.randn(12, 3, *hw)
    boxes = np.array([sample_rrc_box(*hw, (0.08, 1.0), rng) for _ in range(12)])
    boxes[0] = (0, 0, *hw)  # a whole-image box is the image itself
    flips = np.arange(12) % 3 == 0
    out = resample_boxes(x, boxes, flips)
    # float32 coordinates in F.interpolate itself differ by ~1e-5 px at 224
    torch.testing.assert_close(out, per_image(x, boxes, flips), rtol=0, atol=2e-4)
    torch.testing.assert_close(out[0], x[0].flip(-1), rtol=0, atol=1e-4)


def test_a_view_renders_its_drawn_crops_flips_and_cutmix():
    x = torch.randn(16, 3, 32, 32)
    (view,) = draw_epoch(16, 16, (32, 32), RECIPE, seed=1, epoch=3)
    assert view.boxes is not None and view.flips.any() and view.mix_box is not None
    ref = per_image(x, view.boxes, view.flips)
    y0, y1, x0, x1 = view.mix_box
    ref[:, :, y0:y1, x0:x1] = ref[torch.as_tensor(view.mix_perm), :, y0:y1, x0:x1]
    torch.testing.assert_close(render(x, view), ref, rtol=0, atol=1e-4)


def test_teacher_crops_keep_their_draws_and_the_padded_crop_its_exact_pixels():
    x = torch.randn(32, 3, 16, 16)
    # padded crop: the same torch draws as the per-image loop it replaced, bit for bit
    offs = torch.randint(0, 9, (32, 2), generator=torch.Generator().manual_seed(5)).tolist()
    padded = torch.nn.functional.pad(x, (4,) * 4)
    ref = torch.stack([padded[i, :, dy : dy + 16, dx : dx + 16] for i, (dy, dx) in enumerate(offs)])
    assert torch.equal(random_crop_pad(x, 4, torch.Generator().manual_seed(5)), ref)
    # RandomResizedCrop: the same boxes from the same Python stream
    rng_a, rng_b = random.Random(7), random.Random(7)
    boxes = [sample_rrc_box(16, 16, (0.08, 1.0), rng_b) for _ in range(32)]
    out = per_sample_rrc(x, (0.08, 1.0), rng_a)
    torch.testing.assert_close(out, per_image(x, boxes, np.zeros(32, bool)), rtol=0, atol=1e-4)
    assert rng_a.random() == rng_b.random()  # both streams advanced alike


def _student(batch: int):
    torch.manual_seed(0)
    teacher = build_model("convnet_d3", 10, 3, (32, 32)).train()
    with torch.no_grad():
        teacher(torch.randn(20, 3, 32, 32))
    teacher = freeze(teacher)
    model = build_model("convnet_d3", 10, 3, (32, 32))
    opt = torch.optim.AdamW(param_groups(model, 0.01, True), lr=1e-3)
    protocol = make_protocol(RECIPE, 0, batch, batch, (32, 32), teacher=teacher)
    (view,), _ = protocol.epoch(1)
    images = torch.randint(0, 256, (batch, 32, 32, 3), dtype=torch.uint8)
    labels = torch.arange(batch) % 10
    norm = Normalizer([0.5] * 3, [0.25] * 3)
    step = (images, labels, view, None)

    def run():
        return student_step(
            model, protocol, opt, norm, Precision("fp32", torch.device("cpu")), step
        )

    run()  # optimizer state exists from here on
    return run


def test_a_student_steps_operator_calls_do_not_grow_with_the_batch():
    small, large = operator_calls(_student(8)), operator_calls(_student(128))
    assert small > 50  # the count sees the step's operators at all
    assert large <= 1.1 * small, (small, large)


def test_the_bn_term_costs_a_few_operator_calls_a_layer():
    def calls(depth: int) -> int:
        torch.manual_seed(0)
        layers = [nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)]
        for _ in range(depth - 1):
            layers += [nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)]
        model = freeze(nn.Sequential(*layers).eval())
        x = torch.randn(4, 3, 8, 8, requires_grad=True)
        bn = BNStatLoss(model)

        def step():
            model(x)
            torch.autograd.grad(bn.value(), x)

        step()
        with_bn = operator_calls(step)
        bn.remove()

        def plain():
            torch.autograd.grad(model(x).sum(), x)

        return with_bn - operator_calls(plain)

    per_layer = (calls(12) - calls(2)) / 10
    assert per_layer <= 12, per_layer  # before the fusion: about 40


def test_prefetch_keeps_order_bounds_its_lead_and_surfaces_errors_at_their_item():
    started, lock = [], threading.Lock()

    def load(i):
        with lock:
            started.append(i)
        if i == 6:
            raise ValueError("bad item 6")
        return i * i

    out = prefetch(range(10), load, depth=2)
    assert next(out) == 0
    time.sleep(0.05)
    assert max(started) <= 2  # at most `depth` items ahead of the consumer
    got = [0]
    with pytest.raises(ValueError, match="bad item 6"):
        for v in out:
            got.append(v)
    assert got == [0, 1, 4, 9, 16, 25]  # everything before the bad item arrived, in order
    early = prefetch(range(1000), lambda i: i, depth=3)
    assert next(early) == 0
    early.close()  # a consumer that stops early leaves nothing running
    assert list(prefetch([], load)) == []


def _bundle():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 12, 12, 1), dtype=np.uint8)
    y = np.repeat(np.arange(4), 10)
    return x, DatasetBundle(x, y, x[:20], y[:20], ["a", "b", "c", "d"], [0.5], [0.25])


def test_a_bf16_student_runs_its_and_the_teachers_forward_in_bf16():
    x, bundle = _bundle()
    teacher = build_model("convnet_d3", 4, 1, (12, 12)).eval()
    cfg = {
        "arch": "convnet_d3", "epochs": 2, "batch_size": 8, "lr": 1e-3, "weight_decay": 0.01,
        "no_decay_bn_bias": True, "schedule": "half_cosine", "temperature": 20,
        "t2_factor": False, "min_scale": 0.5, "max_scale": 1.0, "hflip": True, "cutmix": 1.0,
        "eval_every": 1, "randaugment": None, "labels": "online",
    }  # fmt: skip
    seen = []
    teacher.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    fp32 = train_student(x[:8], teacher, bundle, cfg, 0, torch.device("cpu"))
    assert set(seen) == {torch.float32}
    seen.clear()
    bf16 = train_student(x[:8], teacher, bundle, {**cfg, "precision": "bf16"}, 0, "cpu")
    assert set(seen) == {torch.bfloat16}  # the online teacher under autocast
    assert all(np.isfinite(p["train_loss"]) for p in bf16["curve"])
    assert [p["train_loss"] for p in bf16["curve"]] != [p["train_loss"] for p in fp32["curve"]]


def test_bf16_enters_the_student_id_and_fp32_leaves_every_id_as_it_was():
    from ddflow.config import StageIds, validate_config

    base = {"dataset": {"name": "m", "source": "mnist-embedded"}, "teacher": {}, "ipc": [2],
            "methods": {"s": {"kind": "sre2l"}}}  # fmt: skip
    ids = StageIds(validate_config({**base, "student": {}}))
    same = StageIds(validate_config({**base, "student": {"precision": "fp32"}}))
    bf16 = StageIds(validate_config({**base, "student": {"precision": "bf16"}}))
    assert same.students == ids.students
    assert bf16.students != ids.students
    assert bf16.teacher == ids.teacher
