"""CV-DD (reference-frontier.md §5) against the reference: the committee of each IPC index (the
fixed IPC-1 pair, the i-th unordered pair, a reproducible random pair beyond), the vote weights
softmax(prior / 5) with the reference's own examples, the committee loss against a plain sum of
each member's SRe2L loss, and the plan (each IPC value its own shards) and config checks."""

import itertools
import math
import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ddflow.config import validate_config
from ddflow.errors import ConfigError
from ddflow.recover.augment import RecoverAugment
from ddflow.recover.bn_loss import BNStatLoss
from ddflow.recover.committee import committee
from ddflow.recover.loop import recover_batch

IN1K = [56.4, 42.3, 52.5, 44.2, 40.6]  # R18, R50, SV2, MBv2, D121


def _method(priors=IN1K, **extra):
    return {"teachers": ["r18", "r50", "sv2", "mbv2", "d121"][: len(priors)], "priors": priors,
            "temperature": 5.0, **extra}  # fmt: skip


def test_the_vote_weights_are_the_references_examples():
    # (R18, R50) -> 0.94 / 0.06 and (R18, SV2) -> 0.69 / 0.31 (reference-frontier.md §5.2)
    (a, wa), (b, wb) = committee(_method(), 10, 0, "s")
    assert (a, b) == (0, 1) and (round(wa, 2), round(wb, 2)) == (0.94, 0.06)
    assert [round(w, 2) for _, w in committee(_method(), 10, 1, "s")] == [0.69, 0.31]
    assert sum(w for _, w in committee(_method(), 10, 7, "s")) == pytest.approx(1.0)


def test_each_ipc_index_meets_its_pair():
    m = _method()
    assert [t for t, _ in committee(m, 1, 0, "s")] == [0, 2]  # the two best priors: R18, SV2
    assert [t for t, _ in committee({**m, "ipc1_pair": [3, 4]}, 1, 0, "s")] == [3, 4]
    pairs = list(itertools.combinations(range(5), 2))
    assert [tuple(t for t, _ in committee(m, 10, i, "s")) for i in range(10)] == pairs
    drawn = [tuple(t for t, _ in committee(m, 50, i, "s")) for i in range(50)]
    assert drawn == [tuple(t for t, _ in committee(m, 50, i, "s")) for i in range(50)]
    assert all(a != b for a, b in drawn) and len(set(drawn)) > 5
    assert drawn != [tuple(t for t, _ in committee(m, 50, i, "other")) for i in range(50)]


def _net(seed):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))  # fmt: skip
    net.train()
    with torch.no_grad():
        net(torch.randn(8, 3, 8, 8) * (1 + seed))
    return net.eval().requires_grad_(False)


def test_the_committee_loss_is_the_weighted_sum_of_each_members_sre2l_loss():
    nets = [_net(0), _net(1)]
    stats = [BNStatLoss(n, 10.0) for n in nets]
    x0, y = torch.randn(3, 3, 8, 8), torch.tensor([0, 1, 2])
    members = [(nets[0], stats[0], 0.7), (nets[1], stats[1], 0.3)]
    seen = {}
    still = RecoverAugment(crop=False, min_scale=1.0, max_scale=1.0, schedule="constant",
                           milestone=0.0, per_image_crop=False, antialias=False, flip=False,
                           jitter=0, jitter_mode="positive")  # fmt: skip
    recover_batch(nets[0], stats[0], x0, y, iterations=1, lr=0.1, r_bn=0.05, augment=still,
                  bounds=(torch.full((3, 1, 1), -9.0), torch.full((3, 1, 1), 9.0)),
                  rng=random.Random(0), log_every=1, committee=members,
                  report=lambda step, metrics: seen.update(metrics))  # fmt: skip
    want = 0.0
    for net, w in ((nets[0], 0.7), (nets[1], 0.3)):
        terms = []
        hook = net[1].register_forward_pre_hook(lambda m, i, t=terms: t.append(i[0]))
        logits = net(x0)
        hook.remove()
        f, bn = terms[0], net[1]
        var, mean = f.transpose(0, 1).flatten(1).var(1, unbiased=False), f.mean((0, 2, 3))
        r = torch.norm(bn.running_var - var, 2) + torch.norm(bn.running_mean - mean, 2)
        want += w * (F.cross_entropy(logits, y).item() + 0.05 * 10.0 * r.item())
    for s in stats:
        s.remove()
    assert math.isclose(seen["loss"], want, rel_tol=1e-5)


def _cfg(ipc=(1, 10), **method):
    return validate_config({
        "dataset": {"name": "d", "source": "mnist-embedded"}, "teacher": {}, "student": {},
        "teachers": {"t2": {}, "t3": {}}, "ipc": list(ipc),
        "methods": {"m": {"kind": "cvdd", "teachers": ["teacher", "t2", "t3"],
                          "priors": [3.0, 2.0, 1.0], "batch_classes": 5, **method}}})  # fmt: skip


def test_each_ipc_value_has_its_own_shards_of_whole_class_blocks():
    from ddflow.recover.shards import method_shards

    cfg = _cfg()
    shards = method_shards(cfg["methods"]["m"], 10, cfg["ipc"])
    assert sorted(s.name for s in shards) == [
        "c00000-00005_i0000-0001", "c00000-00005_i0000-0010",
        "c00005-00010_i0000-0001", "c00005-00010_i0000-0010"]  # fmt: skip


@pytest.mark.parametrize(("method", "error"), [
    ({"priors": [1.0, 2.0]}, r"methods.m.priors': 2 priors for 3 teachers"),
    ({"teachers": ["teacher"], "priors": [1.0]}, r"methods.m.teachers"),
    ({"ipc1_pair": [0, 3]}, r"methods.m.ipc1_pair': two distinct positions"),
    ({"priors": None}, r"methods.m.priors"),
])  # fmt: skip
def test_a_committee_that_cannot_vote_is_refused(method, error):
    if method.get("priors", 0) is None:
        cfg = {"dataset": {"name": "d", "source": "mnist-embedded"}, "teacher": {}, "student": {},
               "teachers": {"t2": {}}, "ipc": [1],
               "methods": {"m": {"kind": "cvdd", "teachers": ["teacher", "t2"]}}}  # fmt: skip
        with pytest.raises(ConfigError, match=error):
            validate_config(cfg)
        return
    with pytest.raises(ConfigError, match=error):
        _cfg(**method)


def test_presets_run_the_released_scripts():
    m = _cfg(preset="cvdd_cifar10", priors=[1.0, 2.0, 3.0], ipc1_pair=None)["methods"]["m"]
    assert (m["lr"], m["r_bn"], m["iterations"], m["jitter"], m["batch_classes"]) == (
        0.25,
        0.01,
        4000,
        4,
        5,
    )  # batch_classes set in the config wins over the preset's 10
    from ddflow.presets import RECOVER_PRESETS as P

    assert P["cvdd_imagenet1k"]["priors"] == IN1K and P["cvdd_imagenet1k"]["jitter"] == 32
    assert P["cvdd_cifar10"]["ipc1_pair"] == [3, 4] and P["cvdd_cifar100"]["ipc1_pair"] == [2, 3]
    assert P["cvdd_cifar10"]["batch_classes"] == 10


def test_a_committee_shard_is_each_indexs_own_batch_index_major_and_leaves_no_hooks():
    """Each IPC index of the shard: its own seed's start, its own pair, its own rng; stacked
    index-major as every sharded kind's arrays; the teachers' BatchNorm hooks gone after."""
    import numpy as np

    from ddflow.data.pixels import Normalizer
    from ddflow.recover.committee import recover_committee_shard
    from ddflow.recover.init import gaussian_init
    from ddflow.recover.shards import Shard, batch_seed

    method = {**_cfg(ipc=(3,), iterations=2, jitter=0)["methods"]["m"], "first_bn_multiplier": 10.0}
    nets, norm, shard = (
        [_net(0), _net(1), _net(2)],
        Normalizer([0.5] * 3, [0.25] * 3),
        Shard(0, 3, 1, 3),
    )
    out = recover_committee_shard(
        nets, norm, (3, 8, 8), method, "sid", shard, 3, torch.device("cpu")
    )
    assert all(not n[1]._forward_pre_hooks for n in nets)
    want = []
    for i in (1, 2):
        seed = batch_seed("sid", 0, i) ^ method["seed"]
        stats = {t: BNStatLoss(nets[t], 10.0) for t, _ in committee(method, 3, i, "sid")}
        members = [(nets[t], stats[t], w) for t, w in committee(method, 3, i, "sid")]
        x = recover_batch(members[0][0], members[0][1], gaussian_init(3, (3, 8, 8), seed),
                          torch.arange(3), iterations=2, lr=method["lr"], r_bn=method["r_bn"],
                          augment=RecoverAugment.from_method(method), bounds=norm.bounds(),
                          rng=random.Random(seed), precision="fp32", log_every=100,
                          committee=members)  # fmt: skip
        for s in stats.values():
            s.remove()
        want.append(norm.to_uint8(x))
    assert np.array_equal(out["images"], np.concatenate(want))
    assert out["labels"].tolist() == [0, 1, 2, 0, 1, 2]
    assert out["ipc_index"].tolist() == [1, 1, 1, 2, 2, 2]
