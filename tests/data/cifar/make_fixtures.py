"""How the shipped CIFAR fixtures were made (real CIFAR-10 images, official python layout).

    python make_fixtures.py SRC3 SRC20 OUT
SRC3 / SRC20: CIFAR-10 python layouts with 3 and 20 images a class in each split (train and
test). Writes OUT/cifar-10-batches-py (SRC3 as is: 30 train, 30 test images) and
OUT/cifar-100-python: 100 fine classes of one train and one test image each, the first ten images
of each CIFAR-10 class relabelled 10 * class + k (coarse label: the CIFAR-10 class), so the
CIFAR-100 loader reads real RGB pixels in the official format.
"""

import pickle
import shutil
import sys
from pathlib import Path

import numpy as np


def read(path):
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


def first_ten_per_class(batches):
    data = np.concatenate([b[b"data"] for b in batches])
    labels = np.concatenate([b[b"labels"] for b in batches])
    rows, fine, coarse = [], [], []
    for c in range(10):
        idx = np.flatnonzero(labels == c)[:10]
        rows += idx.tolist()
        fine += [10 * c + k for k in range(10)]
        coarse += [c] * 10
    return data[rows], fine, coarse


def main(src3, src20, out):
    src3, src20, out = Path(src3), Path(src20), Path(out)
    shutil.copytree(src3 / "cifar-10-batches-py", out / "cifar-10-batches-py", dirs_exist_ok=True)
    base = src20 / "cifar-10-batches-py"
    names = [n.decode() for n in read(base / "batches.meta")[b"label_names"]]
    c100 = out / "cifar-100-python"
    c100.mkdir(parents=True, exist_ok=True)
    meta = {
        b"fine_label_names": [f"{names[c]}_{k}".encode() for c in range(10) for k in range(10)],
        b"coarse_label_names": [n.encode() for n in names],
    }
    (c100 / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    splits = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    for split, files in splits.items():
        data, fine, coarse = first_ten_per_class([read(base / f) for f in files])
        blob = {
            b"filenames": [f"{split}_{i}.png".encode() for i in range(len(fine))],
            b"batch_label": f"{split} fixture".encode(),
            b"fine_labels": fine,
            b"coarse_labels": coarse,
            b"data": data,
        }
        (c100 / split).write_bytes(pickle.dumps(blob, protocol=4))  # meta: protocol 2


if __name__ == "__main__":
    main(*sys.argv[1:4])
