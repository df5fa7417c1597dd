"""File storage (`dataset.storage: files`) against the in-memory array, on ImageNet-like JPEGs.

Writes a synthetic ImageNet layout (train/<wnid>/*.JPEG, val/<wnid>/*.JPEG, photo-sized 500x375
JPEGs with smooth content), then runs the data stage both ways and prints: data stage time and
output size, decode throughput of a stage reading batches (images/s), and what that means at
ImageNet-1K scale (1,281,167 training images): index size, array size, one pass of decoding.

    python benchmarks/file_storage.py [--classes 20] [--per-class 50] [--size 224]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ddflow.data.datasets import load_bundle, prepare  # noqa: E402
from ddflow.data.files import decode_threads  # noqa: E402

IMAGENET_TRAIN = 1_281_167


def write_photos(root: Path, classes: int, per_class: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:375, 0:500]
    for split, n in (("train", per_class), ("val", max(1, per_class // 10))):
        for c in range(classes):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True)
            for i in range(n):
                fx, fy, phase = rng.uniform(0.005, 0.05, 2).tolist() + [rng.uniform(0, 6)]
                base = 127 + 100 * np.sin(fx * xx + phase)[..., None] * np.cos(fy * yy)[..., None]
                img = base * rng.uniform(0.5, 1.0, 3) + rng.normal(0, 8, (375, 500, 3))
                Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(
                    folder / f"n{c:08d}_{i}.JPEG", quality=90
                )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classes", type=int, default=20)
    ap.add_argument("--per-class", type=int, default=50)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_photos(tmp / "imagenet", args.classes, args.per_class)
        n = args.classes * args.per_class
        jpeg_mb = sum(f.stat().st_size for f in (tmp / "imagenet/train").rglob("*.JPEG")) / 2**20
        print(
            f"{n} train JPEGs 500x375 ({jpeg_mb / n * 1024:.0f} KB each), "
            f"{decode_threads()} decode threads, size {args.size}"
        )
        ds = {
            "name": "bench",
            "source": "imagefolder",
            "root": str(tmp / "imagenet"),
            "image_size": args.size,
            "max_train_per_class": None,
            "max_test_per_class": None,
        }
        out = {}
        imagenet_stats = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
        runs = {
            "array": {"storage": "array"},
            "files": {"storage": "files"},  # decodes every image once for mean/std
            "files, fixed mean/std": {"storage": "files", **imagenet_stats},  # index only
        }
        for name, keys in runs.items():
            stem = name.split(",")[0] + ("_fixed" if "," in name else "")
            t0 = time.perf_counter()
            prepare({**ds, **keys}, tmp / f"{stem}.npz", tmp / f"{stem}.json")
            wall = time.perf_counter() - t0
            out[stem] = (wall, os.path.getsize(tmp / f"{stem}.npz"))
            print(
                f"data stage, storage {name:21s}: {wall:6.1f} s, dataset.npz "
                f"{out[stem][1] / 2**20:8.2f} MB"
            )
        files = load_bundle(tmp / "files.npz", tmp / "files.json").train_x
        order = np.random.default_rng(0).permutation(n)
        t0 = time.perf_counter()
        for s in range(0, n, args.batch):
            files[order[s : s + args.batch]]
        rate = n / (time.perf_counter() - t0)
        print(f"random batches of {args.batch} from files: {rate:.0f} images/s")
        per_image_index = out["files"][1] / (n + n // 10)
        pixels = args.size * args.size * 3
        print(
            f"at ImageNet-1K scale: index {per_image_index * IMAGENET_TRAIN / 2**20:.0f} MB vs "
            f"array {pixels * IMAGENET_TRAIN / 2**30:.0f} GB; one decoding pass (ranking, an "
            f"epoch) {IMAGENET_TRAIN / rate / 60:.0f} min at this rate, {decode_threads()} threads"
        )


if __name__ == "__main__":
    main()
