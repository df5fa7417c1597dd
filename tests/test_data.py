import numpy as np
import pytest
import torch

from ddflow.data.catalog import num_classes
from ddflow.data.datasets import DataError, check_class_map, load_bundle, prepare, stratified_split
from ddflow.distilled import read_distilled, write_distilled

from conftest import ROOT

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
    # the same images under the same labels (PNG is lossless; CIFAR-10's names are sorted)
    assert folder.classes == pickled.classes
    for split in ("train", "test"):
        for c in range(10):

            def images(bundle, c=c, split=split):
                x, y = getattr(bundle, f"{split}_x"), getattr(bundle, f"{split}_y")
                return sorted(img.tobytes() for img in x[y == c])

            assert images(folder) == images(pickled), (split, c)


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


def test_file_storage_reads_the_same_pixels_without_storing_them(tmp_path):
    from ddflow.data.files import ImageFiles, take

    _photo_folder(tmp_path / "photos", [(70, 35), (30, 60), (48, 48)])
    cfg = {**EMBEDDED, "source": "imagefolder", "root": str(tmp_path / "photos"), "image_size": 28}
    arr = prepare(cfg, tmp_path / "a.npz", tmp_path / "a.json")
    prepare({**cfg, "storage": "files"}, tmp_path / "f.npz", tmp_path / "f.json")
    lazy = load_bundle(tmp_path / "f.npz", tmp_path / "f.json")
    assert isinstance(lazy.train_x, ImageFiles) and lazy.image_shape == (3, 28, 28)
    with np.load(tmp_path / "f.npz") as z:
        assert "train_x" not in z and z["train_paths"][0] == b"train/cat/0.png"
    # every way the stages index the images gives the array storage's pixels
    assert np.array_equal(lazy.train_x[:], arr.train_x)
    assert np.array_equal(lazy.test_x[2:5], arr.test_x[2:5])
    mask = lazy.train_y == 1
    assert np.array_equal(lazy.train_x[mask], arr.train_x[mask])
    assert np.array_equal(lazy.train_x[np.array([4, 0])], arr.train_x[[4, 0]])
    view = take(lazy.train_x, np.flatnonzero(mask))
    assert isinstance(view, ImageFiles) and np.array_equal(view[[2, 1]], arr.train_x[mask][[2, 1]])
    # streamed statistics agree with the array's exact ones
    assert np.allclose(lazy.mean, arr.mean, atol=1e-9) and np.allclose(lazy.std, arr.std, atol=1e-9)
    # a file removed after indexing: a clear error naming it and the fix
    (tmp_path / "photos" / "train" / "dog" / "1.png").unlink()
    with pytest.raises(DataError, match=r"dog/1\.png.*data stage"):
        lazy.train_x[mask]


def test_fixed_normalization_and_capping_with_file_storage(tmp_path):
    _photo_folder(tmp_path / "photos", [(70, 35), (30, 60), (48, 48)])
    cfg = {
        **EMBEDDED,
        "source": "imagefolder",
        "root": str(tmp_path / "photos"),
        "image_size": 16,
        "storage": "files",
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "max_train_per_class": 2,
    }
    b = prepare(cfg, tmp_path / "d.npz", tmp_path / "d.json")
    assert b.mean == cfg["mean"] and b.std == cfg["std"]
    assert b.train_y.tolist() == [0, 0, 1, 1] and len(b.train_x) == 4
    assert [p.decode() for p in b.train_x.paths] == [
        "train/cat/0.png",
        "train/cat/1.png",
        "train/dog/0.png",
        "train/dog/1.png",
    ]
    with pytest.raises(DataError, match="one value per channel"):
        prepare({**cfg, "mean": [0.5], "std": [0.5]}, tmp_path / "e.npz", tmp_path / "e.json")


@pytest.mark.parametrize(
    "dataset, key",
    [
        ({"source": "imagefolder", "root": "x", "storage": "files"}, "dataset.storage"),
        ({"source": "mnist-embedded", "storage": "files"}, "dataset.storage"),
        ({"source": "mnist-embedded", "mean": [0.5]}, "dataset.mean"),
        ({"source": "mnist-embedded", "mean": [0.5], "std": [0.2, 0.2]}, "dataset.mean"),
    ],
)
def test_storage_and_normalization_keys_are_checked(dataset, key):
    from ddflow.config import ConfigError, validate_config

    cfg = {
        "dataset": {"name": "m", **dataset},
        "teacher": {},
        "ipc": [1],
        "methods": {"a": {"kind": "sre2l"}},
        "student": {},
    }
    with pytest.raises(ConfigError, match=key):
        validate_config(cfg)


SHIPPED_CIFAR = ROOT / "tests" / "data" / "cifar"  # real images, official python layouts


def test_shipped_cifar100_fixture_reads_100_rgb_classes(tmp_path):
    from ddflow.config import validate_config

    ds = validate_config(
        {
            "dataset": {"name": "c100", "source": "cifar100", "root": str(SHIPPED_CIFAR)},
            "teacher": {},
            "student": {},
            "ipc": [1],
            "methods": {"random": {"kind": "random"}},
        }
    )["dataset"]
    b = prepare(ds, tmp_path / "d.npz", tmp_path / "m.json")
    assert b.num_classes == 100 and b.image_shape == (3, 32, 32)
    assert b.classes[:2] == ["airplane_0", "airplane_1"] and b.classes[-1] == "truck_9"
    assert (np.bincount(b.train_y, minlength=100) == 1).all()
    assert (np.bincount(b.test_y, minlength=100) == 1).all()
    channels = b.train_x.reshape(-1, 3).astype(float)
    assert channels.std(0).min() > 20  # real photos, not a constant fill
    assert not np.allclose(channels[:, 0], channels[:, 2])  # colour, not grey


def test_to_uint8_saturates_out_of_range_pixels_and_truncates():
    from ddflow.data.pixels import Normalizer

    norm = Normalizer([0.5, 0.25], [0.5, 0.25])
    x01 = torch.tensor([-0.7, 0.0, 0.5, 0.9999, 1.0, 1.8]).view(1, 1, 1, 6).repeat(1, 2, 1, 1)
    out = norm.to_uint8((x01 - norm.mean) / norm.std)
    assert out.shape == (1, 1, 6, 2) and out.dtype == np.uint8
    assert out[0, 0, :, 0].tolist() == [0, 0, 127, 254, 255, 255]  # clamp, x255, truncate
    assert (out[..., 0] == out[..., 1]).all()  # per-channel mean and std undone
