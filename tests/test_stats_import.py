"""The authors' shipped statistics (G-VBSM's ConvFeatureHook/<class>=<module>/running.npz) read
as the stats stage's targets: a pass written out in their layout reads back as the pass's own
targets; a file missing, left over or of another size is refused by name; the config refuses
what the files cannot give, and their content is in the stats id."""

import numpy as np
import pytest
import torch
from test_terms import _net

from ddflow.config import ConfigError, StageIds, validate_config
from ddflow.data.datasets import DataError
from ddflow.data.pixels import Normalizer
from ddflow.recover.stats import SHIPPED_KEYS, import_statistics, teacher_statistics

SPEC = {"batch_size": 4, "min_scale": None, "crop_padding": 1, "hflip": True, "seed": 0,
        "patch": 4}  # fmt: skip


def _ship(stats, folder, cls="Sequential"):
    """A pass's global targets in the authors' layout and key names."""
    layers = sorted({k.split("|")[0] for k in stats})
    for layer in layers:
        d = folder / f"{cls}={layer}"
        d.mkdir(parents=True)
        np.savez(d / "running.npz", **{theirs: stats[f"{layer}|{ours}"]
                                       for theirs, ours in SHIPPED_KEYS.items()})  # fmt: skip
    return layers


def _pass():
    net = _net(0)
    norm = Normalizer([0.5] * 3, [0.25] * 3, torch.device("cpu"))
    images = np.random.default_rng(0).integers(0, 256, (10, 10, 10, 3), dtype=np.uint8)
    return net, teacher_statistics(net, images, np.arange(10) % 2, norm, SPEC, 2)


def test_shipped_files_read_back_as_the_pass_that_made_them(tmp_path):
    net, stats = _pass()
    assert _ship(stats, tmp_path / "hook") == ["0", "3"]  # the two convolutions
    got = import_statistics(tmp_path / "hook", net, (3, 10, 10), 4)
    assert got.keys() == stats.keys()
    for k in stats:
        np.testing.assert_array_equal(got[k], stats[k])


@pytest.mark.parametrize(("damage", "error"), [
    ("missing", r"has no <class>=3/running.npz for the teacher's convolution '3'"),
    ("extra", r"\['9'\] are not convolutions of the teacher"),
    ("size", r"running_patch_mean has 5 values .* '3' takes 4 channels and 9 cells of 4 px"),
])  # fmt: skip
def test_files_that_are_not_this_teachers_are_refused_by_name(tmp_path, damage, error):
    net, stats = _pass()
    _ship(stats, tmp_path / "hook")
    d = tmp_path / "hook" / "Sequential=3"
    if damage == "missing":
        (d / "running.npz").unlink()
    elif damage == "extra":
        (tmp_path / "hook" / "Sequential=9").mkdir()
    else:
        data = dict(np.load(d / "running.npz"))
        np.savez(d / "running.npz", **{**data, "running_patch_mean": np.zeros(5)})
    with pytest.raises(DataError, match=error):
        import_statistics(tmp_path / "hook", net, (3, 10, 10), 4)


def _cfg(tmp_path, **method):
    return validate_config({
        "dataset": {"name": "d", "source": "mnist-embedded"}, "teacher": {}, "student": {},
        "teachers": {"t2": {}}, "ipc": [1],
        "methods": {"m": {"kind": "gvbsm", "teachers": ["teacher", "t2"], **method}}})  # fmt: skip


def test_the_files_content_is_in_the_stats_id_and_only_their_teachers(tmp_path):
    net, stats = _pass()
    _ship(stats, tmp_path / "hook")
    plain = StageIds(_cfg(tmp_path))
    cfg = _cfg(tmp_path, stats={"files": {"t2": str(tmp_path / "hook")}})
    ids = StageIds(cfg)
    from ddflow.methods import kind_of

    m = cfg["methods"]["m"]
    (t1, s1), (t2, s2) = kind_of(m).stats_passes(m)
    assert ids.stats(t1, s1) == plain.stats(*kind_of(m).stats_passes(plain.cfg["methods"]["m"])[0])
    assert s2["import"] == str(tmp_path / "hook") and s2["shards"] == 1
    before = ids.method("m")
    np.savez(tmp_path / "hook" / "Sequential=0" / "running.npz", running_dd_mean=np.zeros(3))
    assert (
        StageIds(_cfg(tmp_path, stats={"files": {"t2": str(tmp_path / "hook")}})).method("m")
        != before
    )


@pytest.mark.parametrize(("method", "error"), [
    ({"stats": {"files": {"nope": "."}}}, r"stats.files.nope': not one of the method's teachers"),
    ({"stats": {"files": {"t2": "/no/such"}}}, r"folder '/no/such' does not exist"),
    ({"kind": "edc", "stats": {"files": {"t2": "."}}}, r"class_weight > 0 needs per-class ones"),
])  # fmt: skip
def test_files_the_method_cannot_use_are_refused(tmp_path, method, error):
    with pytest.raises(ConfigError, match=error):
        StageIds(_cfg(tmp_path, **method)).method("m")
