"""`ddflow rehearse`: a paper-scale config end to end on this machine before a GPU-hour is spent.

A rehearsal runs the real Snakefile on a stand-in that keeps every shape a code path depends on
and cuts only sizes:

- kept: the image size and channels, the split layout (`test/` or `val/`), `storage`, the file
  format (JPEG photos of mixed, non-square sizes where `image_size` resizes them; CIFAR's python
  pickles), every model's architecture, a loaded model's relation to the data's classes (as many
  outputs as classes, or ImageNet-1K's 1,000 outputs sliced by a `classes_file` of WNID-like
  names in output order), every method kind, label protocol, application and paper table;
- cut: classes (to 4, or a multiple of the incremental steps; `--classes N` keeps N), images a
  class, IPC (to 1 and 2: DELT's rounds need 2), iterations, epochs, seeds, batch sizes (rates
  follow them linearly), sweep variants (the first and last value of each swept key), label
  budgets (the first and as few more as set every budget key).

Every loaded model gets stand-in weights (random, written where the loaders look: a scratch
`TORCH_HOME` for torchvision's, checkpoint files in each format ddflow accepts for the others;
never the user's cache). The stand-in data is named `<name>-rehearsal` and the reports
`<name>.rehearsal`, and what was changed is printed and written beside the results
(REHEARSAL.md), so a rehearsal is never mistaken for a result.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import pickle
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from ddflow.config import (
    ConfigError,
    expand_sweeps,
    incremental_recipe,
    load_yaml,
    report_dir,
    validate_config,
)
from ddflow.data.catalog import FIXED_CLASSES
from ddflow.io import atomic_path
from ddflow.methods import KINDS

ROOT = Path(__file__).resolve().parents[2]
STANDIN_CLASSES = 4
TRAIN_PER_CLASS, TEST_PER_CLASS = 16, 2
INCREMENTAL_BATCH = 16  # the incremental students' cut batch (see standin_config)
# What a classes_file slices: every such config of the papers keeps a subset of ImageNet-1K's.
SLICED_OUTPUTS = 1000
NATIVE_SIZE = 64  # an imagefolder without image_size: Tiny-ImageNet's, the papers' only one
NATIVE = {"cifar10": 32, "cifar100": 32, "mnist-embedded": 28}
# Loaded models: (config key, how the block is found in a config).
LOADED = ("teacher", "teacher.init", "ranker", "student.relabel_model", "report.set_classifier",
          "pruning.network")  # fmt: skip
FORMATS = ("plain", "model", "state_dict_module")  # checkpoint layouts ddflow reads


def _get(cfg: dict, key: str):
    node = cfg
    for part in key.split("."):
        node = (node or {}).get(part) if isinstance(node, dict) else None
    return node


def _is_loaded(block) -> bool:
    return isinstance(block, dict) and bool(block.get("pretrained") or block.get("checkpoint"))


@dataclass
class Standin:
    """One config's rehearsal: its stand-in config, data and weights, and what was changed."""

    source: Path
    config: dict
    changes: list[str]
    data: dict  # what write_data makes
    weights: dict[str, dict] = field(default_factory=dict)  # key -> stand-in weights spec
    torch_home: Path | None = None


# ---- the stand-in config ----------------------------------------------------------------------


def _stand_in_ipcs(ipcs: list[int], kinds: set[str]) -> list[int]:
    """1 and 2 for several IPC values, one value otherwise (2 with DELT: its rounds need it)."""
    if len(ipcs) > 1:
        return [1, 2]
    return [2] if "delt" in kinds else [1]


def _classes_needed(raw: dict, keep: int | None) -> int:
    if keep:
        return keep
    steps = (raw.get("incremental") or {}).get("steps", 5) if "incremental" in raw else None
    if raw.get("incremental") is not None and steps:
        return steps * math.ceil(STANDIN_CLASSES / steps)
    return STANDIN_CLASSES


def _kind_cut(method: dict, ipc: int, classes: int) -> dict:
    """The keys the method's kind cuts, and their cut values."""
    kind = KINDS.get(method.get("kind"))
    return kind.rehearsal(validate_method_for(method), ipc, classes) if kind else {}


def _cut_method(method: dict, ipc: int, classes: int) -> dict:
    if method.get("kind") not in KINDS:
        return method
    out = {**method, **_kind_cut(method, ipc, classes)}
    if "seeds" in out:
        out["seeds"] = out["seeds"][:2]
    return out


def _images_needed(method: dict, ipc: int) -> int:
    kind = KINDS.get(method.get("kind"))
    return kind.images_needed(validate_method_for(method), ipc) if kind else 0


def validate_method_for(method: dict) -> dict:
    """The method with its preset's values filled in (a kind's cuts may depend on them)."""
    from ddflow.presets import RECOVER_PRESETS

    return {**RECOVER_PRESETS.get(method.get("preset"), {}), **method}


def _cut_values(base: dict, key: str, values: list, ipc: int, classes: int) -> list:
    """A swept key's values through the kind's own cut (a swept `iterations` is a size too),
    distinct values kept distinct (in their order) so every variant stays its own set."""
    cut = [_cut_method({**base, key: v}, ipc, classes).get(key, v) for v in values]
    if cut != values and len(set(cut)) < len(values):
        cut = [min(cut) + i for i in range(len(values))]
    return cut


def _sweep_variants(spec: dict) -> list[dict]:
    return [v for _, v in expand_sweeps({"methods": {}, "sweeps": {"s": spec}})["s"]]


def _cut_sweep(spec: dict, ipc: int, classes: int) -> dict:
    """The sweep's first and last values (or first two variants), cut. The variants share the
    base, so a size the kind's cut derives from a swept key (DELT's mosaic candidates from the
    factor) takes the largest any variant needs."""
    base = spec["base"]
    out = dict(spec)
    if "grid" in spec:
        out["grid"] = {k: _cut_values(base, k, list(dict.fromkeys([v[0], v[-1]])), ipc, classes)
                       for k, v in spec["grid"].items()}  # fmt: skip
    if "variants" in spec:
        out["variants"] = [{k: _cut_values(base, k, [v], ipc, classes)[0] for k, v in var.items()}
                           for var in spec["variants"][:2]]  # fmt: skip
    derived = _kind_cut(base, ipc, classes)
    for variant in _sweep_variants(out):
        for k, x in _kind_cut({**base, **variant}, ipc, classes).items():
            if k not in variant and isinstance(x, int | float) and x > derived.get(k, x):
                derived[k] = x
    out["base"] = {**_cut_method(base, ipc, classes), **derived}
    return out


def _remap_ipc(block: dict | None, mapping: dict[int, int]) -> dict | None:
    """An IPC-keyed block ({10: 100}) for the stand-in IPCs (each takes its original's value)."""
    if not isinstance(block, dict):
        return block
    return {str(s): block.get(str(o), block.get(o)) for s, o in mapping.items()}


def _budget_paths(budget: dict) -> set[str]:
    """What a label budget exercises: each key it sets (the value of a choice; keep by unit)."""
    unit = budget.get("keep_unit", "epoch")
    named = {"topk": "topk", "keep": f"keep by {unit}"}
    return {named.get(k, f"{k}={v}") for k, v in budget.items()}


def _cut_budgets(budgets):
    """The first budget and as few others as set every key (and choice) the list sets: each is
    a code path, their sizes are not (a rehearsal's students are per budget)."""
    if not isinstance(budgets, list):
        return budgets
    kept, seen = [0], _budget_paths(budgets[0])
    while gains := {i: _budget_paths(b) - seen for i, b in enumerate(budgets) if i not in kept}:
        best = max(gains, key=lambda i: (len(gains[i]), -i))
        if not gains[best]:
            break
        kept.append(best)
        seen |= gains[best]
    return [budgets[i] for i in sorted(kept)]


def _cut_topk(budgets, n_classes: int):
    """Top-k budgets below the stand-in class count, distinct ones kept distinct."""
    items = budgets if isinstance(budgets, list) else [budgets]
    ks = sorted({b["topk"] for b in items if isinstance(b, dict) and b.get("topk")})
    new = {k: min(i + 1, n_classes - 1) for i, k in enumerate(ks)}
    out = [{**b, "topk": new[b["topk"]]} if b.get("topk") else b for b in items]
    return out if isinstance(budgets, list) else out[0]


def standin_config(
    source: Path, scratch: Path, keep_classes: int | None = None, per_class: int | None = None
) -> Standin:
    """The rehearsal of one config (nothing written yet); `keep_classes` classes instead of the
    cut, `per_class` training images a class instead of TRAIN_PER_CLASS."""
    raw = load_yaml(str(source))
    original = validate_config(raw)  # a config that does not validate is not rehearsed
    cfg = copy.deepcopy(raw)
    ds = cfg["dataset"]
    if ds["source"] == "huggingface":
        raise ConfigError(
            f"{source}: dataset.source huggingface is not rehearsed (no stand-in for a hub id); "
            "save the dataset as an imagefolder to rehearse it"
        )
    kinds = {m["kind"] for m in original["methods"].values()}
    ipcs = sorted(original["ipc"])
    stand_ipcs = _stand_in_ipcs(ipcs, kinds)
    mapping = dict(zip(stand_ipcs, [ipcs[0], ipcs[-1]][-len(stand_ipcs) :]))
    top = max(stand_ipcs)
    fixed = FIXED_CLASSES.get(ds["source"])  # the source fixes its class count
    n_classes = fixed or _classes_needed(raw, keep_classes)

    # methods, sweeps
    cut = {n: _cut_method(m, top, n_classes) for n, m in (cfg.get("methods") or {}).items()}
    cfg["methods"] = cut
    cfg["sweeps"] = {n: _cut_sweep(s, top, n_classes) for n, s in (cfg.get("sweeps") or {}).items()}
    if not cfg["sweeps"]:
        cfg.pop("sweeps")
    # a mosaic takes each cell from a different real image: at factor 5 that is 50 a class
    needed = max([0] + [_images_needed(m, top) for m in cut.values()]
                 + [_images_needed({**s["base"], **v}, top) for s in cfg.get("sweeps", {}).values()
                    for v in _sweep_variants(s)])  # fmt: skip

    # data: where and what
    data = {
        "source": ds["source"],
        "classes": n_classes,
        "image_size": ds.get("image_size"),
        "native": None if ds.get("image_size") else NATIVE.get(ds["source"], NATIVE_SIZE),
        "split": "val" if "imagenet" in ds["name"].lower() else "test",
        "train": max(per_class or TRAIN_PER_CLASS, needed) + (1 if ds.get("val_per_class") else 0),
        "test": min(TEST_PER_CLASS, per_class or TEST_PER_CLASS),
    }
    data_id = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:8]
    root = scratch / "data" / f"{ds['name']}-{data_id}"
    ds["name"] = f"{ds['name']}-rehearsal"
    ds.pop("download", None)
    if ds["source"] == "mnist-embedded":
        ds.update(max_train_per_class=data["train"], max_test_per_class=data["test"])
    else:
        ds["root"] = str(root)
        ds.pop("max_train_per_class", None), ds.pop("max_test_per_class", None)
    if ds.get("val_per_class"):
        ds["val_per_class"] = 1
    cfg["ipc"] = stand_ipcs

    # teachers (the main one and the named ones) and every other loaded model
    teacher = cfg.setdefault("teacher", {})
    named = cfg.get("teachers") or {}
    squeezed = [(teacher, original["teacher"])] + [
        (b, original["teachers"][n]) for n, b in named.items()
    ]
    for block, validated in squeezed:
        if not _is_loaded(block):
            block["epochs"] = 2
            block["batch_size"] = min(validated["batch_size"], 8)
            # the linear scaling rule for the cut batch: a paper's rate on 8 images blows the
            # stand-in's weights up (eval logits ~1e4) and every logit-matching student with them
            block["lr"] = validated["lr"] * block["batch_size"] / validated["batch_size"]
            if block.get("warmup_epochs"):
                block["warmup_epochs"] = 1
    weights = {}
    for key in [*LOADED, *(f"teachers.{n}" for n in cfg.get("teachers") or {})]:
        block = _get(cfg, key)
        if key == "teacher.init" and isinstance(block, dict):
            block = {**block, "arch": teacher["arch"]}
        if not _is_loaded(block):
            continue
        sliced = bool(block.get("classes_file")) or key == "teacher.init"
        weights[key] = {
            "arch": block["arch"],
            "outputs": max(SLICED_OUTPUTS, n_classes) if sliced else n_classes,
            "pretrained": block.get("pretrained"),
            "checkpoint_key": block.get("checkpoint_key"),
            "classes_file": bool(block.get("classes_file")),
            "format": FORMATS[len(weights) % len(FORMATS)],
        }

    # students and applications
    st = cfg.setdefault("student", {})
    st.update(epochs=2, eval_every=1, relabel_epochs_per_shard=1)
    st["seeds"] = (st.get("seeds") or [0])[:1]
    bs = st.get("batch_size", 50)
    st["batch_size"] = (
        {k: min(v, 2) for k, v in _remap_ipc(bs, mapping).items()} if isinstance(bs, dict)
        else min(bs, 2)
    )  # fmt: skip
    # the student's rate follows its cut batch as the teachers' does (EDC's SGD 0.1 on batches of
    # 2 diverges under MSE on logits); per-IPC batches take the largest cut
    cut = min(st["batch_size"].values()) if isinstance(bs, dict) else st["batch_size"]
    full = max(bs.values()) if isinstance(bs, dict) else original["student"]["batch_size"]
    st["lr"] = original["student"]["lr"] * cut / full
    if st.get("label_budget"):
        st["label_budget"] = _cut_topk(_cut_budgets(st["label_budget"]), n_classes)
    if cfg.get("incremental") is not None:
        # its recipe's batch is cut too: SRe2L-CL's 256 takes a whole step's set in one batch,
        # 8 GB of 224-px activations in the figure-8 rehearsal (13 GB peak). Not to the student's
        # 2: a step's set is up to a few hundred images, and on a CPU batches of 2 take 4x longer
        inc = cfg["incremental"]
        recipe = incremental_recipe(original["student"], original["incremental"])
        full = recipe["batch_size"]
        full = max(full.values()) if isinstance(full, dict) else full
        inc["student"] = {**(inc.get("student") or {}), "epochs": 2,
                          "batch_size": min(full, INCREMENTAL_BATCH),
                          "lr": recipe["lr"] * min(full, INCREMENTAL_BATCH) / full}  # fmt: skip

    # report: named as a rehearsal, the paper's cells found through the IPC map
    rep = cfg.setdefault("report", {})
    rep["name"] = f"{rep.get('name') or 'default'}.rehearsal"
    paper = rep.get("paper")
    if paper:
        orig = paper.get("ipc") or {}
        paper["ipc"] = {str(s): int(orig.get(str(o), orig.get(o, o))) for s, o in mapping.items()}
        paper.setdefault("dataset", original["dataset"]["name"])
        paper["scale"] = "rehearsal"
        for t in paper.get("tables", []):
            if isinstance(t, dict) and t.get("ipc"):
                t["ipc"] = {str(s): t["ipc"].get(str(o), t["ipc"].get(o, o))
                            for s, o in mapping.items()}  # fmt: skip
    if rep.get("snapshots"):
        rep["snapshots"]["classes"] = sorted({0, min(1, n_classes - 1)})
        rep["snapshots"]["steps"] = [0, 2]
    # A stand-in job is short and its start (Snakemake, the torch imports) dominates: one thread a
    # job lets `--cores` run them side by side, as many as the jobs' mem_mb allows (run_one).
    cfg["runtime"] = {**(cfg.get("runtime") or {}), "device": "auto", "log_every": 1,
                      "progress_every_s": 10, "threads": 1}  # fmt: skip

    plan = Standin(source, cfg, [], {**data, "root": str(root), "id": data_id}, weights)
    plan.changes = _changes(original, cfg, plan)
    return plan


def _flatten(obj, prefix="") -> dict[str, object]:
    if isinstance(obj, dict) and obj:
        out = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj}


def _changes(original: dict, cfg: dict, plan: Standin) -> list[str]:
    """Every effective key the rehearsal changed, as `key: old -> new` (methods and sweep
    variants dropped or added by name)."""
    standin = validate_config(_with_dummy_weights(cfg, plan))
    drop = {"sweep_members", "synthesis_members"}
    a = {k: v for k, v in _flatten({k: v for k, v in original.items() if k not in drop}).items()}
    b = {k: v for k, v in _flatten({k: v for k, v in standin.items() if k not in drop}).items()}
    lines = []
    gone = sorted({k.split(".")[1] for k in a if k.startswith("methods.")}
                  - {k.split(".")[1] for k in b if k.startswith("methods.")})  # fmt: skip
    if gone:
        lines.append(f"methods not rehearsed (sweep variants cut): {', '.join(gone)}")
    for key in sorted(set(a) | set(b)):
        if key.startswith("methods.") and key.split(".")[1] in gone:
            continue
        if a.get(key, "(unset)") != b.get(key, "(unset)"):
            lines.append(f"{key}: {a.get(key, '(unset)')} -> {b.get(key, '(unset)')}")
    d = plan.data
    lines.append(
        f"data: stand-in {d['source']} of {d['classes']} classes, {d['train']} train and "
        f"{d['test']} {d['split']} images a class"
        + (f", JPEG photos of mixed sizes resized to {d['image_size']}" if d["image_size"] else "")
        + (f", {d['native']}x{d['native']} images" if d["native"] and d["source"] == "imagefolder"
           else "")
        + (f", at {d['root']}" if d["source"] != "mnist-embedded" else "")
    )  # fmt: skip
    for key, w in plan.weights.items():
        lines.append(
            f"{key}: stand-in weights for {w['arch']} (random, {w['outputs']} outputs"
            + (", sliced by a stand-in classes_file" if w["classes_file"] else "")
            + (f", torchvision's {w['pretrained']} file in a scratch TORCH_HOME" if w["pretrained"]
               else f", checkpoint layout '{w['format']}'") + ")"
        )  # fmt: skip
    return lines


def _with_dummy_weights(cfg: dict, plan: Standin) -> dict:
    """The stand-in config with its checkpoint paths pointing at the stand-in files."""
    cfg = copy.deepcopy(cfg)
    for key, w in plan.weights.items():
        block = _get(cfg, key)
        if not w["pretrained"]:
            block["checkpoint"] = str(_weights_dir(plan) / f"{key}.pth")
        if w["classes_file"]:
            block["classes_file"] = str(_weights_dir(plan) / f"{key}.classes.txt")
    return cfg


def _weights_dir(plan: Standin) -> Path:
    return Path(plan.data["root"]).parents[1] / "weights" / plan.source.stem


# ---- stand-in files -------------------------------------------------------------------------


def class_names(n: int) -> list[str]:
    """WNID-like names spread over ImageNet-1K's outputs, so a classes_file slices rows that are
    neither the first nor contiguous."""
    step = max(1, SLICED_OUTPUTS // n) if n < SLICED_OUTPUTS else 1
    return [f"n{i * step:08d}" for i in range(n)]


def write_data(data: dict) -> None:
    """The stand-in dataset at data['root'] (once: a finished one is reused)."""
    root = Path(data["root"])
    done = root / ".complete"
    if done.exists() or data["source"] == "mnist-embedded":
        return
    rng = np.random.default_rng(0)
    if data["source"] == "imagefolder":
        _write_imagefolder(root, data, rng)
    else:
        _write_cifar(root, data, rng)
    done.write_text("stand-in data of `ddflow rehearse`: not a dataset\n")


def _write_imagefolder(root: Path, data: dict, rng) -> None:
    from PIL import Image

    names = class_names(data["classes"])
    size = data["image_size"]
    for split, n in (("train", data["train"]), (data["split"], data["test"])):
        for name in names:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                if size:  # photos of mixed, non-square sizes: the resize + centre crop path
                    w, h = int(size * rng.uniform(1.05, 1.5)), int(size * rng.uniform(1.05, 1.5))
                else:
                    w = h = data["native"]
                # a colour and coarse noise (8-px blocks: fast to make and to encode)
                blocks = rng.integers(0, 64, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
                px = (
                    rng.integers(0, 192, 3, dtype=np.uint8)
                    + np.kron(blocks, np.ones((8, 8, 1), np.uint8))[:h, :w]
                )
                Image.fromarray(px).save(folder / f"{name}_{i}.JPEG", quality=85)


def _write_cifar(root: Path, data: dict, rng) -> None:
    """CIFAR's python layout: pickled dicts of bytes keys and numpy arrays (as the archives)."""
    n = data["classes"]
    train_n, test_n = data["train"], data["test"]

    def batch(per_class: int, key: str) -> dict:
        labels = np.repeat(np.arange(n), per_class)
        pixels = rng.integers(0, 255, (len(labels), 3072), dtype=np.uint8)
        return {b"data": pixels, key.encode(): labels.tolist()}

    if n == 10:
        base = root / "cifar-10-batches-py"
        base.mkdir(parents=True, exist_ok=True)
        names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck"]  # fmt: skip
        meta = {b"label_names": [x.encode() for x in names]}
        (base / "batches.meta").write_bytes(pickle.dumps(meta))
        train = batch(train_n, "labels")
        for i in range(5):  # the five training batches, the images split among them
            part = slice(i, None, 5)
            (base / f"data_batch_{i + 1}").write_bytes(pickle.dumps(
                {b"data": train[b"data"][part], b"labels": train[b"labels"][part]}))  # fmt: skip
        (base / "test_batch").write_bytes(pickle.dumps(batch(test_n, "labels")))
    else:
        base = root / "cifar-100-python"
        base.mkdir(parents=True, exist_ok=True)
        names = [f"class{i:03d}".encode() for i in range(n)]
        (base / "meta").write_bytes(pickle.dumps({b"fine_label_names": names}))
        (base / "train").write_bytes(pickle.dumps(batch(train_n, "fine_labels")))
        (base / "test").write_bytes(pickle.dumps(batch(test_n, "fine_labels")))


def write_weights(plan: Standin) -> dict:
    """Stand-in weights for every loaded model; returns the config pointing at them."""
    import torch

    from ddflow.models.registry import build_model

    cfg = _with_dummy_weights(plan.config, plan)
    c = 1 if plan.data["source"] == "mnist-embedded" else 3
    size = plan.data["image_size"] or plan.data["native"]
    wants = {}
    for key, w in plan.weights.items():
        if w["pretrained"]:
            from torchvision.models import get_model_weights

            url = get_model_weights(w["arch"].split(":", 1)[1])[w["pretrained"]].url
            wants[Path(url).name] = (key, w)
    home = Path(plan.data["root"]).parents[1] / "torch" / hashlib.sha256(json.dumps(
        sorted((name, w["arch"], w["outputs"]) for name, (_, w) in wants.items())
    ).encode()).hexdigest()[:8]  # fmt: skip
    plan.torch_home = home
    torch.manual_seed(0)
    for key, w in plan.weights.items():
        block = _get(cfg, key)
        if w["pretrained"]:
            name = next(n for n, (k, _) in wants.items() if k == key)
            target = home / "hub" / "checkpoints" / name
        else:
            target = Path(block["checkpoint"])
        if w["classes_file"]:  # every output's name, in order; the data's classes among them
            names = "".join(f"n{i:08d}\n" for i in range(w["outputs"]))
            Path(block["classes_file"]).parent.mkdir(parents=True, exist_ok=True)
            Path(block["classes_file"]).write_text(names)
        if target.exists():
            continue
        state = build_model(w["arch"], w["outputs"], c, (size, size)).state_dict()
        blob = {
            "plain": state,
            "model": {"model": state},
            "state_dict_module": {"state_dict": {f"module.{k}": v for k, v in state.items()}},
        }[w["format"] if not w["pretrained"] else "plain"]
        if w["checkpoint_key"]:
            blob = {w["checkpoint_key"]: state}
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        torch.save(blob, tmp)
        os.replace(tmp, target)
    return cfg


# ---- running and reporting --------------------------------------------------------------------

_FINISHED = re.compile(r"rule (\w+) finished in ([\d.]+) s; peak host memory (\d+) MB"
                       r"(?:; peak device memory (\d+) MB)?")  # fmt: skip


@dataclass
class Outcome:
    config: Path
    standin: Path
    passed: bool
    wall_s: float
    failed: list[str]
    peaks: dict[str, tuple[int, int | None, int]]  # rule -> (host MB, device MB, jobs)
    tables: list[str]
    changes: list[str]
    log: Path


def _job_logs(output: str, workdir: Path) -> list[tuple[str, Path]]:
    from ddflow.status import parse_log

    run = parse_log(output)
    return [(j.rule, workdir / j.log) for j in run.started.values() if j.log]


def _peaks(jobs: list[tuple[str, Path]]) -> dict:
    out: dict[str, list] = {}
    for rule, log in jobs:
        text = log.read_text(errors="replace") if log.is_file() else ""
        for m in _FINISHED.finditer(text):
            host, dev = int(m[3]), int(m[4]) if m[4] else None
            cur = out.setdefault(rule, [0, None, 0])
            cur[0] = max(cur[0], host)
            cur[1] = dev if cur[1] is None else max(cur[1], dev or 0)
            cur[2] += 1
    return {k: tuple(v) for k, v in sorted(out.items())}


def _memory_bound(extra: list[str]) -> list[str]:
    """Jobs side by side only as far as this host's memory holds their mem_mb, unless the caller
    sets the resources (or a profile does)."""
    if {"--resources", "--res", "--profile"} & {a.split("=")[0] for a in extra}:
        return []
    total_mb = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    return ["--resources", f"mem_mb={total_mb}"]


def run_one(plan: Standin, workdir: Path, cores: str, extra: list[str]) -> Outcome:
    write_data(plan.data)
    cfg = write_weights(plan)
    path = workdir / "configs" / f"{plan.source.stem}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# ddflow rehearse: a stand-in of " + str(plan.source) + ", not an experiment\n"
    path.write_text(header + "".join(f"#   {c}\n" for c in plan.changes)
                    + yaml.safe_dump(cfg, sort_keys=False))  # fmt: skip
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory",
           str(workdir), "--configfile", str(path), "--cores", cores, "--keep-going",
           *_memory_bound(extra), *extra]  # fmt: skip
    env = {**os.environ, "TORCH_HOME": str(plan.torch_home)}
    start = time.time()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.time() - start
    log = workdir / "logs" / f"{plan.source.stem}.snakemake.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(out.stdout + out.stderr)
    failed = _failures(out, workdir, cut=bool(extra))
    valid = validate_config(cfg)
    rdir = workdir / report_dir(valid)
    tables = sorted(str(p.relative_to(workdir)) for p in [
        *rdir.glob("tables/summary.md"), *rdir.glob("paper/*.md")])  # fmt: skip
    outcome = Outcome(plan.source, path, out.returncode == 0 and not failed, wall, failed,
                      _peaks(_job_logs(out.stdout + out.stderr, workdir)), tables, plan.changes,
                      log)  # fmt: skip
    if rdir.is_dir():
        _write_report(rdir / "REHEARSAL.md", [outcome], workdir)
    return outcome


def _write_report(path: Path, outcomes: list[Outcome], workdir: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(render(outcomes, workdir))


_STEPS = re.compile(r"^(\d+) of (\d+) steps \(\d+%\) done", re.M)


def _failures(out: subprocess.CompletedProcess, workdir: Path, cut: bool = False) -> list[str]:
    """'rule: its one-line error (log)' for each failed job, or Snakemake's own error; a run
    that ended before its last job with none failed too, unless arguments (`cut`) cut its DAG."""
    from ddflow.status import last_error_line, parse_log

    text = out.stdout + out.stderr
    run = parse_log(text)
    lines = [
        f"{j.rule}: {(last_error_line(workdir / j.log) if j.log else '') or 'see its log'}"
        + (f" (log: {j.log})" if j.log else "")
        for j in run.failed
    ]
    if out.returncode != 0 and not lines:
        errors = [x.strip() for x in text.splitlines() if "Error" in x or "error:" in x]
        lines.append((errors or text.strip().splitlines()[-1:] or ["snakemake failed"])[0])
    steps = _STEPS.findall(text)
    if not lines and not cut and steps and int(steps[-1][0]) < int(steps[-1][1]):
        lines.append(f"Snakemake ended after {steps[-1][0]} of {steps[-1][1]} jobs with none "
                     "failed; its output says why")  # fmt: skip
    return lines


def render(outcomes: list[Outcome], workdir: Path) -> str:
    lines = [
        "# Rehearsal (ddflow rehearse): stand-in data and weights, not results",
        "",
        "Each config below ran end to end on this machine on a stand-in that keeps the shapes "
        "its code paths depend on and cuts only sizes (see src/ddflow/rehearse.py); its numbers "
        "mean nothing. What each rehearsal changed is listed under it.",
        "",
        "| config | result | wall s | failing rule: error |",
        "|---|---|---|---|",
    ]
    for o in outcomes:
        lines.append(f"| `{o.config}` | {'passed' if o.passed else 'FAILED'} | {o.wall_s:.0f} | "
                     f"{'; '.join(o.failed).replace('|', '/')} |")  # fmt: skip
    for o in outcomes:
        lines += ["", f"## `{o.config}`", "", f"Stand-in config: `{o.standin}`; Snakemake's "
                  f"output: `{o.log}`.", "", "| rule | jobs | peak host MB | peak device MB |",
                  "|---|---|---|---|"]  # fmt: skip
        lines += [f"| {r} | {n} | {h} | {'' if d is None else d} |"
                  for r, (h, d, n) in o.peaks.items()]  # fmt: skip
        lines += ["", "Rendered: " + (", ".join(f"`{t}`" for t in o.tables) or "nothing"), "",
                  "Changed:", "", *[f"- {c}" for c in o.changes]]  # fmt: skip
    return "\n".join(lines) + "\n"


def rehearse(
    configs: list[str | Path],
    workdir: str | Path = "results/rehearsals",
    cores: str = "all",
    classes: int | None = None,
    snakemake_args: list[str] | None = None,
    per_class: int | None = None,
) -> list[Outcome]:
    """Rehearse each config in one scratch working directory (stand-ins with equal stages share
    them), print each outcome as it ends, and write REHEARSAL.md there. The report is rewritten
    after each config, so a rehearsal of many configs that is stopped keeps every one that ended."""
    workdir = Path(workdir).resolve()
    plans = [standin_config(Path(c), workdir, classes, per_class) for c in configs]  # all first
    outcomes = []
    for plan in plans:
        print(f"ddflow rehearse: {plan.source} ...", flush=True)
        o = run_one(plan, workdir, cores, list(snakemake_args or []))
        outcomes.append(o)
        _write_report(workdir / "REHEARSAL.md", outcomes, workdir)
        peak = max((h for h, _, _ in o.peaks.values()), default=0)
        print(f"ddflow rehearse: {o.config}: {'passed' if o.passed else 'FAILED'} in "
              f"{o.wall_s:.0f} s (peak host memory {peak} MB)"
              + "".join(f"\n  {f}" for f in o.failed), flush=True)  # fmt: skip
    print(f"ddflow rehearse: {sum(o.passed for o in outcomes)} of {len(outcomes)} passed; "
          f"report: {workdir / 'REHEARSAL.md'}", flush=True)  # fmt: skip
    return outcomes
