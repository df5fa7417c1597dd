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

# The file ddflow leaves in every folder it writes whole: the only folders it ever replaces.
MADE_BY_DDFLOW = ".ddflow-made"


class NotOursError(DdflowError):
    """A path ddflow would replace holds something ddflow did not write: it is left alone."""


def made_by_ddflow(folder: Path) -> bool:
    return (folder / MADE_BY_DDFLOW).is_file()


def check_replaceable(path: Path) -> None:
    """A folder ddflow may put a new one in place of: absent, empty, or one ddflow wrote (its
    marker). Anything else is the user's, and ddflow never deletes it."""
    if path.is_symlink() or path.is_file():
        raise NotOursError(
            f"'{path}' exists and is not a folder ddflow wrote; ddflow never replaces it. "
            "Move it away or choose another path"
        )
    if path.is_dir() and any(path.iterdir()) and not made_by_ddflow(path):
        raise NotOursError(
            f"'{path}' is a folder with files ddflow did not write (no {MADE_BY_DDFLOW} marker); "
            "ddflow never deletes them. Move them away or choose another path"
        )


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, is_dir: bool = False):
    """Yield a temp path next to `path`; move it into place only if the block succeeds.

    A folder gets ddflow's marker, and an existing folder at `path` is replaced only when
    check_replaceable allows (checked before the block runs, so no work is wasted)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        check_replaceable(path)
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
        if is_dir:
            (tmp / MADE_BY_DDFLOW).write_text(f"written by ddflow {ddflow.__version__}\n")
            if path.exists():
                check_replaceable(path)  # again: the user may have put files there meanwhile
                old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old"))
                os.replace(path, old / "x")  # out of the way first, so a kill loses nothing
                os.replace(tmp, path)
                shutil.rmtree(old)
                return
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


def _refuse_non_finite(path, arrays: dict) -> None:
    for k, a in arrays.items():
        if bad := _non_finite(a):
            raise ValueError(f"refusing to write {bad} non-finite value(s) in '{k}' to '{path}'")


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    _refuse_non_finite(path, arrays)
    digest = np.array(_arrays_sha256(arrays))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays, **{NPZ_CHECKSUM: digest})


def tensors_sha256(state_dict: dict) -> str:
    return _arrays_sha256({k: v.detach().cpu().numpy() for k, v in state_dict.items()})


def save_checkpoint(path: str | os.PathLike, state_dict: dict, meta: dict) -> None:
    """Weights plus JSON-able meta and their checksum; loadable with weights_only=True."""
    import torch

    _refuse_non_finite(path, state_dict)
    blob = {"state_dict": state_dict, "meta_json": json.dumps(meta)}
    with atomic_path(path) as tmp:
        torch.save({**blob, "sha256": tensors_sha256(state_dict)}, tmp)


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
    if recorded is None:
        raise CorruptArtifactError(
            f"'{path}' carries no checksum, so ddflow cannot tell it is the file it wrote (an "
            "older ddflow's, or a file made elsewhere). Delete it and rerun; Snakemake remakes "
            "it with the rule that wrote it"
        )
    if str(recorded) != _arrays_sha256(arrays):
        raise CorruptArtifactError(
            _damaged(path, "its content does not match the checksum recorded when it was written")
        )
    out = {k: arrays[k] for k in keys or arrays}
    check_finite(path, out)
    return out


def _non_finite(a) -> int:
    """Count of NaN/inf entries of a numpy array or torch tensor (0 for integer data)."""
    if isinstance(a, np.ndarray):
        return int(a.size - np.isfinite(a).sum()) if a.dtype.kind in "fc" else 0
    return int((~a.isfinite()).sum()) if a.is_floating_point() else 0


def check_finite(path, arrays: dict) -> None:
    """Nothing non-finite is ever used: a NaN read back is the file's fault, named as such."""
    for k, a in arrays.items():
        if bad := _non_finite(a):
            raise CorruptArtifactError(
                f"'{path}' holds {bad} non-finite value(s) in '{k}': the file is damaged or was "
                "written by a diverged job. Delete it and rerun; Snakemake remakes it with the "
                "rule that wrote it"
            )


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
    if "sha256" not in blob:
        raise CorruptArtifactError(
            f"'{path}' carries no checksum of its weights (an older ddflow's, or a file made "
            "elsewhere: a model of your own goes in teacher.checkpoint). Delete it and rerun; "
            "Snakemake remakes it with the rule that wrote it"
        )
    if blob["sha256"] != tensors_sha256(state):
        raise CorruptArtifactError(_damaged(path, "its weights do not match their checksum"))
    check_finite(path, state)
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


def _torchvision_version() -> str:
    """torchvision's own version string, its CUDA tag included (the package metadata drops it),
    read from its ``version.py`` without importing it: the import loads ``torch._dynamo`` through
    ``torchvision.ops``, about 2 s a job here, and most jobs never build a torchvision model."""
    import ast
    import importlib.util
    from importlib.metadata import version

    spec = importlib.util.find_spec("torchvision")  # a top-level spec imports nothing
    for root in (spec.submodule_search_locations or []) if spec else []:
        with contextlib.suppress(OSError, SyntaxError):
            for node in ast.parse((Path(root) / "version.py").read_text()).body:
                if (
                    isinstance(node, ast.Assign)
                    and isinstance(node.value, ast.Constant)
                    and any(getattr(t, "id", None) == "__version__" for t in node.targets)
                ):
                    return str(node.value.value)
    return version("torchvision")


def provenance(device, seeds: dict | None = None) -> dict:
    """What produced an artifact. timm's version comes from its package metadata and
    torchvision's from its version file: importing either costs every job 1.5-2 s here, and
    most jobs never build their models."""
    from importlib.metadata import version

    import torch

    return {
        "ddflow": ddflow.__version__,
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": _torchvision_version(),
        "timm": version("timm"),
        "device": str(device),
        "host": platform.node(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "threads": torch.get_num_threads(),
        "seeds": seeds or {},
    }
