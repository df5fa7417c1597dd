import numpy as np
import pytest

from ddflow.data.catalog import num_classes
from ddflow.data.datasets import DataError, check_class_map, load_bundle, prepare, stratified_split
from ddflow.distilled import read_distilled, write_distilled

EMBEDDED = {
    "name": "m",
    "source": "mnist-embedded",
    "root": None,
    "test_fraction": 0.2,
    "split_seed": 0,
    "max_train_per_class": None,
    "max_test_per_class": None,
}


def test_embedded_split_is_stratified_deterministic_and_recorded(tmp_path):
    a = prepare(EMBEDDED, tmp_path / "a.npz", tmp_path / "a.json")
    b = prepare(EMBEDDED, tmp_path / "b.npz", tmp_path / "b.json")
    assert len(a.train_y) == 4000 and len(a.test_y) == 1000
    assert np.bincount(a.train_y).tolist() == [400] * 10
    assert np.bincount(a.test_y).tolist() == [100] * 10
    assert np.array_equal(a.train_x, b.train_x) and a.classes == [str(i) for i in range(10)]
    with np.load(tmp_path / "a.npz") as z:
        tr, te = z["train_source_index"], z["test_source_index"]
    assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == 5000
    loaded = load_bundle(tmp_path / "a.npz", tmp_path / "a.json")
    assert loaded.image_shape == (1, 28, 28)
    assert loaded.mean[0] == pytest.approx(a.train_x.mean() / 255, rel=1e-6)


def test_split_changes_with_seed_only():
    y = np.repeat(np.arange(3), 10)
    assert np.array_equal(stratified_split(y, 0.3, 1)[1], stratified_split(y, 0.3, 1)[1])
    assert not np.array_equal(stratified_split(y, 0.3, 1)[1], stratified_split(y, 0.3, 2)[1])


def test_imagefolder_and_cifar_python_agree(cifar_export, tmp_path):
    folder = prepare(
        {**EMBEDDED, "source": "imagefolder", "root": str(cifar_export / "imagefolder")},
        tmp_path / "f.npz",
        tmp_path / "f.json",
    )
    pickled = prepare(
        {**EMBEDDED, "source": "cifar10", "root": str(cifar_export / "cifar-python")},
        tmp_path / "p.npz",
        tmp_path / "p.json",
    )
    assert pickled.classes[:3] == ["airplane", "automobile", "bird"]
    assert sorted(folder.classes) == folder.classes  # ImageFolder order = sorted folder names
    assert folder.image_shape == pickled.image_shape == (3, 32, 32)
    assert len(folder.train_y) == len(pickled.train_y) == 30
    assert len(pickled.test_y) == 30
    assert num_classes({"source": "imagefolder", "root": str(cifar_export / "imagefolder")}) == 10
    assert num_classes({"source": "cifar10", "root": str(cifar_export / "cifar-python")}) == 10


@pytest.mark.parametrize("source", ["imagefolder", "cifar10", "cifar100"])
def test_missing_dataset_path_names_path_and_fix(tmp_path, source):
    cfg = {**EMBEDDED, "source": source, "root": str(tmp_path / "nope")}
    with pytest.raises(DataError, match=r"nope.*dataset\.root"):
        num_classes(cfg)
    with pytest.raises(DataError, match="nope"):
        prepare(cfg, tmp_path / "x.npz", tmp_path / "x.json")
    assert not (tmp_path / "x.npz").exists()


def test_class_map_mismatch_is_an_error():
    check_class_map(["a", "b"], ["a", "b"], "same")
    with pytest.raises(DataError, match=r"class map mismatch for teacher.*\(0, 'a', 'b'\)"):
        check_class_map(["a", "b"], ["b", "a"], "teacher")


def test_distilled_roundtrip_is_lossless_and_checks_classes(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    labels = np.array([0, 0, 1, 1, 2, 2])
    write_distilled(
        tmp_path / "img",
        tmp_path / "m.json",
        imgs,
        labels,
        np.tile([0, 1], 3),
        ["cat", "dog", "a/b"],
        {"ipc": 2},
    )
    back, y, manifest = read_distilled(tmp_path / "img", tmp_path / "m.json", ["cat", "dog", "a/b"])
    assert np.array_equal(back, imgs) and y.tolist() == labels.tolist()
    assert manifest["n_images"] == 6 and len(manifest["files"][0]["sha256"]) == 64
    assert (tmp_path / "img" / "00002-a_b").is_dir()
    with pytest.raises(DataError, match="class map mismatch"):
        read_distilled(tmp_path / "img", tmp_path / "m.json", ["dog", "cat", "a/b"])


def _photo_folder(root, sizes):
    """An ImageFolder of mixed-size photos: left half red, right half blue (to see the crop)."""
    from PIL import Image

    for split in ("train", "val"):
        for c, name in enumerate(["cat", "dog"]):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i, (w, h) in enumerate(sizes):
                arr = np.zeros((h, w, 3), np.uint8)
                arr[:, : w // 2, 0] = 200 + c
                arr[:, w // 2 :, 2] = 100 + i
                Image.fromarray(arr).save(folder / f"{i}.png")


def test_mixed_size_imagefolder_is_resized_and_centre_cropped(tmp_path):
    from ddflow.data.datasets import resize_center_crop

    _photo_folder(tmp_path / "photos", [(70, 35), (30, 60), (48, 48)])
    cfg = {**EMBEDDED, "source": "imagefolder", "root": str(tmp_path / "photos")}
    with pytest.raises(DataError, match="dataset.image_size"):
        prepare(cfg, tmp_path / "x.npz", tmp_path / "x.json")
    b = prepare({**cfg, "image_size": 28}, tmp_path / "d.npz", tmp_path / "d.json")
    assert b.train_x.shape == (6, 28, 28, 3) and b.test_x.shape == (6, 28, 28, 3)
    assert b.classes == ["cat", "dog"] and b.train_y.tolist() == [0, 0, 0, 1, 1, 1]
    # 70x35 -> shorter side 28 // 7 * 8 = 32 (64x32), centre 28x28 keeps both halves, split midway
    wide = b.train_x[0]
    assert (wide[:, :13, 0] == 200).all() and (wide[:, 15:, 2] == 100).all()
    from PIL import Image

    assert resize_center_crop(Image.new("RGB", (300, 500)), 224).size == (224, 224)


def test_image_size_only_for_imagefolder():
    from ddflow.config import ConfigError, validate_config

    cfg = {
        "dataset": {"name": "m", "source": "mnist-embedded", "image_size": 32},
        "teacher": {},
        "ipc": [1],
        "methods": {"a": {"kind": "sre2l"}},
        "student": {},
    }
    with pytest.raises(ConfigError, match="dataset.image_size"):
        validate_config(cfg)
