"""The distilled-dataset artifact: an ImageFolder of lossless PNGs plus a JSON manifest.

Class folders are named `<index>-<name>` so that a plain sorted ImageFolder reader gets the same
class order as the teacher; the manifest's class map is checked on every load anyway.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import numpy as np
from PIL import Image

from ddflow.data.datasets import DataError, check_class_map
from ddflow.io import CorruptArtifactError, atomic_path, read_json, reading, write_json
from ddflow.progress import counted


def class_folder(index: int, name: str) -> str:
    return f"{index:05d}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}"


def write_distilled(
    images_dir: str,
    manifest_path: str,
    images: np.ndarray,
    labels: np.ndarray,
    ipc_index: np.ndarray,
    classes: list[str],
    manifest: dict,
    iterations: np.ndarray | None = None,
) -> None:
    """Write PNGs (atomically, as one folder) and then the manifest with per-file sha256 and,
    for recovered sets, each image's optimisation steps (DELT's differ by joining round)."""
    files = []
    steps = iterations if iterations is not None else [None] * len(images)
    with atomic_path(images_dir, is_dir=True) as tmp:
        rows = zip(images, labels, ipc_index, steps)
        for img, y, k, it in counted(rows, "write set images", "image", len(images)):
            rel = f"{class_folder(int(y), classes[int(y)])}/{int(y):05d}_{int(k):04d}.png"
            path = tmp / rel
            path.parent.mkdir(exist_ok=True)
            Image.fromarray(img.squeeze(-1) if img.shape[-1] == 1 else img).save(path)
            files.append(
                {
                    "file": rel,
                    "label": int(y),
                    "ipc_index": int(k),
                    "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                    **({"iterations": int(it)} if it is not None else {}),
                }
            )
    write_json(
        manifest_path,
        {**manifest, "classes": classes, "format": "png", "n_images": len(files), "files": files},
    )


def read_distilled(images_dir: str, manifest_path: str, classes: list[str], where=None):
    """Return (uint8 NHWC images, labels) in manifest order, after checking the class map;
    `where(entry)` keeps only some images (a set read as another method's start)."""
    manifest = read_json(manifest_path)
    check_class_map(classes, manifest["classes"], f"distilled set '{manifest_path}'")
    root = Path(images_dir)
    imgs, labels = [], []
    entries = [e for e in manifest["files"] if where is None or where(e)]
    for entry in counted(entries, "read set images", "image"):
        path = root / entry["file"]
        if not path.is_file():
            raise DataError(
                f"distilled image '{path}' listed in the manifest is missing; "
                "rerun the assemble step"
            )
        data = path.read_bytes()
        if "sha256" in entry and hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise CorruptArtifactError(
                f"distilled image '{path}' does not match the sha256 in '{manifest_path}': it "
                "was changed after assembly. Delete the set's folder and rerun"
            )
        with reading(path), Image.open(io.BytesIO(data)) as im:
            arr = np.asarray(im)
        imgs.append(arr[..., None] if arr.ndim == 2 else arr)
        labels.append(entry["label"])
    return np.stack(imgs), np.asarray(labels, dtype=np.int64), manifest
