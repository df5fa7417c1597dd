"""What the workflow must know about a dataset at parse time, without reading images.

Kept free of heavy imports: SLURM jobs re-parse the Snakefile before every job.
"""

from __future__ import annotations

from pathlib import Path

FIXED_CLASSES = {"mnist-embedded": 10, "cifar10": 10, "cifar100": 100}
# Training images a class in the fixed sources (the embedded MNIST: 500 a class, split here).
FIXED_TRAIN_PER_CLASS = {"cifar10": 5000, "cifar100": 500}


def num_classes(ds_cfg: dict) -> int:
    source = ds_cfg["source"]
    if source in FIXED_CLASSES:
        if source != "mnist-embedded" and not ds_cfg.get("download"):  # else the data job fetches
            sub = "cifar-10-batches-py" if source == "cifar10" else "cifar-100-python"
            _require(Path(ds_cfg["root"]) / sub, f"the extracted CIFAR python archive '{sub}/'")
        return FIXED_CLASSES[source]
    if source == "huggingface":
        from ddflow.data import hub

        return hub.num_classes(ds_cfg)
    train = _require(Path(ds_cfg["root"]) / "train", "train/<class>/<image> folders")
    return sum(1 for p in train.iterdir() if p.is_dir())


def class_names(ds_cfg: dict) -> list[str] | None:
    """The data's class names in class order where they are known without reading images
    (folder names, CIFAR's meta file, a saved dataset's features); None otherwise."""
    source = ds_cfg["source"]
    if source == "mnist-embedded":
        return [str(i) for i in range(10)]
    if source == "imagefolder":
        train = _require(Path(ds_cfg["root"]) / "train", "train/<class>/<image> folders")
        return sorted(p.name for p in train.iterdir() if p.is_dir())
    if source in FIXED_CLASSES and not ds_cfg.get("download"):
        from ddflow.data.datasets import cifar_classes

        return cifar_classes(Path(ds_cfg["root"]), FIXED_CLASSES[source])
    return None


def _require(path: Path, what: str) -> Path:
    if not path.is_dir():
        from ddflow.data.datasets import DataError

        raise DataError(
            f"dataset path '{path}' not found: dataset.root must hold {what}. "
            "Set dataset.root in your config (see config/README.md, 'dataset')."
        )
    return path


def min_train_per_class(ds_cfg: dict, list_folders: bool = False) -> tuple[int, str] | None:
    """(fewest training images of any class, that class), as far as is known without reading
    images: fixed sources from their size, folders only with `list_folders` (a directory scan).
    The validation split is carved out of them."""
    known = _min_pool_per_class(ds_cfg, list_folders)
    if known is None:
        return None
    return known[0] - (ds_cfg.get("val_per_class") or 0), known[1]


def _min_pool_per_class(ds_cfg: dict, list_folders: bool) -> tuple[int, str] | None:
    cap = ds_cfg.get("max_train_per_class") or float("inf")
    source = ds_cfg["source"]
    if source == "mnist-embedded":
        n = 500 - round(500 * ds_cfg.get("test_fraction", 0.2))
        return min(n, cap), "every class"
    if source in FIXED_TRAIN_PER_CLASS:
        return min(FIXED_TRAIN_PER_CLASS[source], cap), "every class"
    if not list_folders:
        return None
    from ddflow.data.datasets import IMAGE_EXTS

    train = _require(Path(ds_cfg["root"]) / "train", "train/<class>/<image> folders")
    counts = {
        d.name: sum(1 for f in d.iterdir() if f.suffix.lower() in IMAGE_EXTS)
        for d in train.iterdir()
        if d.is_dir()
    }
    name = min(counts, key=counts.get)
    return min(counts[name], cap), f"class '{name}'"


def check_ipc_fits(ds_cfg: dict, ipcs: list[int], list_folders: bool = False) -> None:
    """Every IPC can be drawn from the real training images (random subset, real init, RDED)."""
    known = min_train_per_class(ds_cfg, list_folders)
    if not known:
        return
    from ddflow.config import ConfigError

    val = ds_cfg.get("val_per_class")
    if val and known[0] < 1:
        raise ConfigError(
            f"config key 'dataset.val_per_class': {val} images a class held out, but {known[1]} "
            f"has only {known[0] + val} training images; lower val_per_class"
        )
    if max(ipcs) > known[0]:
        held = f", {val} a class held out for validation" if val else ""
        raise ConfigError(
            f"config key 'ipc': {max(ipcs)} images a class, but {known[1]} has only {known[0]} "
            f"training images (dataset.max_train_per_class caps them{held}); lower ipc"
        )


def content(ds_cfg: dict) -> dict | None:
    """Fingerprints of the folders the data stage reads (data/fingerprint.py), by split; None
    for the embedded set (checked against its own checksum), for `storage: files` (its index
    records each file's size and time instead) and while a folder is missing: an archive that
    `dataset.download` fetches is md5-checked, and its data stage records no fingerprint."""
    from ddflow.data.fingerprint import fingerprint

    source, root = ds_cfg["source"], Path(ds_cfg.get("root") or ".")
    if source == "mnist-embedded" or ds_cfg.get("storage") == "files":
        return None
    if source in FIXED_CLASSES:
        folders = {"archive": root / ("cifar-10-batches-py" if source == "cifar10" else
                                      "cifar-100-python")}  # fmt: skip
        suffixes = None
    elif source == "huggingface":
        if not root.is_dir():
            return None  # a hub id: the library's cache holds it
        folders, suffixes = {"saved": root}, None
    else:
        from ddflow.data.datasets import IMAGE_EXTS

        test = "test" if (root / "test").is_dir() else "val"
        folders, suffixes = {"train": root / "train", test: root / test}, IMAGE_EXTS
    prints = {n: fingerprint(f, suffixes, links_out=True) for n, f in folders.items()}
    return None if None in prints.values() else prints
