"""Hugging Face `datasets` as a source: a hub id, or a folder written by `save_to_disk`.

Only the image and label columns are read; class names come from the label's ClassLabel feature
(so the class order is the dataset's own). `datasets` is imported here only, when the source is
used (`pip install 'ddflow[hf]'`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ddflow.data.datasets import DataError, resize_center_crop


def datasets_module(needed_by: str = "dataset.source huggingface"):
    """The `datasets` package, or one message saying how to install it."""
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"{needed_by} needs the datasets package: pip install 'ddflow[hf]'"
        ) from None
    return datasets


def load(root: str, splits: dict[str, str]):
    """The DatasetDict of a saved folder, or of a hub id (needs network, or the local cache)."""
    datasets = datasets_module()
    if Path(root).is_dir():
        try:
            d = datasets.load_from_disk(root)
        except (FileNotFoundError, ValueError, OSError) as e:
            raise DataError(
                f"config key 'dataset.root': '{root}' is a folder but not a dataset written by "
                f"datasets' save_to_disk ({type(e).__name__}: {str(e).splitlines()[0][:160]}). "
                "Point dataset.root at the folder save_to_disk wrote (it holds "
                "dataset_dict.json), or at a hub id such as 'cifar10'"
            ) from None
    else:
        try:
            d = datasets.load_dataset(root)
        except Exception as e:  # offline, unknown id, gated: one message with the way out
            raise DataError(
                f"could not load '{root}' from the Hugging Face hub ({type(e).__name__}: {e}). "
                "Without network: on a machine with it run datasets.load_dataset(id)"
                ".save_to_disk(folder), copy the folder here and set dataset.root to it."
            ) from None
    if not isinstance(d, datasets.DatasetDict):
        raise DataError(f"'{root}' holds one split; ddflow needs a train and a test split")
    missing = [s for s in splits.values() if s not in d]
    if missing:
        raise DataError(
            f"'{root}' has splits {sorted(d)}, not {missing}: set dataset.hf_splits, e.g. "
            "{train: train, test: validation}"
        )
    return d


def columns(features, image: str | None, label: str | None, root: str) -> tuple[str, str]:
    """The image and label columns: as configured, or the first Image / ClassLabel feature."""
    datasets = datasets_module()

    def first(kind):
        return next((k for k, f in features.items() if isinstance(f, kind)), None)

    found = {"image": image or first(datasets.Image), "label": label or first(datasets.ClassLabel)}
    for what, name in found.items():
        if name is None or name not in features:
            raise DataError(
                f"'{root}' has no {what} column {name or '(none found)'}; its columns: "
                f"{list(features)}. Set dataset.hf_{what}_column"
            )
    if not isinstance(features[found["label"]], datasets.ClassLabel):
        raise DataError(
            f"column '{found['label']}' of '{root}' is not a ClassLabel, so it has no class names: "
            "choose another with dataset.hf_label_column"
        )
    return found["image"], found["label"]


def _pixels(split, image_col: str, size: int | None, mode: str) -> np.ndarray:
    from ddflow.data.files import to_8bit

    out = []
    for i, im in enumerate(split[image_col]):
        im = to_8bit(im, f"row {i} of column '{image_col}'").convert(mode)
        if size:
            im = resize_center_crop(im, size)
        arr = np.asarray(im, dtype=np.uint8)
        out.append(arr[..., None] if arr.ndim == 2 else arr)
        if out[-1].shape != out[0].shape:
            raise DataError(
                f"images of the Hugging Face dataset differ in size ({out[0].shape[:2]} and "
                f"{out[-1].shape[:2]}): set dataset.image_size to resize and centre-crop"
            )
    return np.stack(out)


def read(ds_cfg: dict):
    """(train_x, train_y, test_x, test_y, classes) as uint8 NHWC arrays and int64 labels."""
    root = ds_cfg["root"]
    splits = {"train": "train", "test": "test", **(ds_cfg.get("hf_splits") or {})}
    d = load(root, splits)
    train = d[splits["train"]]
    image_col, label_col = columns(
        train.features, ds_cfg.get("hf_image_column"), ds_cfg.get("hf_label_column"), root
    )
    first = train[0][image_col]
    mode = "L" if first.mode in ("L", "1", "I;16", "I") else "RGB"
    out = []
    for name in ("train", "test"):
        split = d[splits[name]]
        out += [
            _pixels(split, image_col, ds_cfg.get("image_size"), mode),
            np.asarray(split[label_col], dtype=np.int64),
        ]
    return (*out, list(train.features[label_col].names))


def num_classes(ds_cfg: dict) -> int:
    """The class count at plan time: from a saved folder's JSON, else from the hub's metadata."""
    root = Path(ds_cfg["root"])
    train = (ds_cfg.get("hf_splits") or {}).get("train", "train")
    info = root / train / "dataset_info.json"
    if info.is_file():
        features = json.loads(info.read_text())["features"]
        label = ds_cfg.get("hf_label_column") or next(
            (k for k, f in features.items() if f.get("_type") == "ClassLabel"), None
        )
        if label in features and "names" in features[label]:
            return len(features[label]["names"])
    return len(read_classes(ds_cfg))


def read_classes(ds_cfg: dict) -> list[str]:
    d = load(ds_cfg["root"], {"train": (ds_cfg.get("hf_splits") or {}).get("train", "train")})
    split = d[(ds_cfg.get("hf_splits") or {}).get("train", "train")]
    _, label = columns(split.features, None, ds_cfg.get("hf_label_column"), ds_cfg["root"])
    return list(split.features[label].names)
