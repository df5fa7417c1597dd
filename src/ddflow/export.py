"""`ddflow export`: a distilled set in the Hugging Face `datasets` format, with what reuses it.

The folder holds the set (`dataset/`, `datasets.load_from_disk`; image, label with the class
names, ipc_index), its manifest, the stored labels if a relabel ran (every label budget's files,
or the one `--labels` names, each at its size on disk), the teacher as safetensors
with its metadata, the experiment's config, and a dataset card (README.md) with the method, the
teacher and its accuracy, the IPC, the stage ids, the accuracy table and the command that made
it. `--push-to-hub` uploads the folder as a dataset repository.
"""

from __future__ import annotations

import glob
import json
import shutil
from pathlib import Path

import yaml

from ddflow import __version__, io
from ddflow.data.hub import datasets_module
from ddflow.distilled import read_distilled


def _lineage(set_dir: Path, manifest: dict) -> dict:
    """Where the set's results live: teacher checkpoint, students, stored labels, experiment."""
    ds_root = set_dir.parents[2]  # results/<dataset>
    name = f"{manifest['method']}-{manifest['method_id']}"
    ipc = set_dir.name
    stage = manifest.get("stage", {})
    teacher_id = stage.get("teacher")
    if teacher_id is None and stage.get("features"):
        found = glob.glob(str(ds_root / "features" / f"teacher-*-{stage['features']}.npz"))
        teacher_id = Path(found[0]).stem.split("-")[1] if found else None
    teachers = glob.glob(str(ds_root / "teacher" / f"*-{teacher_id}" / "teacher.pt"))
    experiments = [
        p for p in glob.glob(str(ds_root / "**" / "experiment.yaml"), recursive=True)
        if yaml.safe_load(Path(p).read_text())["stage_ids"]["methods"].get(manifest["method"])
        == manifest["method_id"]
    ]  # fmt: skip
    return {
        "teacher": Path(teachers[0]) if teacher_id and teachers else None,
        "students": sorted(glob.glob(str(ds_root / "students" / name / ipc / "*" / "seed*.json"))),
        "labels": _label_sets(ds_root / "labels" / name / ipc),
        "experiment": Path(sorted(experiments)[0]) if experiments else None,
    }


def _label_sets(folder: Path) -> dict[str, dict]:
    """Each stored-label folder of the set (a relabel's own files, each budget's), by its path
    under labels/: its budget's protocol name and its files, read from the files' identity."""
    import numpy as np

    from ddflow.config import budget_name
    from ddflow.labels.budget import LabelBudget

    out = {}
    for d in sorted({Path(p).parent for p in glob.glob(str(folder / "relabel-*" / "**" / "*.npz"),
                                                         recursive=True)}):  # fmt: skip
        files = sorted(d.glob("epochs*.npz"))
        with np.load(files[0]) as z:
            identity = json.loads(str(z["identity_json"])) if "identity_json" in z else {}
        budget = LabelBudget.from_config(identity.get("budget") or {})
        out[str(d.relative_to(folder))] = {
            "protocol": budget_name(budget.slice()), "budget": budget.slice(),
            "files": [str(f) for f in files], "bytes": sum(f.stat().st_size for f in files),
        }  # fmt: skip
    return out


def _accuracy(students: list[str]) -> str:
    if not students:
        return "No student has been trained on this set yet."
    from ddflow.report.tables import summarize

    t = summarize(students)
    rows = [
        f"| {r.protocol} | {r.student} | {r.sets} x {r.seeds} | {r.top1_last_mean:.2f} ± "
        f"{r.top1_last_std:.2f} | {r.top1_last_ci95_low:.2f} to {r.top1_last_ci95_high:.2f} |"
        for r in t.itertuples()
    ]
    head = "| label protocol | student | sets x seeds | top-1 last epoch | 95% CI |"
    return "\n".join([head, "|---|---|---|---|---|", *rows])


def _label_lines(lineage: dict) -> str:
    if not lineage["labels"]:
        return "none"
    return "".join(
        f"\n  - `labels/{d}/`: protocol `{s['protocol']}`, {len(s['files'])} file(s), "
        f"{s['bytes']:,} bytes" for d, s in lineage["labels"].items()
    )  # fmt: skip


def _card(manifest: dict, meta: dict, lineage: dict, teacher_meta: dict | None) -> str:
    kind = manifest["stage"]["method"]["kind"]
    header = yaml.safe_dump(
        {
            "task_categories": ["image-classification"],
            "tags": ["dataset-distillation", "ddflow", kind],
            "size_categories": ["n<1K" if manifest["n_images"] < 1000 else "1K<n<10K"],
        },
        sort_keys=False,
    )
    teacher = (
        f"{teacher_meta['arch']}, test top-1 {teacher_meta['test_top1']:.2f}% on the real test "
        f"split (`teacher.safetensors`, `teacher.json`)"
        if teacher_meta
        else "none: this set was built without a teacher"
    )
    experiment = lineage["experiment"]
    command = (
        "ddflow run config.yaml  # the experiment's effective config, beside this card"
        if experiment
        else "(no experiment record found beside the set)"
    )
    return f"""---
{header}---

# {manifest["method"]} ({kind}): {manifest["dataset"]}, {manifest["ipc"]} images per class

A distilled set made with ddflow {__version__}: {manifest["n_images"]}
images of {len(manifest["classes"])} classes ({", ".join(manifest["classes"][:10])}
{"..." if len(manifest["classes"]) > 10 else ""}), from `{meta.get("source", "?")}`.

- Method: `{kind}`, configured as
  `{json.dumps(manifest["stage"]["method"], sort_keys=True)}`
- Stage ids: method `{manifest["method_id"]}`; upstream
  `{json.dumps({k: v for k, v in manifest["stage"].items() if k != "method"})}`
- Teacher: {teacher}
- Stored labels (FKD relabel, by label budget; `labels/index.json`): {_label_lines(lineage)}

## Accuracy

Students trained from scratch on this set, top-1 (%) on the real test split at the last epoch:

{_accuracy(lineage["students"])}

## Load

```python
from datasets import load_from_disk
ds = load_from_disk("dataset")  # columns: image, label (class names), ipc_index
```

## Reproduce

```bash
{command}
```
"""


def check_target(src: Path, out: Path, overwrite: bool) -> None:
    """OUT is the user's path: never the set itself or around it, never a folder of theirs."""
    a, b = src.resolve(), out.resolve()
    if a == b or b in a.parents or a in b.parents:
        where = "is" if a == b else "contains" if b in a.parents else "lies inside"
        raise io.NotOursError(
            f"output '{out}' {where} the set '{src}': writing there would replace the set's own "
            "files. Choose a folder outside it"
        )
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        if not overwrite:
            raise io.NotOursError(
                f"output '{out}' already exists and is not empty; choose a new folder, or pass "
                "--overwrite to replace an earlier ddflow export there"
            )
        if not (out.is_dir() and io.made_by_ddflow(out)):
            raise io.NotOursError(
                f"output '{out}' was not written by ddflow export (no {io.MADE_BY_DDFLOW} "
                "marker), so --overwrite leaves it alone: ddflow never deletes files it did not "
                "make. Move them away or choose another folder"
            )


def export(
    set_dir: str,
    out_dir: str,
    push_to_hub: str | None = None,
    overwrite: bool = False,
    labels: str | None = None,
) -> Path:
    """Write the export folder (atomically) and, with a repository id, upload it. `labels`:
    ship only the stored labels of that protocol (a budget's name, e.g. stored-batches0.025),
    or none."""  # fmt: skip
    src, out, wanted = Path(set_dir), Path(out_dir), labels
    if not (src / "manifest.json").is_file():
        raise io.NotOursError(
            f"'{src}' is not a distilled set (no manifest.json): give a set's folder, "
            "results/<dataset>/distilled/<method>-<id>/ipc<N>"
        )
    check_target(src, out, overwrite)
    datasets = datasets_module("ddflow export")
    manifest = io.read_json(src / "manifest.json")
    images, labels, manifest = read_distilled(
        src / "images", src / "manifest.json", manifest["classes"]
    )
    lineage = _lineage(src, manifest)
    if wanted is not None:
        found = {s["protocol"] for s in lineage["labels"].values()}
        if wanted != "none" and wanted not in found:
            raise io.NotOursError(
                f"--labels {wanted}: the set '{src}' has no stored labels of that protocol; it "
                f"has {sorted(found) or 'none'} (or pass --labels none)"
            )
        lineage["labels"] = {d: s for d, s in lineage["labels"].items() if s["protocol"] == wanted}
    data_meta = {}
    metas = glob.glob(str(src.parents[2] / "data-*" / "meta.json"))
    for m in metas:
        if io.read_json(m)["classes"] == manifest["classes"]:
            data_meta = io.read_json(m)
            break
    with io.atomic_path(out, is_dir=True) as tmp:
        features = datasets.Features(
            {
                "image": datasets.Image(),
                "label": datasets.ClassLabel(names=manifest["classes"]),
                "ipc_index": datasets.Value("int32"),
            }
        )
        rows = {
            "image": [img.squeeze(-1) if img.shape[-1] == 1 else img for img in images],
            "label": labels.tolist(),
            "ipc_index": [f["ipc_index"] for f in manifest["files"]],
        }
        datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(tmp / "dataset"))
        shutil.copy(src / "manifest.json", tmp / "manifest.json")
        for d, s in lineage["labels"].items():
            (tmp / "labels" / d).mkdir(parents=True)
            for p in s["files"]:
                shutil.copy(p, tmp / "labels" / d / Path(p).name)
        if lineage["labels"]:
            index = {
                d: {k: v for k, v in s.items() if k != "files"}
                | {"files": [Path(p).name for p in s["files"]]}
                for d, s in lineage["labels"].items()
            }
            io.write_json(tmp / "labels" / "index.json", index)
        teacher_meta = None
        if lineage["teacher"]:
            from safetensors.torch import save_file

            state, teacher_meta = io.load_checkpoint(lineage["teacher"])
            save_file(
                {k: v.contiguous() for k, v in state.items()}, str(tmp / "teacher.safetensors")
            )
            io.write_json(tmp / "teacher.json", teacher_meta)
        if lineage["experiment"]:
            record = yaml.safe_load(lineage["experiment"].read_text())
            (tmp / "config.yaml").write_text(yaml.safe_dump(record["config"], sort_keys=False))
        (tmp / "README.md").write_text(_card(manifest, data_meta, lineage, teacher_meta))
    if push_to_hub:
        from huggingface_hub import HfApi

        api = HfApi()
        api.create_repo(push_to_hub, repo_type="dataset", exist_ok=True)
        api.upload_folder(
            folder_path=str(out), repo_id=push_to_hub, repo_type="dataset",
            ignore_patterns=[io.MADE_BY_DDFLOW],
        )  # fmt: skip
    return out
