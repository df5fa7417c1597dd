"""Atomic writes, provenance and safe checkpoints.

Every output goes through a temp name and a rename, so a killed job never leaves a half file
that Snakemake would take as finished.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import pickle
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

import ddflow
from ddflow.errors import DdflowError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, is_dir: bool = False):
    """Yield a temp path next to `path`; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp"))
    else:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp")
        os.close(fd)
        tmp = Path(name)
    try:
        try:
            yield tmp
        except Exception as e:
            if _disk_full(e, path.parent):
                raise OSError(
                    errno.ENOSPC,
                    f"no space left on device while writing '{path}' "
                    f"({shutil.disk_usage(path.parent).free} bytes free there): free space or "
                    "put results/ on a larger disk, then rerun (the partial file was removed)",
                ) from e
            raise
        # mkstemp/mkdtemp make owner-only files; results get what the umask gives any file
        os.chmod(tmp, _UMASK_MODE[is_dir])
        if is_dir and path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK_MODE = {False: 0o666 & ~_umask(), True: 0o777 & ~_umask()}


def _disk_full(e: BaseException, where: Path) -> bool:
    """ENOSPC, or a library's own wording of it (torch.save: 'iostream error') on a full disk."""
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        return True
    try:
        return shutil.disk_usage(where).free < 1 << 20
    except OSError:
        return False


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Strict JSON: a non-finite number is an error here, never a NaN in a results file."""
    try:
        text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False)
    except ValueError as e:
        raise ValueError(f"refusing to write a non-finite number to '{path}': {e}") from None
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n")


# What a CIFAR python batch holds besides builtins: numpy arrays (numpy 1 and 2 module paths),
# and the bytes of a protocol-2 pickle written by Python 3 (_codecs.encode(text, "latin1")).
_PICKLE_ALLOWED = {
    ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class UntrustedPickleError(DdflowError):
    """A pickle asked for something its format never holds: refused before it runs."""


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _PICKLE_ALLOWED:
            if module == "_codecs":
                import codecs

                return codecs.encode
            if module == "numpy":
                return getattr(np, name)
            return (getattr(np, "_core", None) or np.core).multiarray._reconstruct
        raise UntrustedPickleError(f"{module}.{name}")


def load_array_pickle(path: str | os.PathLike) -> Any:
    """A pickle of builtins and numpy arrays (the CIFAR python format), loaded without running
    anything else: plain pickle.load would execute whatever a crafted file names."""
    try:
        with open(path, "rb") as f:
            return _ArraysOnlyUnpickler(f, encoding="bytes").load()
    except UntrustedPickleError as e:
        raise UntrustedPickleError(
            f"refusing to load '{path}': it asks to import {e}, which a CIFAR python batch never "
            "holds (a crafted or corrupted file). Replace it with the file from the official "
            "archive."
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise UntrustedPickleError(
            f"'{path}' is not a readable CIFAR python batch ({type(e).__name__}: {e}); it is "
            "truncated or corrupted: extract it again from the official archive"
        ) from None


def write_yaml(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(obj, sort_keys=False, allow_unicode=True))


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


# The checksum a producing stage records inside its .npz; consumers verify it on load.
NPZ_CHECKSUM = "__sha256__"


def _arrays_sha256(arrays: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.asarray(arrays[k])
        h.update(f"{k}:{a.dtype.str}:{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    digest = np.array(_arrays_sha256(arrays))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays, **{NPZ_CHECKSUM: digest})


def _tensors_sha256(state_dict: dict) -> str:
    return _arrays_sha256({k: v.detach().cpu().numpy() for k, v in state_dict.items()})


def save_checkpoint(path: str | os.PathLike, state_dict: dict, meta: dict) -> None:
    """Weights plus JSON-able meta and their checksum; loadable with weights_only=True."""
    import torch

    blob = {"state_dict": state_dict, "meta_json": json.dumps(meta)}
    with atomic_path(path) as tmp:
        torch.save({**blob, "sha256": _tensors_sha256(state_dict)}, tmp)


class CorruptArtifactError(DdflowError):
    """An intermediate ddflow wrote cannot be read back: names the file and how to remake it."""


@contextlib.contextmanager
def reading(path: str | os.PathLike):
    """The one place artifacts are read: any failure names the file and the fix."""
    try:
        yield
    except (CorruptArtifactError, FileNotFoundError):
        raise
    except Exception as e:
        what = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        raise CorruptArtifactError(_damaged(path, what)) from None


def load_npz(path: str | os.PathLike, *keys: str) -> dict[str, np.ndarray]:
    """The named arrays (all, when none are named) of an .npz that ddflow wrote, checked against
    the checksum recorded when it was written (so damage shows here, naming the file)."""
    with reading(path), np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    recorded = arrays.pop(NPZ_CHECKSUM, None)
    if recorded is not None and str(recorded) != _arrays_sha256(arrays):
        raise CorruptArtifactError(
            _damaged(path, "its content does not match the checksum recorded when it was written")
        )
    return {k: arrays[k] for k in keys or arrays}


def _damaged(path, what: str) -> str:
    return (
        f"'{path}' cannot be read ({what}): it is truncated or damaged. Delete it and rerun; "
        "Snakemake remakes it with the rule that wrote it"
    )


def load_checkpoint(path: str | os.PathLike) -> tuple[dict, dict]:
    import torch

    with reading(path):
        blob = torch.load(path, map_location="cpu", weights_only=True)
        state, meta = blob["state_dict"], json.loads(blob["meta_json"])
    if "sha256" in blob and blob["sha256"] != _tensors_sha256(state):
        raise CorruptArtifactError(_damaged(path, "its weights do not match their checksum"))
    return state, meta


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(device, seeds: dict | None = None) -> dict:
    import timm
    import torch
    import torchvision

    return {
        "ddflow": ddflow.__version__,
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
        "device": str(device),
        "host": platform.node(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "threads": torch.get_num_threads(),
        "seeds": seeds or {},
    }
