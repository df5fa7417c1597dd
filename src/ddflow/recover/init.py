"""Initializers of the synthetic tensor (in normalized space), an independent switch per method.

gaussian: SRe2L/CDA noise. real: teacher-selected real training images (DELT). mosaic: k x k
mosaics of teacher-scored real crops (RDED's selection; DELT Table 3a).
"""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn

from ddflow.data.files import take
from ddflow.data.pixels import Normalizer
from ddflow.progress import Tracker
from ddflow.select.mosaic import mosaic_class
from ddflow.select.ranking import select

INITS = ("gaussian", "real", "mosaic")


def gaussian_init(n: int, chw: tuple[int, int, int], seed: int) -> torch.Tensor:
    """x ~ N(0, 1) in normalized space, drawn on CPU so bytes match across devices."""
    return torch.randn((n, *chw), generator=torch.Generator().manual_seed(seed))


def real_init(
    train_x,
    train_y: np.ndarray,
    scores: np.ndarray,
    classes: range,
    ipc: int,
    criterion: str,
    norm: Normalizer,
) -> torch.Tensor:
    """Class-major (len(classes) * ipc) selected images, each class in selection order."""
    rows = select(scores, train_y, max(classes) + 1, ipc, criterion)[list(classes)]
    return norm.to_tensor(train_x[rows.reshape(-1)])


def mosaic_images(
    teacher: nn.Module,
    train_x,
    train_y: np.ndarray,
    classes: range,
    ipc: int,
    method: dict,
    norm: Normalizer,
    seed: int,
) -> np.ndarray:
    """Class-major uint8 mosaics (RDED's saved images), quantized class by class so that a
    1,000-class 224-px set never exists as floats."""
    rng = random.Random(seed)
    tracker = Tracker("RDED selection", len(classes), "class")
    out = []
    for done, c in enumerate(classes, 1):
        mosaics = mosaic_class(
            teacher,
            norm,
            take(train_x, np.flatnonzero(train_y == c)),
            c,
            ipc,
            method["mosaic_factor"],
            method["mosaic_crops"],
            method["mosaic_candidates"],
            rng,
        )
        out.append(norm.to_uint8(mosaics))
        tracker.update(done)
    return np.concatenate(out)


def mosaic_init(teacher, train_x, train_y, classes, ipc, method, norm, seed) -> torch.Tensor:
    """Normalized mosaics, quantized to uint8 as the saved RDED images DELT starts from are."""
    return norm.to_tensor(
        mosaic_images(teacher, train_x, train_y, classes, ipc, method, norm, seed)
    )


def folder_init(root, by: str, classes: list[str], c0: int, c1: int, index: int, chw, norm):
    """Image `index` (sorted file-name order) of each class folder c0..c1 of a patch folder
    (FADRM's `<class>/class<c>_id<i>.jpg`), normalized, in the data's shape."""
    from pathlib import Path

    from ddflow.data.datasets import DataError
    from ddflow.methods.external import class_folders, image_files, read_image

    folders = class_folders(Path(root), classes, by)[c0:c1]
    out = []
    for folder in folders:
        files = image_files(folder)
        if index >= len(files):
            raise DataError(
                f"init folder '{folder}' holds {len(files)} images; IPC index {index} needs "
                f"{index + 1}: add patches or lower ipc"
            )
        out.append(read_image(files[index], tuple(chw[1:]), chw[0]))
    return norm.to_tensor(np.stack(out))


def set_init(images_dir: str, manifest: str, classes: list[str], c0: int, c1: int, index: int,
             norm) -> torch.Tensor:  # fmt: skip
    """IPC index `index` of classes c0..c1 of another method's distilled set (e.g. RDED's
    mosaics as FADRM's patches), normalized; only those images are read."""
    from ddflow import io
    from ddflow.data.datasets import DataError
    from ddflow.distilled import read_distilled

    def wanted(e):
        return e["ipc_index"] == index and c0 <= e["label"] < c1

    found = sorted(e["label"] for e in io.read_json(manifest)["files"] if wanted(e))
    if found != list(range(c0, c1)):
        raise DataError(
            f"distilled set '{manifest}' has no IPC index {index} for every class {c0}..{c1 - 1}: "
            "its IPC is smaller than the set recovered from it; raise methods.<name>.init_ipc"
        )
    x, y, _ = read_distilled(images_dir, manifest, classes, where=wanted)
    return norm.to_tensor(x[np.argsort(y, kind="stable")])


def read_set_classes(images_dir: str, manifest: str, c0: int, c1: int):
    """(uint8 images, labels) of classes c0..c1 of another method's set, every IPC index."""
    from ddflow import io
    from ddflow.distilled import read_distilled

    classes = io.read_json(manifest)["classes"]
    x, y, _ = read_distilled(images_dir, manifest, classes, where=lambda e: c0 <= e["label"] < c1)
    return x, np.asarray(y)
