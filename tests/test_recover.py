import random

import numpy as np
import pytest
import torch
from torch import nn

from ddflow.config import validate_config
from ddflow.data.pixels import Normalizer
from ddflow.models import build_model
from ddflow.recover.augment import RecoverAugment, crop_resize, sample_rrc_box
from ddflow.recover.bn_loss import BNStatLoss
from ddflow.recover.loop import NonFiniteLoss, cosine_lr, freeze, recover_batch
from ddflow.recover.shards import Shard, batch_seed, plan_shards, shards_for_ipc
from ddflow.recover.sre2l import recover_shard

SRE2L = validate_config(
    {
        "dataset": {"name": "t", "source": "mnist-embedded"},
        "teacher": {},
        "ipc": [2],
        "methods": {
            "m": {
                "kind": "sre2l",
                "iterations": 4,
                "batch_classes": 10,
                "ipc_per_shard": 1,
                "jitter": 2,
            }
        },
        "student": {},
    }
)["methods"]["m"]


def trained_bn_teacher(seed=0, channels=1, size=12, classes=4):
    """A ConvNet with non-trivial running stats (a few train-mode forwards)."""
    torch.manual_seed(seed)
    model = build_model("convnet_d3", classes, channels, (size, size))
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, channels, size, size) * 2 + 0.5)
    return model.eval()


def test_bn_loss_matches_hand_computation():
    model = trained_bn_teacher()
    loss = BNStatLoss(model, first_bn_multiplier=10.0)
    x = torch.randn(5, 1, 12, 12)
    model(x)
    # Independent: capture BN inputs by running the layers by hand, numpy statistics.
    expected, h, k = 0.0, x, 0
    for layer in model.features:
        if isinstance(layer, nn.BatchNorm2d):
            a = h.detach().numpy().transpose(1, 0, 2, 3).reshape(h.shape[1], -1)
            mu, var = a.mean(1), a.var(1)  # numpy var is the biased one
            r = np.sqrt(((mu - layer.running_mean.numpy()) ** 2).sum()) + np.sqrt(
                ((var - layer.running_var.numpy()) ** 2).sum()
            )
            expected += (10.0 if k == 0 else 1.0) * r
            k += 1
        h = layer(h)
    assert k == 3
    assert loss.value().item() == pytest.approx(expected, rel=1e-5)
    loss.remove()


def test_bn_loss_uses_inputs_not_outputs():
    model = trained_bn_teacher()
    bn = model.features[1]
    loss = BNStatLoss(model, 1.0)
    x = torch.randn(4, 1, 12, 12)
    model(x)
    pre = model.features[0](x)
    var, mean = torch.var_mean(pre, dim=(0, 2, 3), correction=0)
    first = (mean - bn.running_mean).norm() + (var - bn.running_var).norm()
    assert loss.terms()[0].item() == pytest.approx(first.item(), rel=1e-5)


def test_crop_gradient_lands_only_inside_the_box():
    x = torch.randn(3, 2, 16, 16, requires_grad=True)
    box = (3, 5, 8, 6)
    out = crop_resize(x, box, (16, 16), antialias=False)
    out.square().sum().backward()
    inside = torch.zeros(16, 16, dtype=torch.bool)
    inside[3:11, 5:11] = True
    g = x.grad.abs().sum((0, 1))
    assert (g[~inside] == 0).all()
    assert (g[inside] > 0).all()


@pytest.mark.parametrize("antialias", [False, True])
def test_crop_resize_matches_torchvision(antialias):
    from torchvision.transforms.v2 import functional as TF

    x = torch.randn(2, 3, 20, 20)
    box = (2, 4, 9, 12)
    ours = crop_resize(x, box, (20, 20), antialias)
    ref = TF.resized_crop(x, *box, [20, 20], antialias=antialias)
    torch.testing.assert_close(ours, ref)


def test_rrc_box_respects_scale_and_ratio():
    rng = random.Random(0)
    for _ in range(500):
        top, left, h, w = sample_rrc_box(32, 32, (0.25, 0.5), rng)
        assert 0 <= top and top + h <= 32 and 0 <= left and left + w <= 32
        area = h * w / 1024
        assert 0.2 <= area <= 0.56  # rounding of h and w widens the range slightly
        assert 3 / 4 - 0.15 <= w / h <= 4 / 3 + 0.15


def test_batch_shared_augmentation_is_one_draw():
    aug = RecoverAugment(crop=True, min_scale=0.3, flip=True, jitter=3)
    x = torch.arange(16 * 16, dtype=torch.float32).view(1, 1, 16, 16).repeat(4, 1, 1, 1)
    out = aug(x, 0, 10, random.Random(1))
    assert all(torch.equal(out[0], out[i]) for i in range(1, 4))


@pytest.mark.parametrize(
    ("classes", "ipc", "bc", "ips"),
    [(10, 2, 10, 1), (10, 7, 4, 3), (100, 50, 100, 10), (13, 5, 5, 5)],
)
def test_shard_plan_covers_each_pair_exactly_once(classes, ipc, bc, ips):
    seen = {}
    for s in plan_shards(classes, ipc, bc, ips):
        assert s.c1 - s.c0 <= bc and s.i1 - s.i0 <= ips
        assert Shard.parse(s.name) == s
        for c in range(s.c0, s.c1):
            for i in range(s.i0, s.i1):
                seen[(c, i)] = seen.get((c, i), 0) + 1
    assert seen == {(c, i): 1 for c in range(classes) for i in range(ipc)}


def test_raising_ipc_only_adds_shards():
    small = set(plan_shards(10, 2, 10, 2))
    big = set(plan_shards(10, 4, 10, 2))
    assert small <= big and len(big - small) == 1
    assert set(shards_for_ipc(sorted(big), 2)) == small


def test_seeds_differ_per_batch_and_stage():
    seeds = {batch_seed(s, c, i) for s in ("a", "b") for c in (0, 10) for i in (0, 1)}
    assert len(seeds) == 8


def test_cosine_lr():
    assert cosine_lr(0, 100, 0.2) == pytest.approx(0.2)
    assert cosine_lr(50, 100, 0.2) == pytest.approx(0.1)
    assert cosine_lr(99, 100, 0.2) == pytest.approx(0.2 * 0.5 * (1 + np.cos(np.pi * 0.99)))


def _shard(seed_method=SRE2L, stage="abc"):
    torch.set_num_threads(1)
    teacher = trained_bn_teacher(classes=4)
    norm = Normalizer([0.5], [0.25])
    return recover_shard(
        teacher,
        norm,
        (1, 12, 12),
        seed_method,
        stage,
        Shard(0, 4, 0, 2),
        torch.device("cpu"),
        log_every=2,
    )


def test_same_shard_same_seed_identical_bytes():
    a, b = _shard(), _shard()
    assert a["images"].dtype == np.uint8 and a["images"].shape == (8, 12, 12, 1)
    assert a["images"].tobytes() == b["images"].tobytes()
    assert a["labels"].tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    assert a["ipc_index"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    c = _shard(stage="other")
    assert a["images"].tobytes() != c["images"].tobytes()


def test_recovery_lowers_the_loss_and_never_touches_teacher_weights():
    teacher = freeze(trained_bn_teacher(classes=4))
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    bn = BNStatLoss(teacher, 10.0)
    norm = Normalizer([0.5], [0.25])
    labels = torch.arange(4)
    x0 = torch.randn(4, 1, 12, 12)

    def loss_of(x):
        with torch.no_grad():
            ce = nn.functional.cross_entropy(teacher(x), labels)
            return (ce + 0.01 * bn.value()).item()

    x = recover_batch(
        teacher,
        bn,
        x0,
        labels,
        iterations=60,
        lr=0.1,
        r_bn=0.01,
        augment=RecoverAugment(crop=False, flip=False),
        bounds=norm.bounds(),
        rng=random.Random(0),
    )
    assert loss_of(x) < 0.85 * loss_of(x0)
    lo, hi = norm.bounds()
    assert (x >= lo - 1e-6).all() and (x <= hi + 1e-6).all()
    assert all(p.grad is None for p in teacher.parameters())
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_non_finite_loss_fails_clearly():
    teacher = trained_bn_teacher(classes=4)
    teacher.features[1].running_var[0] = float("nan")
    with pytest.raises(NonFiniteLoss, match="loss is nan"):
        _shard_with(teacher)


def _shard_with(teacher):
    return recover_shard(
        teacher,
        Normalizer([0.5], [0.25]),
        (1, 12, 12),
        SRE2L,
        "s",
        Shard(0, 4, 0, 1),
        torch.device("cpu"),
        log_every=2,
    )


def _reference_bn_loss(model, x, first):
    """Plain autograd through var_mean on the BN inputs: the textbook formula."""
    total, h, k = 0.0, x, 0
    for layer in model.features:
        if isinstance(layer, nn.BatchNorm2d):
            var, mean = torch.var_mean(h, dim=(0, 2, 3), correction=0)
            r = (mean - layer.running_mean).norm() + (var - layer.running_var).norm()
            total = total + (first if k == 0 else 1.0) * r
            k += 1
        h = layer(h)
    return total, model.classifier(h.flatten(1))


@pytest.mark.parametrize("channels_last", [False, True])
def test_bn_loss_gradient_matches_autograd_reference(channels_last):
    model = freeze(trained_bn_teacher())
    x = torch.randn(6, 1, 12, 12) * 1.5 + 0.3
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    ref_x = x.clone().requires_grad_(True)
    ref_bn, logits = _reference_bn_loss(model, ref_x, 10.0)
    (nn.functional.cross_entropy(logits, labels) + 0.05 * ref_bn).backward()
    ours_x = x.clone().requires_grad_(True)
    loss = BNStatLoss(model, 10.0)
    out = model(ours_x)
    (nn.functional.cross_entropy(out, labels) + 0.05 * loss.value()).backward()
    assert loss.value().item() == pytest.approx(ref_bn.item(), rel=1e-5)
    torch.testing.assert_close(out, logits)
    torch.testing.assert_close(ours_x.grad, ref_x.grad, rtol=1e-4, atol=1e-7)
    loss.remove()


def test_bn_moments_are_biased_per_channel_moments_in_every_layout():
    from ddflow.recover.bn_loss import _moments

    # 12 values a channel: the unbiased variance would be 9% larger, far outside the tolerance
    x = torch.randn(2, 5, 2, 3) * 3 + 1
    layouts = {
        "contiguous": x,
        "channels_last": x.contiguous(memory_format=torch.channels_last),
        "strided": x.transpose(2, 3),  # neither layout: the moments over (N, H, W) are the same
    }
    assert not layouts["strided"].is_contiguous()
    assert not layouts["strided"].is_contiguous(memory_format=torch.channels_last)
    ref_mean, ref_var = x.double().mean((0, 2, 3)), x.double().var((0, 2, 3), correction=0)
    for name, t in layouts.items():
        mean, var = _moments(t)
        assert mean.shape == var.shape == (5,) and mean.dtype == torch.float32, name
        torch.testing.assert_close(mean.double(), ref_mean, rtol=1e-5, atol=1e-6, msg=name)
        torch.testing.assert_close(var.double(), ref_var, rtol=1e-5, atol=1e-6, msg=name)
    # bf16 activations: float32 moments of the bf16 values
    b = x.bfloat16()
    mean, var = _moments(b)
    assert mean.dtype == torch.float32
    ref = b.double()
    torch.testing.assert_close(mean.double(), ref.mean((0, 2, 3)), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(var.double(), ref.var((0, 2, 3), correction=0), rtol=1e-4, atol=1e-4)
    # a small-variance bf16 activation keeps its variance (no floor of 1; a floor of 0 only)
    small = (x * 0.01).bfloat16()
    ref_small = small.double().var((0, 2, 3), correction=0)
    torch.testing.assert_close(_moments(small)[1].double(), ref_small, rtol=1e-3, atol=1e-7)
    const = torch.full((2, 5, 2, 3), 0.3).bfloat16()
    assert (_moments(const)[1] >= 0).all()  # rounding cannot make a variance negative


def test_bn_loss_defaults_and_refusal_are_sre2ls():
    loss = BNStatLoss(freeze(trained_bn_teacher()))
    assert loss.weights[0] == 10.0 and set(loss.weights[1:]) == {1.0}  # first_bn_multiplier
    loss.remove()
    with pytest.raises(
        ValueError, match=r"^BN-statistics recovery needs a teacher with BatchNorm2d layers$"
    ):
        BNStatLoss(nn.Sequential(nn.Conv2d(1, 2, 3)))


def test_rrc_fallback_crops_the_centre_at_the_ratio_bound():
    rng = random.Random(0)
    # scale (1, 1): no draw fits a non-square image, so torchvision's fallback decides
    assert sample_rrc_box(10, 40, (1.0, 1.0), rng) == (0, 13, 10, 13)  # wide: h, h * 4/3
    assert sample_rrc_box(40, 10, (1.0, 1.0), rng) == (13, 0, 13, 10)  # tall: w, w / (3/4)
    boxes = [sample_rrc_box(20, 20, (0.001, 0.01), rng) for _ in range(300)]
    assert all(h >= 1 and w >= 1 for _, _, h, w in boxes)  # never an empty crop
    assert any(w == 1 for *_, w in boxes) and any(h == 1 for _, _, h, _ in boxes)


@pytest.mark.parametrize("mode", ["positive", "symmetric"])
def test_jitter_rolls_within_its_range(mode):
    x = torch.zeros(1, 1, 16, 16)
    x[0, 0, 8, 8] = 1.0
    aug = RecoverAugment(crop=False, flip=False, jitter=3, jitter_mode=mode)
    rng = random.Random(0)
    shifts = set()
    for _ in range(200):
        y = aug(x, 0, 1, rng)
        (r, c) = (y[0, 0] == 1).nonzero()[0].tolist()
        shifts.add((r - 8, c - 8))
    lo = 0 if mode == "positive" else -3
    assert {s for pair in shifts for s in pair} == set(range(lo, 4))


def test_bf16_precision_switch_runs_the_teacher_in_bf16():
    teacher = freeze(trained_bn_teacher())
    seen = []
    teacher.features[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    labels = torch.arange(4)
    x0 = torch.randn(4, 1, 12, 12)
    bounds = (torch.full((1, 1, 1, 1), -3.0), torch.full((1, 1, 1, 1), 3.0))
    out = {}
    for precision in ("fp32", "bf16"):
        bn = BNStatLoss(teacher)
        out[precision] = recover_batch(
            teacher,
            bn,
            x0,
            labels,
            iterations=3,
            lr=0.1,
            r_bn=0.01,
            augment=RecoverAugment(crop=False, flip=False),
            bounds=bounds,
            rng=random.Random(0),
            precision=precision,
        )
        bn.remove()
    assert seen[:3] == [torch.float32] * 3 and seen[3:] == [torch.bfloat16] * 3
    assert out["bf16"].dtype == torch.float32 and torch.isfinite(out["bf16"]).all()
    assert not torch.equal(out["fp32"], out["bf16"])
    # same algorithm, other rounding (Adam steps near zero gradients may flip sign)
    assert (out["fp32"] - out["bf16"]).abs().mean() < 0.05


def test_packed_batches_get_exactly_their_own_gradients():
    """k batches packed along N: per-chunk BN statistics and CE, so each chunk's gradient is the
    gradient that batch gets alone (the BN term of a packed forward is the sum over chunks)."""
    teacher = freeze(trained_bn_teacher(classes=4))
    xs = [torch.randn(4, 1, 12, 12) * (1 + j) for j in range(3)]  # different statistics
    labels = torch.arange(4)

    def grad_of(x, chunks):
        bn = BNStatLoss(teacher, 10.0, chunks=chunks)
        x = x.clone().requires_grad_(True)
        logits = teacher(x)
        ce = nn.functional.cross_entropy(logits, labels.repeat(len(x) // 4), reduction="none")
        loss = ce.view(chunks, -1).mean(1).sum() + 0.05 * bn.value()
        (g,) = torch.autograd.grad(loss, x)
        bn.remove()
        return g

    alone = torch.cat([grad_of(x, 1) for x in xs])
    packed = grad_of(torch.cat(xs), 3)
    torch.testing.assert_close(packed, alone, rtol=1e-4, atol=1e-7)
    unpacked_stats = grad_of(torch.cat(xs), 1)  # one batch of 12: other statistics
    assert not torch.allclose(unpacked_stats, alone, rtol=1e-3, atol=1e-6)


def test_packed_shard_recovers_the_same_images():
    method = {**SRE2L, "iterations": 3}
    teacher = trained_bn_teacher(classes=4)
    norm = Normalizer([0.5], [0.25])

    def shard(pack):
        return recover_shard(
            teacher,
            norm,
            (1, 12, 12),
            method,
            "p",
            Shard(0, 4, 0, 3),
            torch.device("cpu"),
            pack=pack,
        )

    alone, packed = shard(1), shard(2)  # packs [0, 1] and [2]
    for key in ("labels", "ipc_index", "iterations"):
        assert np.array_equal(alone[key], packed[key])
    diff = np.abs(alone["images"].astype(int) - packed["images"].astype(int))
    assert (diff == 0).mean() > 0.98 and diff.max() <= 64  # float rounding only (Adam ~ sign)
