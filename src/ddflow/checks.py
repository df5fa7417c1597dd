"""The checks of an experiment against its data, before any job runs: one function that the
workflow (while it parses, so `snakemake -n` too), `ddflow check`/`plan`/`run` and `ddflow.api`
all call, so no entry point finds less than another.

`validate_config` checks the config by itself; this checks it against what it will read: the
class count and images per class of the data, the user's folders. Kept free of heavy imports
(the workflow parses it for every job).
"""

from __future__ import annotations

from pathlib import Path

from ddflow.config import ConfigError, batch_size_for, check_incremental_steps
from ddflow.data.catalog import check_ipc_fits, class_names, num_classes


def check_experiment(cfg: dict, list_folders: bool = False) -> int:
    """Raise one error naming the key (or file) and the fix; return the data's class count.
    `list_folders` also counts each class folder's images (a directory scan per class)."""
    ds = cfg["dataset"]
    n = num_classes(ds)
    check_ipc_fits(ds, sorted(cfg["ipc"]), list_folders)
    check_incremental_steps(cfg["incremental"], n)
    _check_budgets(cfg["student"], sorted(cfg["ipc"]), n)
    snaps = cfg["report"]["snapshots"]
    if snaps and max(snaps["classes"]) >= n:
        raise ConfigError(
            f"config key 'report.snapshots.classes': class {max(snaps['classes'])} does not "
            f"exist; the data has {n} classes (0 to {n - 1})"
        )
    names = None
    for name, method in cfg["methods"].items():
        if method["kind"] == "external":
            names = names if names is not None else class_names(ds)
            check_external(f"methods.{name}", method, names, n, max(cfg["ipc"]))
    return n


def _check_budgets(student: dict, ipcs: list[int], n: int) -> None:
    budgets = student["label_budget"]
    for i, b in enumerate(budgets):
        where = "student.label_budget" + (f".{i}" if len(budgets) > 1 else "")
        if b["keep_unit"] == "batch" and b["pool_skip_last"]:
            one = [ipc for ipc in ipcs if batch_size_for(student["batch_size"], ipc) >= n * ipc]
            if one:
                raise ConfigError(
                    f"config key '{where}.pool_skip_last': at IPC {one[0]} a student epoch is one "
                    "batch, the last of its epoch, which the pool never draws; set "
                    "pool_skip_last: false or a smaller student.batch_size"
                )
        if b.get("topk") and b["topk"] >= n:
            raise ConfigError(
                f"config key '{where}.topk': {b['topk']} of {n} classes keeps every logit, so "
                f"it prunes nothing; choose a top-k below {n}, or remove topk"
            )


def check_external(where: str, method: dict, classes: list[str] | None, n: int, ipc: int) -> None:
    """Someone's set folder: class folders for every class, enough images in each, no link
    that leaves it (data/fingerprint.py)."""
    from ddflow.data.datasets import IMAGE_EXTS, DataError, check_class_map
    from ddflow.data.fingerprint import folder_files

    root = Path(method["path"])
    files = folder_files(root, IMAGE_EXTS)  # refuses a link out of the folder
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    if method["class_folders"] == "names" and classes is not None:
        check_class_map(classes, found, f"class folders of the external set '{root}' ({where})")
    elif len(found) != n:
        raise DataError(
            f"external set '{root}' ({where}) has {len(found)} class folders, the data has {n} "
            "classes: with class_folders: index, folder i (sorted) is class i"
        )
    per_folder = {name: 0 for name in found}
    for f in files:
        rel = f.relative_to(root).parts
        if len(rel) == 2:
            per_folder[rel[0]] += 1
    short = {k: v for k, v in per_folder.items() if v < ipc}
    if short:
        name = min(short, key=short.get)
        raise DataError(
            f"external set folder '{root / name}' ({where}) holds {short[name]} images, fewer "
            f"than IPC {ipc}; lower ipc or add images"
        )
