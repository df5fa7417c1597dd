"""EDC's ImageNet-1K starts (reference-frontier.md §2.2) against the released generator written
out: the ensemble's lowest-CE whole images, one crop box and flip a chunk, patches sorted by the
ensemble's CE and tiled consecutively (einops "(i n m) c h w -> i c (n h) (m w)"); and EDC
recovering from them with init: set, drawn with replacement at the IPC being recovered."""

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_terms import _net

from ddflow.config import ConfigError, StageIds, validate_config
from ddflow.data.pixels import Normalizer
from ddflow.methods import kind_of
from ddflow.recover.augment import sample_rrc_box
from ddflow.select.edc_mosaic import edc_mosaic_class

METHOD = {"candidates": 6, "chunk": 2, "draws": 2, "min_scale": 0.08}


def _released(teachers, x, label, ipc, rng):
    """data_synthesis_without_optim.py's three passes on normalized images of one class."""
    target = lambda n: torch.full((n,), label)  # noqa: E731
    mean = lambda v: torch.stack([t(v) for t in teachers]).mean(0)  # noqa: E731
    loss = F.cross_entropy(mean(x), target(len(x)), reduction="none")
    kept = x[sorted(range(len(x)), key=lambda i: float(loss[i]))[:6]]
    patches = []  # (loss, patch) as the files' names and pixels
    for j in range(len(kept) // 2):
        part = kept[2 * j : 2 * j + 2]
        for _ in range(2):
            top, left, h, w = sample_rrc_box(10, 10, (0.08, 1.0), rng)
            p = F.interpolate(part[..., top : top + h, left : left + w], size=(10, 10),
                              mode="bilinear", align_corners=False, antialias=True)  # fmt: skip
            if rng.random() < 0.5:
                p = p.flip(3)
            for q, v in zip(p, F.cross_entropy(mean(p), target(2), reduction="none")):
                patches.append((float(v), q))
    best = [q for _, q in sorted(patches, key=lambda e: e[0])[: 4 * ipc]]
    small = F.interpolate(torch.stack(best), size=(5, 5), mode="bilinear", align_corners=False,
                          antialias=True)  # fmt: skip
    out = torch.zeros(ipc, 3, 10, 10)
    for i in range(ipc):
        for k, (r, c) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
            out[i, :, 5 * r : 5 * r + 5, 5 * c : 5 * c + 5] = small[4 * i + k]
    return out


def test_the_mosaics_are_the_released_generator_written_out():
    teachers = [_net(0), _net(1)]
    norm = Normalizer([0.5] * 3, [0.25] * 3, torch.device("cpu"))
    images = np.random.default_rng(0).integers(0, 256, (11, 10, 10, 3), dtype=np.uint8)
    got = {}
    for ipc in (1, 2):
        got[ipc] = edc_mosaic_class(teachers, norm, images, 1, ipc, METHOD, random.Random(5))
        want = _released(teachers, norm.to_tensor(images), 1, ipc, random.Random(5))
        torch.testing.assert_close(got[ipc], want)
    torch.testing.assert_close(got[1][0], got[2][0])  # one patch pool: the lowest four first


def test_too_few_patches_for_the_mosaics_are_refused():
    norm = Normalizer([0.5] * 3, [0.25] * 3, torch.device("cpu"))
    images = np.zeros((3, 10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match=r"class 0: 3 candidates make 1 chunks of 2 x 2 draws"):
        edc_mosaic_class([_net(0)], norm, images, 0, 2, METHOD, random.Random(0))


def _cfg(**edc):
    return validate_config({
        "dataset": {"name": "d", "source": "mnist-embedded"}, "teacher": {}, "student": {},
        "teachers": {"t2": {}}, "ipc": [1, 10],
        "methods": {"init": {"kind": "edc_mosaic", "teachers": ["teacher", "t2"]},
                    "edc": {"kind": "edc", "teachers": ["teacher", "t2"], **edc}}})  # fmt: skip


def test_edc_starts_from_the_mosaics_made_for_its_ipc_and_their_id_is_in_its_own():
    cfg = _cfg(init="set", init_set="init")
    m = cfg["methods"]["edc"]
    assert kind_of(m).reads_for(m) == {"teachers", "stats", "source"}
    assert kind_of(m).source(m, [1, 10], 1) == ("init", 1)  # init_ipc: same (default)
    base = StageIds(cfg).method("edc")
    other = _cfg(init="set", init_set="init")
    other["methods"]["init"]["draws"] = 3
    assert StageIds(other).method("edc") != base
    assert StageIds(_cfg(init="set", init_set="init", init_ipc=10)).method("edc") != base
    assert StageIds(_cfg()).method("edc") == StageIds(_cfg(init_ipc="same")).method("edc")


@pytest.mark.parametrize(("method", "error"), [
    ({"kind": "edc", "init": "set"}, r"methods.m.init_set': init set needs it"),
    ({"kind": "fadrm", "init": "set", "init_set": "init", "init_ipc": "same"},
     r"init_ipc': 'same' is not of type"),  # its shards span IPCs: only EDC's take 'same'

])  # fmt: skip
def test_a_start_set_that_cannot_be_read_is_refused(method, error):
    cfg = {"dataset": {"name": "d", "source": "mnist-embedded"}, "teacher": {}, "student": {},
           "ipc": [1], "methods": {"init": {"kind": "edc_mosaic"}, "m": method}}  # fmt: skip
    with pytest.raises(ConfigError, match=error):
        StageIds(validate_config(cfg)).method("m")


def test_the_set_starts_are_drawn_with_replacement_from_the_class_and_flipped():
    from ddflow.recover.shards import Shard
    from ddflow.recover.statmatch import real_starts

    norm = Normalizer([0.5] * 3, [0.25] * 3, torch.device("cpu"))
    pool = np.random.default_rng(1).integers(0, 256, (6, 4, 4, 3), dtype=np.uint8)
    labels = np.array([0, 0, 0, 1, 1, 1])
    x = real_starts(pool, labels, Shard(0, 2, 0, 8), norm, "sid", 0)
    whole = norm.to_tensor(pool)
    for k, start in enumerate(x):
        c = k // 8
        mine = [whole[j] for j in range(6) if labels[j] == c]
        assert any(torch.equal(start, v) or torch.equal(start, v.flip(-1)) for v in mine)
    same = lambda s, v: torch.equal(s, v) or torch.equal(s, v.flip(-1))  # noqa: E731
    picks = [next(j for j in range(6) if same(s, whole[j])) for s in x[:8]]
    assert len(set(picks)) < 8  # 8 draws from 3 images: repeats, as released
