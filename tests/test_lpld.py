"""LPLD (reference-frontier.md §3) against independent references: the class-aware BatchNorm pass
as the authors' buffers move (a plain loop of per-class EMA updates), shards folded into one
pass; the class target's value and gradient against the authors' hook (torch.norm of var and
mean differences, first layer x 10); the image priors against the released formula; one class a
shard, whatever the IPC; the presets against the scripts."""

import numpy as np
import pytest
import torch
from test_terms import _net  # the two-BatchNorm net the statistics tests share
from torch import nn

from ddflow.config import validate_config
from ddflow.data.pixels import Normalizer
from ddflow.errors import ConfigError
from ddflow.recover.bn_loss import ClassBNStatLoss
from ddflow.recover.lpld import image_priors
from ddflow.recover.stats import finish, merge, teacher_statistics

SPEC = {"batch_size": 4, "seed": 5, "hflip": False, "crop_padding": 0, "min_scale": None,
        "class_bn": 0.1}  # fmt: skip


def _data():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (11, 10, 10, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2, 0, 0, 1, 2, 0, 1, 0, 0])  # class 2 misses the last batch
    return images, labels, Normalizer([0.5] * 3, [0.25] * 3)


def test_the_class_aware_pass_moves_each_class_row_as_the_authors_buffers():
    net, (images, labels, norm) = _net(), _data()
    got = finish(teacher_statistics(net, images, labels, norm, SPEC, 3))
    assert sorted(got) == ["1|bn_class", "4|bn_class"]
    # reference: the same shuffled batches; per batch, per class present, a 0.9/0.1 update of
    # buffers that start at 0 and 1, over that class's images (N_c, H, W), biased variance
    order = torch.randperm(11, generator=torch.Generator().manual_seed(5)).numpy()
    x_all, seen = norm.to_tensor(images), []
    h = net[4].register_forward_pre_hook(lambda m, i: seen.append(i[0]))
    mean, var = torch.zeros(3, 5, dtype=torch.float64), torch.ones(3, 5, dtype=torch.float64)
    with torch.no_grad():
        for s in range(0, 11, 4):
            idx = order[s : s + 4]
            net(x_all[idx])
            x, y = seen[-1].double(), torch.as_tensor(labels[idx])
            for c in y.unique():
                xc = x[y == c].transpose(0, 1).flatten(1)
                mean[c] = 0.9 * mean[c] + 0.1 * xc.mean(1)
                var[c] = 0.9 * var[c] + 0.1 * xc.var(1, unbiased=False)
    h.remove()
    np.testing.assert_allclose(got["4|bn_class"][:, 0], mean.numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(got["4|bn_class"][:, 1], var.numpy(), rtol=1e-6, atol=1e-9)


def test_shards_of_the_pass_fold_into_exactly_one_pass():
    net, (images, labels, norm) = _net(), _data()
    whole = finish(teacher_statistics(net, images, labels, norm, SPEC, 3))
    parts = [teacher_statistics(net, images, labels, norm, SPEC, 3, range(0, 1)),
             teacher_statistics(net, images, labels, norm, SPEC, 3, range(1, 3))]  # fmt: skip
    folded = finish(merge(parts))
    assert sorted(folded) == sorted(whole)
    for k, v in folded.items():
        np.testing.assert_allclose(v, whole[k], rtol=1e-12)
    # in the wrong order they differ: the fold is an EMA's, not a sum
    swapped = finish(merge(parts[::-1]))
    assert not np.allclose(swapped["4|bn_class"], whole["4|bn_class"])


def test_a_class_the_pass_never_saw_is_named():
    net, (images, labels, norm) = _net(), _data()
    with pytest.raises(ValueError, match=r"classes \[3\] were never seen"):
        finish(teacher_statistics(net, images, labels, norm, SPEC, 4))


def _authors_value(net, stats, x, c, first=10.0):
    """BNFeatureHook_ClassStats_Training: norm(class_var - var, 2) + norm(class_mean - mean, 2)
    of each BatchNorm input, the first layer's x `first`."""
    terms = []

    def hook(module, inputs, output, name):
        f = inputs[0]
        var, mean = f.transpose(0, 1).flatten(1).var(1, unbiased=False), f.mean((0, 2, 3))
        row = torch.as_tensor(stats[f"{name}|bn_class"][c]).float()
        terms.append(torch.norm(row[1] - var, 2) + torch.norm(row[0] - mean, 2))

    hs = [m.register_forward_hook(lambda m, i, o, n=n: hook(m, i, o, n))
          for n, m in net.named_modules() if isinstance(m, nn.BatchNorm2d)]  # fmt: skip
    net(x)
    for h in hs:
        h.remove()
    return sum(t * (first if i == 0 else 1.0) for i, t in enumerate(terms))


def test_the_class_target_against_the_authors_hook_in_value_and_gradient():
    net, (images, labels, norm) = _net(), _data()
    stats = finish(teacher_statistics(net, images, labels, norm, SPEC, 3))
    x = torch.randn(4, 3, 10, 10)
    for c in (0, 2):
        ours = ClassBNStatLoss(net, stats, 10.0)
        xo = x.clone().requires_grad_(True)
        ours.set_labels(torch.full((4,), c))
        net(xo)
        v1 = ours.value()
        (g1,) = torch.autograd.grad(v1, xo)
        ours.remove()
        xr = x.clone().requires_grad_(True)
        v2 = _authors_value(net, stats, xr, c)
        (g2,) = torch.autograd.grad(v2, xr)
        torch.testing.assert_close(v1, v2, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-7)


def test_packed_classes_each_meet_their_own_row():
    net, (images, labels, norm) = _net(), _data()
    stats = finish(teacher_statistics(net, images, labels, norm, SPEC, 3))
    x = torch.randn(6, 3, 10, 10)
    packed = ClassBNStatLoss(net, stats, 10.0, chunks=2)
    packed.set_labels(torch.tensor([1, 1, 1, 2, 2, 2]))
    net(x)
    both = packed.value()
    packed.remove()
    alone = sum(_authors_value(net, stats, x[s : s + 3], c) for s, c in ((0, 1), (3, 2)))
    torch.testing.assert_close(both, alone, rtol=1e-5, atol=1e-6)


def test_the_image_priors_are_the_released_formula():
    xa = torch.randn(3, 3, 8, 9)
    d1, d2 = xa[:, :, :, :-1] - xa[:, :, :, 1:], xa[:, :, :-1, :] - xa[:, :, 1:, :]
    d3, d4 = xa[:, :, 1:, :-1] - xa[:, :, :-1, 1:], xa[:, :, :-1, :-1] - xa[:, :, 1:, 1:]
    tv = torch.norm(d1) + torch.norm(d2) + torch.norm(d3) + torch.norm(d4)
    l2 = torch.norm(xa.reshape(3, -1), dim=1).mean()
    torch.testing.assert_close(image_priors(xa, 1e-4, 1e-5), 1e-4 * tv + 1e-5 * l2)


def _cfg(**method):
    return validate_config({"dataset": {"name": "d", "source": "mnist-embedded"}, "teacher": {},
                            "student": {}, "ipc": [3, 7],
                            "methods": {"m": {"kind": "lpld", **method}}})  # fmt: skip


# preset: (lr, r_bn, iterations, jitter, statistics batch) as recover/scripts and *_forward run
PUBLISHED = {"lpld_imagenet1k": (0.25, 0.01, 4000, 32, 64), "lpld_tiny": (0.1, 0.05, 4000, 4, 256),
             "lpld_imagenet21k": (0.05, 0.25, 2000, 32, 64)}  # fmt: skip


@pytest.mark.parametrize("preset", sorted(PUBLISHED))
def test_presets_run_the_released_scripts(preset):
    m = _cfg(preset=preset)["methods"]["m"]
    got = (m["lr"], m["r_bn"], m["iterations"], m["jitter"], m["stats"]["batch_size"])
    assert got == PUBLISHED[preset]
    assert m["stats"]["momentum"] == 0.1 and (m["tv_l2"], m["l2_scale"]) == (1e-4, 1e-5)


def test_one_class_a_shard_and_the_pass_in_the_id_but_not_its_jobs():
    from ddflow.config import StageIds
    from ddflow.methods import kind_of
    from ddflow.recover.shards import method_shards

    cfg = _cfg()
    m = cfg["methods"]["m"]
    shards = method_shards(m, 10, cfg["ipc"])
    assert len(shards) == 20 and {s.c1 - s.c0 for s in shards} == {1}
    [(teacher, spec)] = kind_of(m).stats_passes(m)
    assert teacher == "teacher" and spec["class_bn"] == 0.1 and "momentum" not in spec
    ids = StageIds(cfg)
    moved = StageIds(_cfg(stats={"momentum": 0.2}))
    split = StageIds(_cfg(stats={"shards": 4}))
    assert ids.method("m") != moved.method("m") and ids.method("m") == split.method("m")


def test_an_unknown_key_is_named():
    with pytest.raises(ConfigError, match="methods.m"):
        _cfg(batch_images=10)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from ddflow.stages import run_data, run_teacher

    d = tmp_path_factory.mktemp("lpld")
    cfg = validate_config({"dataset": {"name": "k", "source": "mnist-embedded",
                                       "max_train_per_class": 20, "max_test_per_class": 5},
                           "teacher": {"epochs": 1, "batch_size": 50}, "ipc": [2],
                           "methods": {"random": {"kind": "random"}}, "student": {},
                           "runtime": {"threads": 1}})  # fmt: skip
    npz, meta, ckpt = (str(d / f) for f in ("d.npz", "m.json", "t.pt"))
    run_data(cfg["dataset"], npz, meta)
    run_teacher(npz, meta, cfg["teacher"], "t", cfg["runtime"], ckpt, str(d / "t.json"))
    return d, npz, meta, ckpt


def _lpld_images(trained, name, **method):
    from ddflow.methods import kind_of
    from ddflow.stages import run_recover_shard, run_stats

    d, npz, meta, ckpt = trained
    base = {"iterations": 4, "jitter": 2, "stats": {"batch_size": 50, "min_scale": None}}
    cfg = _cfg(**{**base, **method})
    m, runtime = cfg["methods"]["m"], cfg["runtime"]
    [(_, spec)] = kind_of(m).stats_passes(m)
    stats = str(d / f"{name}.stats.npz")
    run_stats(npz, meta, ckpt, spec, (0, 1), runtime, stats, 1)
    out = d / f"{name}.npz"
    run_recover_shard(npz, meta, ckpt, None, m, "fixed", "c00003-00004_i0000-0002", runtime,
                      str(out), 1, stats=[[stats]])  # fmt: skip
    with np.load(out) as z:
        assert sorted(zip(z["labels"], z["ipc_index"])) == [(3, 0), (3, 1)]
        return z["images"]


@pytest.mark.parametrize(("key", "value"), [("tv_l2", 0.1), ("l2_scale", 0.1), ("r_bn", 1.0),
                                            ("first_bn_multiplier", 1.0),
                                            ("stats", {"batch_size": 50, "min_scale": None,
                                                       "momentum": 0.5})])  # fmt: skip
def test_every_lpld_key_reaches_the_recovered_images(trained, key, value):
    a = _lpld_images(trained, f"{key}-a")
    assert np.array_equal(a, _lpld_images(trained, f"{key}-again"))  # seeded by (id, class)
    assert not np.array_equal(a, _lpld_images(trained, f"{key}-b", **{key: value}))


def test_a_statistics_block_set_in_part_keeps_the_presets_other_keys():
    m = _cfg(preset="lpld_tiny", stats={"shards": 2})["methods"]["m"]
    assert (m["stats"]["batch_size"], m["stats"]["shards"]) == (256, 2)


@pytest.mark.parametrize("kind", ["gvbsm", "edc", "lpld"])
def test_how_a_statistics_method_is_cut_into_jobs_is_not_in_its_id(kind):
    from ddflow.config import StageIds

    def mid(**method):
        return StageIds(validate_config({
            "dataset": {"name": "d", "source": "mnist-embedded"}, "teacher": {}, "student": {},
            "ipc": [10], "methods": {"m": {"kind": kind, **method}}})).method("m")  # fmt: skip

    layout = {"stats": {"shards": 3}} | ({} if kind == "lpld" else {"shard_batches": 2})
    assert mid() == mid(**layout) != mid(stats={"batch_size": 32})
