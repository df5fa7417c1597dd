"""Stored soft labels (FKD, SRe2L's relabel; reference-algorithms.md §1.5) at a label budget.

Relabel draws each epoch's views (batch order, crop boxes, flips, CutMix box and permutation),
renders them and stores them with the teacher's logits, so a student replays the labels and never
runs the teacher. Unlike the authors' loader, replay reads the stored batch order, so it needs no
patched PyTorch sampler.

A label file is a list of batch records (one layout for every budget): per stored batch its
epoch, position and length; per image its row, crop box and flip; per batch its CutMix box and
permutation; and the logits as the budget (labels/budget.py) encodes them. The relabel stage's own
files hold every batch in fp16; a budget's files hold only its kept batches, encoded, made from
those or by labelling only the kept batches, with the same bytes either way.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from ddflow.data.pixels import Normalizer
from ddflow.data.prefetch import host_batch, prefetch
from ddflow.errors import DdflowError
from ddflow.io import read_json
from ddflow.labels.budget import LOGIT_KEYS, LabelBudget, batches_per_epoch
from ddflow.progress import Tracker
from ddflow.train.views import View, draw_epoch, render


class LabelError(DdflowError):
    """Stored labels that do not fit the student that reads them."""


def label_identity(
    manifest_path: str, labeler: dict, views: dict, seed: int, num_classes: int, budget: dict
) -> dict:
    """What a label file was made for: the set (its manifest's bytes), the model that labelled
    it, the recipe of the views, the class count and the budget it is stored at. Relabel
    records it; the student checks it."""
    manifest = read_json(manifest_path)
    return {
        "set": {
            "manifest_sha256": hashlib.sha256(Path(manifest_path).read_bytes()).hexdigest(),
            "method": f"{manifest.get('method')}-{manifest.get('method_id')}",
            "ipc": manifest.get("ipc"),
        },
        "labeler": labeler,
        "recipe": {"views": views, "seed": seed},
        "num_classes": num_classes,
        "budget": budget,
    }


def check_identity(path: str, recorded: dict | None, expected: dict) -> None:
    """The student refuses labels made for another set, labeler, recipe or class count."""
    if recorded is None:
        raise LabelError(
            f"stored labels '{path}' record no identity (set, teacher, recipe), so they cannot "
            "be matched to the set they label; delete the file and rerun, which relabels it"
        )
    names = {"set": "set", "labeler": "labeled by", "recipe": "views recipe",
             "num_classes": "classes", "budget": "label budget"}  # fmt: skip
    for key, name in names.items():
        if recorded.get(key) != expected[key]:
            raise LabelError(
                f"stored labels '{path}' were made for {name} {_short(recorded.get(key))}, the "
                f"student trains with {name} {_short(expected[key])}; they label something "
                "else. Delete the file and rerun, which relabels this set"
            )


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 160 else text[:157] + "..."


VIEW_KEYS = ("idx", "boxes", "flips", "mix", "mix_perm")
BATCH_KEYS = ("batch_epoch", "batch_index", "batch_len")
SCALAR_KEYS = ("images", "batch_size", "epochs_total", "num_classes")


@torch.no_grad()
def relabel(
    images: np.ndarray,
    teacher: torch.nn.Module,
    norm: Normalizer,
    recipe: dict,
    batch_size: int,
    seed: int,
    epochs: range,
    kept: dict[int, list[int]] | None = None,
) -> dict[str, np.ndarray]:
    """The batch records of `epochs` (1-based): views plus the teacher's fp16 logits, of every
    batch, or with `kept` of those batches only (LPLD: the rest are never labelled)."""
    teacher.eval().requires_grad_(False)
    n, h, w = images.shape[0], images.shape[1], images.shape[2]
    device = norm.mean.device
    every = list(range(batches_per_epoch(n, batch_size)))
    todo = {e: every if kept is None else kept.get(e, []) for e in epochs}
    chosen = []  # (epoch, position, view) of every batch to label
    for e in (e for e in epochs if todo[e]):
        views = draw_epoch(n, batch_size, (h, w), recipe, seed, e)
        chosen += [(e, b, views[b]) for b in todo[e]]
    if not chosen:
        raise ValueError(f"no batch of epochs {epochs[0]}-{epochs[-1]} is kept: nothing to label")
    tracker = Tracker(f"relabel epochs {epochs[0]}-{epochs[-1]}", len(chosen), "batch")
    # fp16 on the device, then to the host a batch at a time (a 21K-class epoch's logits would
    # not fit on the device), while the next batch is decoded
    batches = prefetch([v for _, _, v in chosen], lambda v: host_batch(images[v.idx], device))
    logits = []
    for done, ((_, _, v), x) in enumerate(zip(chosen, batches), 1):
        logits.append(teacher(render(norm.to_tensor(x), v)).float().half().cpu())
        tracker.update(done)
    records = _records(chosen, n, batch_size, epochs, recipe["epochs"])
    records["values"] = torch.cat(logits).numpy()
    records["num_classes"] = np.asarray(records["values"].shape[1], np.int32)
    return records


def _records(chosen, n: int, batch_size: int, epochs: range, total: int) -> dict:
    views = [v for _, _, v in chosen]
    out = {
        "batch_epoch": np.asarray([e for e, _, _ in chosen], np.int32),
        "batch_index": np.asarray([b for _, b, _ in chosen], np.int32),
        "batch_len": np.asarray([len(v.idx) for v in views], np.int32),
        "idx": _cat([v.idx for v in views], np.int32, (0,)),
        "flips": _cat([v.flips for v in views], bool, (0,)),
        "images": np.asarray(n, np.int32),
        "batch_size": np.asarray(batch_size, np.int32),
        "epochs": np.asarray([epochs[0], epochs[-1]], np.int32),  # this file's range
        "epochs_total": np.asarray(total, np.int32),  # the epochs labelled, 1..E
    }
    if views and views[0].boxes is not None:
        out["boxes"] = _cat([v.boxes for v in views], np.int16, (0, 4))
    if views and views[0].mix_box is not None:
        out["mix"] = np.array([(*v.mix_box, v.mix_lam) for v in views], np.float64)
        out["mix_perm"] = _cat([v.mix_perm for v in views], np.int32, (0,))
    return out


def _cat(parts, dtype, empty_shape) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(empty_shape, dtype)


def merge_shards(shards: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Label files of epoch ranges (one relabel or budget job each) joined in epoch order."""
    shards = sorted(shards, key=lambda s: int(s["epochs"][0]))
    keep = SCALAR_KEYS
    out = {k: np.concatenate([s[k] for s in shards]) for k in shards[0]
           if k not in keep and k != "epochs"}  # fmt: skip
    out |= {k: shards[0][k] for k in keep}
    out["epochs"] = np.asarray([shards[0]["epochs"][0], shards[-1]["epochs"][1]], np.int32)
    return out


def kept_of(records: dict[str, np.ndarray], budget: LabelBudget, seed: int) -> dict:
    """Epoch -> kept batch positions of the labels `records` belong to (`seed`: the relabel's)."""
    n, bs = int(records["images"]), int(records["batch_size"])
    return budget.kept(int(records["epochs_total"]), batches_per_epoch(n, bs), seed)


def at_budget(records: dict[str, np.ndarray], budget: LabelBudget, seed: int) -> dict:
    """The records a budget keeps, logits encoded: what its label file holds (`seed`: the
    relabel seed, which draws the kept epochs)."""
    kept = kept_of(records, budget, seed)
    first, last = (int(e) for e in records["epochs"])
    want = {(e, b) for e, bb in kept.items() if first <= e <= last for b in bb}
    have = list(zip(records["batch_epoch"].tolist(), records["batch_index"].tolist()))
    missing = want - set(have)
    if missing:
        raise LabelError(f"the labels lack batches {sorted(missing)[:3]} (epoch, position) "
                         "that the budget keeps; they were stored at another budget")  # fmt: skip
    rows = [r for r, key in enumerate(have) if key in want]
    image_rows = _image_rows(records, rows)
    out = {k: records[k][rows] for k in (*BATCH_KEYS, "mix") if k in records}
    out |= {k: records[k][image_rows] for k in ("idx", "flips", "boxes", "mix_perm")
            if k in records}  # fmt: skip
    out |= {k: records[k] for k in (*SCALAR_KEYS, "epochs")}
    classes = int(records["num_classes"])
    return out | budget.encode(LabelBudget.decode(_logits(records), classes)[image_rows])


def _image_rows(records: dict[str, np.ndarray], rows: list[int]) -> np.ndarray:
    starts = np.concatenate([[0], np.cumsum(records["batch_len"])])
    if not rows:
        return np.zeros(0, np.int64)
    return np.concatenate([np.arange(starts[r], starts[r + 1]) for r in rows])


def _logits(records):
    return {k: records[k] for k in LOGIT_KEYS if k in records}


def view_bytes(records: dict[str, np.ndarray]) -> int:
    return int(sum(records[k].nbytes for k in (*VIEW_KEYS, *BATCH_KEYS) if k in records))


def logit_bytes(records: dict[str, np.ndarray]) -> int:
    return int(sum(a.nbytes for a in _logits(records).values()))


class StoredLabels:
    """A student's source of views and soft labels: records already at the student's budget
    (a budget's files, or the relabel stage's for FKD as published)."""

    def __init__(self, records: dict[str, np.ndarray], budget: LabelBudget,
                 file_bytes: int | None = None):  # fmt: skip
        self.records, self.budget = records, budget
        self.num_classes = int(records["num_classes"])
        self.logits = budget.decode(_logits(records), self.num_classes)
        self.starts = np.concatenate([[0], np.cumsum(records["batch_len"])]).astype(np.int64)
        keys = zip(records["batch_epoch"].tolist(), records["batch_index"].tolist())
        self.row = {key: r for r, key in enumerate(keys)}
        self.kept = sorted({e for e, _ in self.row})
        self.epochs = int(records["epochs_total"])
        self.bytes = {"logits": logit_bytes(records), "views": view_bytes(records)}
        self.file_bytes = file_bytes

    def check_fits(self, n_images: int, epochs: int, batch_size: int) -> None:
        have, stored_bs = int(self.records["images"]), int(self.records["batch_size"])
        if have != n_images or stored_bs != batch_size:
            raise LabelError(
                f"stored labels cover {have} images in batches of {stored_bs}, the student "
                f"trains on {n_images} in batches of {batch_size}; rerun relabel for this set"
            )
        if self.budget.keep_unit == "epoch" and self.budget.keep == 1.0 and self.epochs < epochs:
            raise LabelError(
                f"stored labels hold {self.epochs} epochs, the student trains {epochs}; "
                "relabel more epochs or set student.label_budget.keep below 1"
            )

    def epoch(self, epoch: int, seed: int) -> tuple[list[View], torch.Tensor]:
        """Views and logits for student epoch `epoch`: the kept epochs in turn, or (batch unit)
        the pool's draws for this student seed."""
        if self.budget.keep_unit == "batch":
            rec = self.records
            batches = batches_per_epoch(int(rec["images"]), int(rec["batch_size"]))
            keys = self.budget.draws(self.epochs, batches, seed, epoch)
        else:
            e = self.kept[(epoch - 1) % len(self.kept)]
            keys = sorted(k for k in self.row if k[0] == e)
        rows = [self.row[k] for k in keys]
        views = [self._view(r) for r in rows]
        logits = np.concatenate([self.logits[self.starts[r] : self.starts[r + 1]] for r in rows])
        return views, torch.from_numpy(logits)

    def _view(self, r: int) -> View:
        rec, sl = self.records, slice(self.starts[r], self.starts[r + 1])
        v = View(
            rec["idx"][sl].astype(np.int64),
            rec["boxes"][sl].astype(np.int32) if "boxes" in rec else None,
            rec["flips"][sl],
        )
        if "mix" in rec:
            y0, y1, x0, x1, lam = rec["mix"][r]
            v.mix_box = (int(y0), int(y1), int(x0), int(x1))
            v.mix_perm = rec["mix_perm"][sl].astype(np.int64)
            v.mix_lam = float(lam)
        return v
