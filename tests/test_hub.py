"""dataset.source huggingface: a saved DatasetDict or a hub id, class names from its features."""

import numpy as np
import pytest

from ddflow.config import ConfigError, validate_config
from ddflow.data.catalog import num_classes
from ddflow.data.datasets import DataError, prepare

datasets = pytest.importorskip("datasets", reason="pip install -e '.[test]' installs datasets")


def _saved(tmp_path, test_split="test", size=(8, 8), mode="L"):
    from PIL import Image

    rng = np.random.default_rng(0)
    label = datasets.ClassLabel(names=["cat", "dog", "eel"])
    feats = datasets.Features(
        {"img": datasets.Image(), "fine": label, "note": datasets.Value("string")}
    )

    def split(n):
        ys = [i % 3 for i in range(n)]
        shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
        imgs = [Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)) for _ in ys]
        return datasets.Dataset.from_dict(
            {"img": imgs, "fine": ys, "note": ["x"] * n}, features=feats
        )

    d = datasets.DatasetDict({"train": split(12), test_split: split(6)})
    d.save_to_disk(str(tmp_path / "hf"))
    return str(tmp_path / "hf"), d


def _cfg(root, **extra):
    return {"name": "h", "source": "huggingface", "root": root, "split_seed": 0,
            "max_train_per_class": None, "max_test_per_class": None, **extra}  # fmt: skip


def test_a_saved_dataset_reads_its_columns_classes_and_pixels(tmp_path):
    root, d = _saved(tmp_path)
    b = prepare(_cfg(root), tmp_path / "d.npz", tmp_path / "m.json")
    assert b.classes == ["cat", "dog", "eel"] and num_classes(_cfg(root)) == 3
    assert b.train_x.shape == (12, 8, 8, 1) and b.test_x.shape == (6, 8, 8, 1)
    assert b.train_y.tolist() == d["train"]["fine"]
    assert np.array_equal(b.train_x[3, ..., 0], np.asarray(d["train"][3]["img"]))


def test_splits_columns_and_size_are_configurable(tmp_path):
    root, _ = _saved(tmp_path, test_split="validation", size=(12, 10), mode="RGB")
    cfg = _cfg(root, hf_splits={"test": "validation"}, image_size=8, hf_label_column="fine")
    b = prepare(cfg, tmp_path / "d.npz", tmp_path / "m.json")
    assert b.train_x.shape == (12, 8, 8, 3) and len(b.test_y) == 6
    with pytest.raises(DataError, match=r"has splits \['train', 'validation'\], not \['test'\]"):
        prepare(_cfg(root), tmp_path / "e.npz", tmp_path / "e.json")
    with pytest.raises(
        DataError, match="no label column nope; its columns: \\['img', 'fine', 'note'\\]"
    ):
        prepare({**cfg, "hf_label_column": "nope"}, tmp_path / "e.npz", tmp_path / "e.json")
    with pytest.raises(DataError, match="column 'note' .* is not a ClassLabel"):
        prepare({**cfg, "hf_label_column": "note"}, tmp_path / "e.npz", tmp_path / "e.json")


def test_a_hub_id_without_network_says_how_to_bring_the_data(tmp_path, monkeypatch):
    def offline(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError) as e:
        prepare(_cfg("someone/tiny-set"), tmp_path / "d.npz", tmp_path / "m.json")
    assert "could not load 'someone/tiny-set'" in str(e.value) and "save_to_disk" in str(e.value)


def test_hf_keys_belong_to_the_huggingface_source():
    base = {"teacher": {}, "ipc": [1], "student": {}, "methods": {"r": {"kind": "random"}}}
    with pytest.raises(ConfigError, match="dataset.hf_splits': only for source huggingface"):
        validate_config({**base, "dataset": {"name": "m", "source": "mnist-embedded",
                                             "hf_splits": {"test": "validation"}}})  # fmt: skip
