import math
import random

import numpy as np
import pytest
import torch

from ddflow.data.datasets import DatasetBundle
from ddflow.labels.soft import kd_loss
from ddflow.models import build_model
from ddflow.train.common import param_groups, per_sample_rrc
from ddflow.train.student import epoch_lr_factor, train_student
from ddflow.train.views import draw_epoch, render


def test_kd_loss_matches_formula():
    s, t = torch.randn(4, 5), torch.randn(4, 5)
    T = 3.0
    p = torch.softmax(t / T, 1)
    by_hand = (p * (p.log() - torch.log_softmax(s / T, 1))).sum() / 4
    assert kd_loss(s, t, T).item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert kd_loss(s, t, T, t2_factor=True).item() == pytest.approx(9 * by_hand.item(), rel=1e-5)
    assert kd_loss(t, t, T).item() == pytest.approx(0.0, abs=1e-6)


def test_lr_schedules():
    assert epoch_lr_factor(0, 300, "half_cosine") == 1.0
    assert epoch_lr_factor(300, 300, "half_cosine") == pytest.approx(0.5)
    assert epoch_lr_factor(300, 300, "cosine") == pytest.approx(0.0)
    assert epoch_lr_factor(150, 300, "cosine") == pytest.approx(0.5)
    assert epoch_lr_factor(100, 300, "half_cosine") == pytest.approx(
        0.5 * (1 + math.cos(math.pi / 6))
    )


def test_cutmix_pastes_one_box_from_a_permutation():
    x = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1).expand(4, 1, 8, 8).clone()
    recipe = {"min_scale": 1.0, "max_scale": 1.0, "hflip": False, "cutmix": 1.0}
    (view,) = draw_epoch(4, 4, (8, 8), recipe, seed=3, epoch=1)
    out = render(x, view)
    changed = (out != x).any(0).any(0)  # the same box for every image
    assert changed.any(), "no box was pasted"
    rows, cols = changed.nonzero(as_tuple=True)
    box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    assert changed[box].all(), "the pasted region is not one rectangle"
    sources = []
    for i in range(4):
        vals = out[i, 0][box].unique()
        assert len(vals) == 1  # one source image fills the box
        sources.append(int(vals))
    assert sorted(sources) == [0, 1, 2, 3]  # a permutation of the batch
    assert sources != [0, 1, 2, 3]
    assert (out[:, :, ~changed] == x[:, :, ~changed]).all()
    # the hard-label weight is the share of the image left unpasted
    area = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    assert view.mix_lam == pytest.approx(1 - float(area) / 64)


def test_per_sample_crop_draws_differ_and_no_decay_groups():
    x = torch.randn(1, 1, 16, 16).repeat(6, 1, 1, 1)
    out = per_sample_rrc(x, (0.1, 0.5), random.Random(0))
    assert out.shape == x.shape and not all(torch.equal(out[0], out[i]) for i in range(1, 6))
    model = build_model("convnet_d3", 3, 1, (16, 16))
    groups = param_groups(model, 0.01, True)
    assert all(p.ndim >= 2 for p in groups[0]["params"]) and groups[1]["weight_decay"] == 0.0


@pytest.mark.parametrize("randaugment", [None, "rand-m5-n2-mstd1.0"])
def test_student_reports_last_and_best_on_real_test_set(randaugment):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 12, 12, 1), dtype=np.uint8)
    y = np.repeat(np.arange(4), 10)
    bundle = DatasetBundle(x, y, x[:20], y[:20], ["a", "b", "c", "d"], [0.5], [0.25])
    teacher = build_model("convnet_d3", 4, 1, (12, 12)).eval()
    cfg = {
        "arch": "convnet_d3",
        "epochs": 3,
        "batch_size": 8,
        "lr": 1e-3,
        "weight_decay": 0.01,
        "no_decay_bn_bias": True,
        "schedule": "half_cosine",
        "temperature": 20,
        "t2_factor": False,
        "min_scale": 0.5,
        "max_scale": 1.0,
        "hflip": True,
        "cutmix": 1.0,
        "eval_every": 2,
        "randaugment": randaugment,
        "labels": "online",
    }
    r1 = train_student(x[:8], teacher, bundle, cfg, 0, torch.device("cpu"))
    r2 = train_student(x[:8], teacher, bundle, cfg, 0, torch.device("cpu"))
    assert [p["epoch"] for p in r1["curve"] if "test_top1" in p] == [2, 3]
    assert r1["top1_last"] == r1["curve"][-1]["test_top1"]
    assert r1["top1_best"] >= r1["top1_last"]
    assert r1["curve"] == r2["curve"]  # seeded: same run, same numbers


def test_randaugment_changes_images_per_image_and_follows_the_seed():
    from ddflow.train.common import rand_augment, seed_everything

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    ra = rand_augment("rand-m9-n3-mstd0.5", 16, [0.5, 0.5, 0.5])
    seed_everything(1)
    a = ra(images)
    seed_everything(1)
    b = ra(images)
    assert a.shape == images.shape and a.dtype == np.uint8
    assert np.array_equal(a, b)  # timm draws from Python's random, which the student seeds
    assert sum(not np.array_equal(a[i], images[i]) for i in range(6)) >= 5
    grey = rand_augment("rand-m9-n3-mstd0.5", 16, [0.5])(images[..., :1])
    assert grey.shape == (6, 16, 16, 1)


def test_teacher_random_resized_crops_are_seeded_and_replace_padding():
    from ddflow.train.teacher import train_teacher

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (40, 16, 16, 3), dtype=np.uint8)
    y = np.repeat(np.arange(4), 10)
    bundle = DatasetBundle(x, y, x[:8], y[:8], list("abcd"), [0.5] * 3, [0.25] * 3)
    cfg = {
        "arch": "convnet_d3",
        "epochs": 1,
        "batch_size": 20,
        "lr": 0.05,
        "momentum": 0.9,
        "weight_decay": 0.0,
        "warmup_epochs": 0,
        "crop_padding": 0,
        "hflip": False,
        "seed": 0,
    }

    def weights(**extra):
        model, _ = train_teacher(bundle, {**cfg, **extra}, torch.device("cpu"))
        return torch.cat([p.flatten() for p in model.parameters()])

    rrc = weights(min_scale=0.3)
    assert torch.equal(rrc, weights(min_scale=0.3))  # same seed, same crops, same bytes
    assert not torch.equal(rrc, weights())  # the crops are applied (padding 0 = no crop)


class _Spy(torch.nn.Module):
    """Records every input it sees, with the mode it was in."""

    def __init__(self, inner, seen):
        super().__init__()
        self.inner, self.seen = inner, seen

    def forward(self, x):
        self.seen.append((x.detach().clone(), self.training))
        return self.inner(x)


def test_the_online_teacher_sees_exactly_the_students_input_in_eval_mode(monkeypatch):
    import ddflow.train.student as student

    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (24, 12, 12, 1), dtype=np.uint8)
    y = np.repeat(np.arange(4), 6)
    bundle = DatasetBundle(x, y, x[:8], y[:8], ["a", "b", "c", "d"], [0.5], [0.25])
    seen_student, seen_teacher = [], []
    build = student.build_model
    monkeypatch.setattr(student, "build_model", lambda *a, **k: _Spy(build(*a, **k), seen_student))
    teacher = _Spy(build_model("convnet_d3", 4, 1, (12, 12)), seen_teacher)
    teacher.train()  # whatever mode it arrives in, it must label in eval mode
    cfg = {
        "arch": "convnet_d3", "epochs": 2, "batch_size": 4, "lr": 1e-3, "weight_decay": 0.0,
        "no_decay_bn_bias": False, "schedule": "cosine", "temperature": 4, "t2_factor": False,
        "min_scale": 0.3, "max_scale": 1.0, "hflip": True, "cutmix": 1.0, "eval_every": 1,
        "randaugment": None, "labels": "online",
    }  # fmt: skip
    train_student(x[:12], teacher, bundle, cfg, 0, torch.device("cpu"))
    trained_on = [inp for inp, training in seen_student if training]
    assert len(trained_on) == len(seen_teacher) == 2 * 3  # 12 images, batches of 4, 2 epochs
    for s, (t, teacher_training) in zip(trained_on, seen_teacher):
        assert torch.equal(s, t) and not teacher_training  # after crop, flip and CutMix
    assert not any(torch.equal(trained_on[0], t) for t in trained_on[1:])  # fresh draws


def test_evaluate_counts_a_known_answer():
    from ddflow.data.pixels import Normalizer
    from ddflow.train.common import evaluate

    class Brightness(torch.nn.Module):
        """Predicts class 1 for bright images, 0 for dark ones; 3 classes."""

        def forward(self, x):
            m = x.mean(dim=(1, 2, 3))
            return torch.stack([-m, m, torch.full_like(m, -1e9)], 1)

    images = np.zeros((7, 4, 4, 1), np.uint8)
    images[:3] = 200  # bright
    labels = np.array([1, 1, 0, 0, 0, 2, 1])  # right: 0, 1, 3, 4 -> 4 of 7
    model = Brightness().train()
    top1 = evaluate(model, images, labels, Normalizer([0.5], [0.25]), batch_size=3)
    assert top1 == pytest.approx(100 * 4 / 7)
    assert model.training  # the mode is restored


def test_padded_random_crop_shifts_by_at_most_the_padding_and_fills_zeros():
    from ddflow.train.common import random_crop_pad

    x = torch.arange(1, 17, dtype=torch.float32).view(1, 1, 4, 4).repeat(64, 1, 1, 1)
    out = random_crop_pad(x, 1, torch.Generator().manual_seed(0))
    shifts = set()
    for img in out[:, 0]:
        found = [
            (dy, dx)
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
            if torch.equal(
                img, torch.nn.functional.pad(x[0, 0], (1,) * 4)[1 + dy : 5 + dy, 1 + dx : 5 + dx]
            )
        ]
        assert found, "not a shifted copy with zero fill"
        shifts.add(found[0])
    assert shifts == {(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}  # all 9 offsets drawn
    assert torch.equal(random_crop_pad(x, 0, torch.Generator()), x)


def test_random_hflip_mirrors_some_images_left_right_and_follows_its_generator():
    from ddflow.train.common import random_hflip

    x = torch.randn(16, 3, 4, 5)
    out = random_hflip(x, torch.Generator().manual_seed(1))
    flipped = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x)]
    kept = [torch.equal(o, i) for o, i in zip(out, x)]
    assert all(f or k for f, k in zip(flipped, kept))  # each image: as is, or mirrored in width
    assert 0 < sum(flipped) < 16
    assert torch.equal(out, random_hflip(x, torch.Generator().manual_seed(1)))


def test_randaugment_gets_the_datasets_fill_and_translation(monkeypatch):
    import timm.data.auto_augment as aa

    from ddflow.train.common import rand_augment

    seen = []
    real = aa.rand_augment_transform
    monkeypatch.setattr(aa, "rand_augment_transform", lambda c, h: seen.append(h) or real(c, h))
    rand_augment("rand-m5-n2", 40, [0.5, 0.25, 1.0])
    rand_augment("rand-m5-n2", 28, [0.2])
    assert seen == [
        {"translate_const": 18, "img_mean": (128, 64, 255)},  # 0.45 x size; 255 x mean
        {"translate_const": 12, "img_mean": 51},  # one channel: a single fill value
    ]


def test_the_result_takes_the_last_eval_the_best_and_the_ipcs_batch_size(monkeypatch):
    """top1_last is the last evaluation (not any other), best and its epoch are the maximum,
    and a per-IPC batch size ({"3": 6}) is looked up at the set's IPC."""
    import ddflow.train.student as student

    scores = iter([10.0, 30.0, 20.0])
    monkeypatch.setattr(student, "evaluate", lambda *a: next(scores))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (24, 8, 8, 1), dtype=np.uint8)
    y = np.repeat(np.arange(4), 6)
    bundle = DatasetBundle(x, y, x[:8], y[:8], ["a", "b", "c", "d"], [0.5], [0.25])
    cfg = {"arch": "convnet_d3", "epochs": 3, "batch_size": {"3": 6, "2": 4}, "lr": 1e-3,
           "weight_decay": 0.0, "no_decay_bn_bias": False, "schedule": "cosine",
           "temperature": 4, "t2_factor": False, "min_scale": 1.0, "max_scale": 1.0,
           "hflip": False, "cutmix": 0.0, "eval_every": 1, "randaugment": None,
           "labels": "hard"}  # fmt: skip
    r = train_student(x[:12], None, bundle, cfg, 0, torch.device("cpu"), targets=y[:12])
    assert (r["top1_last"], r["top1_best"], r["best_epoch"]) == (20.0, 30.0, 2)
    assert (r["n_images"], r["batch_size"]) == (12, 6)


def test_the_divergence_guard_names_the_loss_or_the_weights():
    from ddflow.train.common import TrainingDiverged, check_finite

    net = torch.nn.Linear(2, 2)
    check_finite("student (seed 0)", 3, 1.5, net, "student.lr")  # finite: no error
    with pytest.raises(TrainingDiverged, match=r"^student \(seed 0\) training diverged at "
                       r"epoch 3 \(mean loss nan not finite\); nothing was written\. Lower "
                       r"student\.lr \(or check"):  # fmt: skip
        check_finite("student (seed 0)", 3, float("nan"), net, "student.lr")
    with torch.no_grad():
        net.bias[0] = float("inf")
    with pytest.raises(TrainingDiverged, match=r"epoch 4 \(weights \['bias'\] not finite\)"):
        check_finite("teacher", 4, 0.5, net, "teacher.lr")


def test_views_store_compact_dtypes_and_cutmix_weights_by_the_pasted_area():
    """Boxes int32 and flips bool (the relabel stage stores them); scale (1, 1) draws no crop
    boxes; lambda = 1 - box area / image area for boxes away from the corner."""
    recipe = {"min_scale": 0.3, "max_scale": 1.0, "hflip": True, "cutmix": 1.0}
    views = [v for e in range(1, 30) for v in draw_epoch(6, 3, (16, 12), recipe, 5, e)]
    assert all(v.boxes.dtype == np.int32 and v.flips.dtype == np.bool_ for v in views)
    off_corner = [v for v in views if v.mix_box[0] > 0 and v.mix_box[2] > 0]
    assert off_corner
    for v in off_corner:
        y0, y1, x0, x1 = v.mix_box
        assert v.mix_lam == pytest.approx(1 - (y1 - y0) * (x1 - x0) / (16 * 12))
    plain = {"min_scale": 1.0, "max_scale": 1.0, "hflip": False, "cutmix": 0.0}
    assert all(v.boxes is None and v.flips.dtype == np.bool_ and not v.flips.any()
               for v in draw_epoch(6, 3, (8, 8), plain, 5, 1))  # fmt: skip
    x = torch.randn(3, 1, 8, 8)
    assert torch.equal(per_sample_rrc(x, (1.0, 1.0), random.Random(0)), x)


def test_sgd_and_dsa_students_are_seeded_and_the_teacher_labels_the_dsa_batch(monkeypatch):
    """SRe2L-CL's recipe: SGD, DSA on the normalized batch, KD on that same batch."""
    import ddflow.train.student as student

    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (24, 12, 12, 1), dtype=np.uint8)
    y = np.repeat(np.arange(4), 6)
    bundle = DatasetBundle(x, y, x[:8], y[:8], ["a", "b", "c", "d"], [0.5], [0.25])
    cfg = {
        "arch": "convnet_d3", "epochs": 2, "batch_size": 4, "lr": 0.05, "weight_decay": 5e-4,
        "no_decay_bn_bias": False, "schedule": "cosine", "temperature": 20, "t2_factor": True,
        "min_scale": 0.3, "max_scale": 1.0, "hflip": True, "cutmix": 1.0, "eval_every": 1,
        "randaugment": None, "labels": "online", "optimizer": "sgd", "momentum": 0.9,
        "augment": "dsa",
    }  # fmt: skip
    teacher = build_model("convnet_d3", 4, 1, (12, 12)).eval()
    r1 = train_student(x[:12], teacher, bundle, cfg, 0, torch.device("cpu"))
    r2 = train_student(x[:12], teacher, bundle, cfg, 0, torch.device("cpu"))
    assert r1["curve"] == r2["curve"]
    adamw = train_student(x[:12], teacher, bundle, {**cfg, "optimizer": "adamw"}, 0, "cpu")
    assert adamw["curve"] != r1["curve"]
    seen_student, seen_teacher = [], []
    build = student.build_model
    monkeypatch.setattr(student, "build_model", lambda *a, **k: _Spy(build(*a, **k), seen_student))
    train_student(x[:12], _Spy(teacher, seen_teacher), bundle, cfg, 0, torch.device("cpu"))
    trained_on = [inp for inp, training in seen_student if training]
    assert len(trained_on) == len(seen_teacher) == 6
    plain = (torch.as_tensor(x[:12], dtype=torch.float32).permute(0, 3, 1, 2) / 255 - 0.5) / 0.25
    assert all(torch.equal(s, t) for s, (t, _) in zip(trained_on, seen_teacher))
    augmented = [not any(torch.allclose(s[0], p, atol=1e-4) for p in plain) for s in trained_on]
    assert sum(augmented) >= 4  # (a flip draw may keep an image as it is)
