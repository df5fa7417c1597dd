"""Someone else's distilled set, read from a folder, so a released set sits beside ddflow's own
under the same students and protocols.

Layout `<path>/<class folder>/<image>`. Class folders are named as the data's classes
(`class_folders: names`), or, as SRe2L/CDA/DELT release them (`new000`, `00000`, ...), their
sorted order is the class order (`class_folders: index`). The first `ipc` images of a class in
sorted file-name order are taken, converted to the data's channels and, when their size differs,
resized and centre-cropped to the data's size (the evaluation transform of RDED/DELT).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ddflow.errors import ConfigError
from ddflow.methods.base import Inputs, MethodKind, register


@register
class External(MethodKind):
    name = "external"
    schema = "external_method"
    stage = "external"
    version = 1
    code = ("methods/external.py",)

    def check(self, where, method):
        if not Path(method["path"]).is_dir():
            raise ConfigError(
                f"config key '{where}.path': folder '{method['path']}' does not exist; set it "
                "to the folder holding the set's <class>/<image> files"
            )

    def files(self, method):
        return {"external": method["path"]}

    def content(self, method):
        from ddflow.data.datasets import IMAGE_EXTS
        from ddflow.data.fingerprint import fingerprint

        return fingerprint(method["path"], IMAGE_EXTS)

    def build(self, inputs: Inputs, method: dict, ipc: int):
        from ddflow.data.datasets import IMAGE_EXTS
        from ddflow.data.fingerprint import fingerprint

        b = inputs.bundle
        c, h, w = b.image_shape
        root = Path(method["path"])
        folders = class_folders(root, b.classes, method["class_folders"])
        seen = fingerprint(root, IMAGE_EXTS, with_files=True)
        images, read = [], []
        for folder in folders:
            x, files = read_class(folder, ipc, (h, w), c)
            images.append(x)
            read += [f.relative_to(root).as_posix() for f in files]
        by_file = {e["file"]: e for e in seen.pop("entries")}
        source = {"path": method["path"], "files": [by_file[f] for f in read]}
        return np.concatenate(images), {"source": source, "content": seen}


def class_folders(root: Path, classes: list[str], by: str) -> list[Path]:
    from ddflow.data.datasets import DataError, check_class_map

    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    if by == "names":
        check_class_map(classes, found, f"class folders of the external set '{root}'")
        return [root / name for name in classes]
    if len(found) != len(classes):
        raise DataError(
            f"external set '{root}' has {len(found)} class folders, the data has "
            f"{len(classes)} classes: with class_folders: index, folder i (sorted) is class i"
        )
    return [root / name for name in found]


def image_files(folder: Path) -> list[Path]:
    """A class folder's images in sorted file-name order (the order every reader takes)."""
    from ddflow.data.datasets import IMAGE_EXTS

    return sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_EXTS)


def read_class(folder: Path, ipc: int, hw: tuple[int, int], channels: int):
    """The first `ipc` images of a class folder, as uint8 (ipc, H, W, C) in the data's shape,
    and the files they came from."""
    from ddflow.data.datasets import DataError

    files = image_files(folder)[:ipc]
    if len(files) < ipc:
        raise DataError(
            f"external set folder '{folder}' holds {len(files)} images, fewer than IPC {ipc}; "
            "lower ipc or add images"
        )
    return np.stack([read_image(f, hw, channels) for f in files]), files


def read_image(f: Path, hw: tuple[int, int], channels: int) -> np.ndarray:
    """One image as uint8 (H, W, C) in the data's shape: resized and centre-cropped when its
    size differs (the evaluation transform of RDED/DELT)."""
    from PIL import Image

    from ddflow.data.datasets import DataError, resize_center_crop
    from ddflow.data.files import decode_image

    x = decode_image(f, None)
    if x.shape[:2] != hw:
        if hw[0] != hw[1]:
            raise DataError(
                f"image '{f}' is {x.shape[1]}x{x.shape[0]}, the data is {hw[1]}x{hw[0]} "
                "and not square: resize the set to the data's size"
            )
        x = np.asarray(resize_center_crop(Image.fromarray(x), hw[0]), np.uint8)
    return x if channels == 3 else np.asarray(Image.fromarray(x).convert("L"))[..., None]
