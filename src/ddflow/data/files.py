"""Images kept as files and decoded on demand: the storage for ImageNet-scale folders.

ImageNet-1K at 224 px is about 190 GB as uint8 pixels, so `dataset.storage: files` makes the data
stage write only an index (relative paths, labels); every stage then decodes just the images it
touches (a batch, a class's candidates, the selected initial images) with the dataset's
resize + centre-crop. `ImageFiles` indexes like the uint8 (N, H, W, C) array it stands for, so the
algorithmic code has one path for both storages.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

# Decoding threads: PIL releases the GIL while decoding and resizing.
MAX_DECODE_THREADS = 16


def decode_threads() -> int:
    return max(1, min(MAX_DECODE_THREADS, len(os.sched_getaffinity(0))))


class ImageFiles:
    """uint8 (N, size, size, 3) images read from `root / paths[i]`, resized and centre-cropped."""

    def __init__(
        self, root: str | os.PathLike, paths: np.ndarray, size: int, workers: int | None = None
    ):
        self.root = Path(root)
        self.paths = np.asarray(paths)
        self.size = int(size)
        self.workers = workers  # decoding threads per batch; None: decode_threads()

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.paths), self.size, self.size, 3)

    def subset(self, index) -> ImageFiles:
        """A view on some images, nothing decoded (a class's candidates, say)."""
        return ImageFiles(self.root, self.paths[np.asarray(index)], self.size, self.workers)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self._decode(self.paths[key])
        rows = np.arange(len(self.paths))[key if isinstance(key, slice) else np.asarray(key)]
        paths = self.paths[rows]
        out = np.empty((len(paths), self.size, self.size, 3), dtype=np.uint8)
        if len(paths) == 0:
            return out

        def fill(i: int) -> None:
            out[i] = self._decode(paths[i])

        with ThreadPoolExecutor(min(self.workers or decode_threads(), len(paths))) as pool:
            list(pool.map(fill, range(len(paths))))
        return out

    def _decode(self, rel) -> np.ndarray:
        path = self.root / (rel.decode() if isinstance(rel, bytes) else str(rel))
        return decode_image(path, self.size, indexed=True)


def decode_image(path: Path, size: int | None, indexed: bool = False) -> np.ndarray:
    """The one place a dataset image is decoded (resized and centre-cropped when `size`);
    a missing, truncated or non-image file is an error that names it and the fix."""
    from PIL import Image

    from ddflow.data.datasets import DataError, resize_center_crop

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            return np.asarray(resize_center_crop(im, size) if size else im, np.uint8)
    except (OSError, ValueError, SyntaxError) as e:
        if not path.exists() and indexed:
            fix = (
                "it was removed after the data stage indexed it: restore it, or delete the "
                "data stage's results/<dataset>/data-*/ folder so the index is rebuilt"
            )
        else:
            fix = "it is truncated or not an image: replace it with a good copy or delete it" + (
                " and the data stage's results/<dataset>/data-*/ folder" if indexed else ""
            )
        raise DataError(f"cannot read image '{path}' ({e}); {fix}") from None


def take(images, index):
    """Rows of a uint8 image array, or a lazy view when the images are files."""
    return images.subset(index) if isinstance(images, ImageFiles) else images[index]
