"""The validation split: carved from train, never overlapping train or test, selecting epochs."""

import json

import numpy as np
import pytest
import torch
from test_data import EMBEDDED, _photo_folder

from ddflow.config import ConfigError, StageIds, validate_config
from ddflow.data.catalog import check_ipc_fits
from ddflow.data.datasets import DataError, DatasetBundle, carve_validation, load_bundle, prepare
from ddflow.train.student import train_student

VAL = {**EMBEDDED, "val_per_class": 30}


def _source_rows(npz):
    with np.load(npz) as z:
        source = z["train_source_index"]  # the embedded array's rows of the source train split
        rows = {"train": source[z["train_kept"]], "test": z["test_source_index"][z["test_kept"]]}
        return {**rows, **({"val": source[z["val_kept"]]} if "val_kept" in z else {})}


def test_validation_is_carved_from_train_stratified_and_disjoint(tmp_path):
    plain = prepare(EMBEDDED, tmp_path / "p.npz", tmp_path / "p.json")
    b = prepare(VAL, tmp_path / "v.npz", tmp_path / "v.json")
    assert np.bincount(b.val_y).tolist() == [30] * 10
    assert np.bincount(b.train_y).tolist() == [370] * 10
    rows = _source_rows(tmp_path / "v.npz")
    assert not np.intersect1d(rows["val"], rows["train"]).size
    assert not np.intersect1d(rows["val"], rows["test"]).size
    # train + validation is exactly the pool train was without one; test is untouched
    assert np.array_equal(np.sort(np.concatenate([rows["train"], rows["val"]])),
                          np.sort(_source_rows(tmp_path / "p.npz")["train"]))  # fmt: skip
    assert np.array_equal(b.test_x, plain.test_x) and np.array_equal(b.test_y, plain.test_y)
    # the recorded split is what loads, checked like the others
    meta = json.loads((tmp_path / "v.json").read_text())
    assert meta["n_val"] == 300 and set(meta["sha256"]) == {"train", "val", "test"}
    loaded = load_bundle(tmp_path / "v.npz", tmp_path / "v.json")
    assert np.array_equal(loaded.val_x, b.val_x) and np.array_equal(loaded.val_y, b.val_y)
    assert load_bundle(tmp_path / "p.npz", tmp_path / "p.json").val_x is None
    # normalization comes from what trains, not from the held-out images
    assert loaded.mean[0] == pytest.approx(b.train_x.mean() / 255, rel=1e-6)


def test_validation_split_is_seeded_and_its_own_draw():
    y = np.repeat(np.arange(4), 20)
    a, b = carve_validation(y, 5, 0), carve_validation(y, 5, 0)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not np.array_equal(a[1], carve_validation(y, 5, 1)[1])
    assert np.bincount(y[a[1]]).tolist() == [5] * 4 and len(np.intersect1d(*a)) == 0
    with pytest.raises(DataError, match="val_per_class is 20 but class 0 has only 20"):
        carve_validation(y, 20, 0)


def test_file_storage_validation_holds_train_files_only(tmp_path):
    root = tmp_path / "photos"  # its val/ folder is the test split: ddflow's is carved from train/
    _photo_folder(root, [(40, 30)] * 2)
    cfg = {"name": "p", "source": "imagefolder", "root": str(root), "split_seed": 3,
           "max_train_per_class": None, "max_test_per_class": None, "image_size": 16,
           "storage": "files", "val_per_class": 1}  # fmt: skip
    b = prepare(cfg, tmp_path / "d.npz", tmp_path / "d.json")
    val, train, test = (set(x.paths.tolist()) for x in (b.val_x, b.train_x, b.test_x))
    assert len(val) == len(b.classes) and all(p.startswith(b"train/") for p in val)
    assert not val & train and not val & test
    loaded = load_bundle(tmp_path / "d.npz", tmp_path / "d.json")
    assert np.array_equal(loaded.val_x[:], b.val_x[:])


def test_a_damaged_validation_split_is_refused(tmp_path):
    prepare(VAL, tmp_path / "v.npz", tmp_path / "v.json")
    meta = json.loads((tmp_path / "v.json").read_text())
    meta["sha256"]["val"] = "0" * 64
    (tmp_path / "v.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="the val split in .* does not match the checksum"):
        load_bundle(tmp_path / "v.npz", tmp_path / "v.json")


def _config(**dataset):
    return {"dataset": {"name": "m", "source": "mnist-embedded", **dataset},
            "teacher": {}, "ipc": [10], "student": {},
            "methods": {"sre2l": {"kind": "sre2l"}}}  # fmt: skip


def test_unset_validation_keeps_every_existing_id_and_set_changes_data():
    plain = StageIds(validate_config(_config()))
    held = StageIds(validate_config(_config(val_per_class=50)))
    assert "val_per_class" not in validate_config(_config())["dataset"]
    assert held.data != plain.data and held.teacher != plain.teacher


def test_ipc_and_validation_must_fit_the_training_pool():
    ds = validate_config(_config(max_train_per_class=60, val_per_class=50))["dataset"]
    check_ipc_fits(ds, [10])
    with pytest.raises(ConfigError, match="ipc': 11 images a class.*50 a class held out"):
        check_ipc_fits(ds, [11])
    with pytest.raises(ConfigError, match="dataset.val_per_class': 60 images a class held out"):
        check_ipc_fits({**ds, "val_per_class": 60}, [1])
    with pytest.raises(ConfigError, match="val_per_class"):
        validate_config(_config(val_per_class=0))


def test_student_reports_test_top1_at_the_validation_selected_epoch():
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(48, 12, 12, 1, generator=g) * 255).to(torch.uint8).numpy()
    y = np.repeat(np.arange(4), 12)
    bundle = DatasetBundle(x, y, x[::2], y[::2], list("abcd"), [0.5], [0.25], x[1::3], y[1::3])
    cfg = {"arch": "convnet_d3", "epochs": 6, "eval_every": 2, "lr": 0.01, "weight_decay": 0.0,
           "no_decay_bn_bias": False, "schedule": "cosine", "batch_size": 8, "randaugment": None,
           "labels": "hard", "min_scale": 0.5, "max_scale": 1.0, "hflip": True, "cutmix": 0.0,
           "temperature": 1.0}  # fmt: skip
    out = train_student(x, None, bundle, cfg, 0, torch.device("cpu"), targets=y)
    evals = [p for p in out["curve"] if "test_top1" in p]
    assert [p["epoch"] for p in evals] == [2, 4, 6] and all("val_top1" in p for p in evals)
    best_val = max(p["val_top1"] for p in evals)
    chosen = next(p for p in evals if p["val_top1"] == best_val)  # the earliest of ties
    assert out["val_selected_epoch"] == chosen["epoch"]
    assert out["top1_val_selected"] == chosen["test_top1"]
