"""Content fingerprints of the user's folders that a rule reads (an external set, a data root).

A folder is Snakemake's input only by its own time stamp, so an image replaced inside a class
folder would rerun nothing. The rule that reads a folder gets its fingerprint (every file's
relative path, size and sha256) as a parameter, so a changed file reruns it (Snakemake's params
trigger), and the artifact it makes records the fingerprint. An artifact made before ddflow
recorded fingerprints keeps its results: the parameter is then one Snakemake does not record
(`content_param`). Hashes are cached under results/.cache/ by path with size, mtime, ctime and
inode, so a re-parse hashes only what changed. A link that leaves the folder is refused: its
target is not part of what the user handed over and may change or vanish without the folder
knowing.

Kept free of heavy imports: the workflow computes fingerprints while it parses.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ddflow.errors import DdflowError

CACHE = Path("results") / ".cache" / "fingerprints.json"


class LinkOutError(DdflowError):
    """A link inside a user's folder that points outside it."""


def folder_files(
    root: Path, suffixes: set[str] | None = None, links_out: bool = False
) -> list[Path]:
    """Every file under `root` (with one of `suffixes`, when given), sorted. A link that leaves
    `root` is refused, unless `links_out` (a data root: ImageNet copies are often links into a
    shared store, and their content is what is fingerprinted); a dead link is then left to the
    reader, which names it."""
    base = root.resolve()
    out, seen = [], set()

    def inside(p: Path) -> bool:
        return p == base or base in p.parents

    def walk(folder: Path) -> None:
        real = folder.resolve()
        if real in seen:
            return
        seen.add(real)
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            path = Path(entry.path)
            if entry.is_symlink():
                target = path.resolve()
                if links_out:
                    if not target.exists():
                        continue
                elif not inside(target):
                    raise LinkOutError(
                        f"'{path}' is a link to '{target}', outside '{root}': ddflow reads only "
                        "what lies in the folder (a link out is neither fingerprinted with it nor "
                        "sure to stay). Copy the file into the folder instead of linking it"
                    )
                if not target.exists():
                    raise LinkOutError(f"'{path}' is a link to nothing; fix or remove it")
            if entry.is_dir():
                walk(path)
            elif entry.is_file() and (suffixes is None or path.suffix.lower() in suffixes):
                out.append(path)

    walk(root)
    return out


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _load_cache() -> dict:
    try:
        return json.loads(CACHE.read_text())
    except (OSError, ValueError):
        return {}


def _save_cache(cache: dict) -> None:
    from ddflow.io import atomic_path

    try:
        with atomic_path(CACHE) as tmp:
            tmp.write_text(json.dumps(cache, separators=(",", ":")))
    except OSError:
        pass  # a read-only working directory only costs rehashing


def fingerprint(
    root: str | os.PathLike,
    suffixes: set[str] | None = None,
    with_files: bool = False,
    links_out: bool = False,
) -> dict | None:
    """{'sha256', 'files', 'bytes'} of a folder's content (and each file's entry with
    `with_files`); None when the folder does not exist (its stage then says so)."""
    root = Path(root)
    if not root.is_dir():
        return None
    cache, dirty = _load_cache(), False
    entries = []
    from ddflow.progress import counted

    files = folder_files(root, suffixes, links_out)
    for path in counted(files, f"fingerprint {root}", "file"):
        st, key = path.stat(), str(path.resolve())
        # ctime moves on every write and cannot be set back (a copy with cp -p keeps mtime)
        seen = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        if cache.get(key, [None])[:4] != seen:
            cache[key], dirty = [*seen, file_sha256(path)], True
        entries.append(
            {"file": path.relative_to(root).as_posix(), "size": st.st_size, "sha256": cache[key][4]}
        )
    if dirty:
        _save_cache(cache)
    h = hashlib.sha256()
    for e in entries:
        h.update(f"{e['file']}\0{e['size']}\0{e['sha256']}\n".encode())
    out = {
        "sha256": h.hexdigest(),
        "files": len(entries),
        "bytes": sum(e["size"] for e in entries),
    }
    return {**out, "entries": entries} if with_files else out


# Snakemake records only builtin parameter values (str, numbers, containers, None) and leaves any
# other out of its comparison; Ellipsis is such a value, and pickles by name into a job.
UNRECORDED = ...


def content_param(artifact: str, content: dict | None):
    """A rule's `content` parameter: the fingerprint of what it reads; UNRECORDED when it reads
    no folder of the user's, or when its artifact predates fingerprints (so that is not rerun)."""
    if content is None:
        return UNRECORDED
    if os.path.isfile(artifact) and "content" not in json.loads(Path(artifact).read_text()):
        return UNRECORDED
    return json.dumps(content, sort_keys=True)
