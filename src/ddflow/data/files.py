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
    """uint8 (N, size, size, 3) images read from `root / paths[i]`, resized and centre-cropped.

    `stats` (N, 2: size in bytes, mtime in ns), as the data stage indexed the files: a file
    that no longer matches is refused, since results built on the index would otherwise mix old
    and new images without a word."""

    def __init__(
        self,
        root: str | os.PathLike,
        paths: np.ndarray,
        size: int,
        workers: int | None = None,
        stats: np.ndarray | None = None,
    ):
        self.root = Path(root)
        self.paths = np.asarray(paths)
        self.size = int(size)
        self.workers = workers  # decoding threads per batch; None: decode_threads()
        self.stats = stats

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.paths), self.size, self.size, 3)

    def subset(self, index) -> ImageFiles:
        """A view on some images, nothing decoded (a class's candidates, say)."""
        index = np.asarray(index)
        stats = None if self.stats is None else self.stats[index]
        return ImageFiles(self.root, self.paths[index], self.size, self.workers, stats)

    def file_stats(self) -> np.ndarray:
        """(N, 2) size and mtime_ns of every file now: what the data stage records."""
        from ddflow.progress import counted

        out = np.empty((len(self.paths), 2), np.int64)
        for i, rel in counted(list(enumerate(self.paths)), "index files", "file"):
            st = os.stat(self._path(rel))
            out[i] = st.st_size, st.st_mtime_ns
        return out

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self._decode(key)
        rows = np.arange(len(self.paths))[key if isinstance(key, slice) else np.asarray(key)]
        out = np.empty((len(rows), self.size, self.size, 3), dtype=np.uint8)
        if len(rows) == 0:
            return out

        def fill(i: int) -> None:
            out[i] = self._decode(rows[i])

        with ThreadPoolExecutor(min(self.workers or decode_threads(), len(rows))) as pool:
            list(pool.map(fill, range(len(rows))))
        return out

    def _path(self, rel) -> Path:
        return self.root / (rel.decode() if isinstance(rel, bytes) else str(rel))

    def _decode(self, row) -> np.ndarray:
        indexed = None if self.stats is None else tuple(int(v) for v in self.stats[row])
        return decode_image(self._path(self.paths[row]), self.size, indexed=True, stat=indexed)


def decode_image(
    path: Path, size: int | None, indexed: bool = False, stat: tuple[int, int] | None = None
) -> np.ndarray:
    """The one place a dataset image is decoded (resized and centre-cropped when `size`);
    a missing, truncated or non-image file is an error that names it and the fix, and so is
    one that no longer has the size and time `stat` the data stage indexed."""
    from PIL import Image

    from ddflow.data.datasets import DataError, resize_center_crop

    try:
        with open(path, "rb") as f:
            if stat is not None:
                st = os.fstat(f.fileno())
                if (st.st_size, st.st_mtime_ns) != stat:
                    raise DataError(
                        f"image '{path}' changed after the data stage indexed it (size or time "
                        "differ), so results built on the index would mix old and new images. "
                        "Restore the file, or delete the data stage's results/<dataset>/data-*/ "
                        "folder so the index is rebuilt (everything after it reruns)"
                    )
            with Image.open(f) as im:
                im = to_8bit(im, path)
                return np.asarray(resize_center_crop(im, size) if size else im, np.uint8)
    except (OSError, ValueError, SyntaxError) as e:
        if isinstance(e, DataError):
            raise
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


# Pillow's modes of more than 8 bits a channel: "I;16*" (16-bit grey), "I" (32-bit int, what
# 16-bit PNGs often open as), "F" (float TIFF). convert("RGB") clips them to 0..255 (a 16-bit
# photo turns almost all white), so they are scaled here, or refused when no scale is known.
_WIDE_MODES = ("I", "F")


def to_8bit(im, path):
    """An RGB PIL image with 8 bits a channel, scaled from 16-bit or [0, 1] float data (never
    clipped): ddflow's images are uint8, as the papers' are."""
    from PIL import Image

    from ddflow.data.datasets import DataError

    if not im.mode.startswith(_WIDE_MODES):
        return im.convert("RGB")
    a = np.asarray(im, dtype=np.float64)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if im.mode.startswith("F"):
        if lo < 0 or hi > 1:
            raise DataError(
                f"image '{path}' holds floating-point pixels in [{lo:g}, {hi:g}], not [0, 1]: "
                "ddflow cannot tell their scale. Save it as an 8-bit PNG or JPEG (or as floats "
                "in [0, 1])"
            )
        scale = 255.0
    elif lo < 0 or hi > 65535:
        raise DataError(
            f"image '{path}' holds integer pixels in [{lo:g}, {hi:g}], beyond 16 bits: ddflow "
            "cannot tell their scale. Save it as an 8-bit PNG or JPEG"
        )
    else:
        scale = 255.0 / 65535.0  # 16-bit data, whatever range the image happens to use
    return Image.fromarray(np.round(a * scale).astype(np.uint8)).convert("RGB")
