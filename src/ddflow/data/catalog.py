"""What the workflow must know about a dataset at parse time, without reading images.

Kept free of heavy imports: SLURM jobs re-parse the Snakefile before every job.
"""

from __future__ import annotations

from pathlib import Path

FIXED_CLASSES = {"mnist-embedded": 10, "cifar10": 10, "cifar100": 100}


def num_classes(ds_cfg: dict) -> int:
    source = ds_cfg["source"]
    if source in FIXED_CLASSES:
        if source != "mnist-embedded":
            sub = "cifar-10-batches-py" if source == "cifar10" else "cifar-100-python"
            _require(Path(ds_cfg["root"]) / sub, f"the extracted CIFAR python archive '{sub}/'")
        return FIXED_CLASSES[source]
    train = _require(Path(ds_cfg["root"]) / "train", "train/<class>/<image> folders")
    return sum(1 for p in train.iterdir() if p.is_dir())


def _require(path: Path, what: str) -> Path:
    if not path.is_dir():
        from ddflow.data.datasets import DataError

        raise DataError(
            f"dataset path '{path}' not found: dataset.root must hold {what}. "
            "Set dataset.root in your config (see config/README.md, 'dataset')."
        )
    return path
