"""Stored soft labels (FKD, SRe2L's relabel; reference-algorithms.md §1.5) and label budgets.

Relabel draws each epoch's views (batch order, crop boxes, flips, CutMix box and permutation),
renders them and stores them with the teacher's fp16 logits, so a student replays the labels and
never runs the teacher. Unlike the authors' loader, replay reads the stored batch order, so it
needs no patched PyTorch sampler. A label budget (top-k logits, int8, a kept share of the stored
epochs) is applied when the labels are read, and its bytes are those of the encoded arrays.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ddflow.data.pixels import Normalizer
from ddflow.data.prefetch import host_batch, prefetch
from ddflow.errors import DdflowError
from ddflow.io import read_json
from ddflow.progress import Tracker
from ddflow.train.views import View, draw_epoch, render


class LabelError(DdflowError):
    """Stored labels that do not fit the student that reads them."""


def label_identity(
    manifest_path: str, labeler: dict, views: dict, seed: int, num_classes: int
) -> dict:
    """What a label file was made for: the set (its manifest's bytes), the model that labelled
    it, the recipe of the views and the class count. Relabel records it; the student checks it."""
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
    }


def check_identity(path: str, recorded: dict | None, expected: dict) -> None:
    """The student refuses labels made for another set, labeler, recipe or class count."""
    if recorded is None:
        raise LabelError(
            f"stored labels '{path}' record no identity (set, teacher, recipe), so they cannot "
            "be matched to the set they label; delete the file and rerun, which relabels it"
        )
    names = {"set": "set", "labeler": "labeled by", "recipe": "views recipe",
             "num_classes": "classes"}  # fmt: skip
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


@torch.no_grad()
def relabel(
    images: np.ndarray,
    teacher: torch.nn.Module,
    norm: Normalizer,
    recipe: dict,
    batch_size: int,
    seed: int,
    epochs: range,
) -> dict[str, np.ndarray]:
    """The stored labels of `epochs` (1-based): views plus the teacher's fp16 logits."""
    teacher.eval().requires_grad_(False)
    n, h, w = images.shape[0], images.shape[1], images.shape[2]
    cols: dict[str, list] = {k: [] for k in ("idx", "boxes", "flips", "mix", "mix_perm", "logits")}
    tracker = Tracker(f"relabel epochs {epochs[0]}-{epochs[-1]}", len(epochs), "epoch")
    device = norm.mean.device
    for done, epoch in enumerate(epochs, 1):
        views = draw_epoch(n, batch_size, (h, w), recipe, seed, epoch)
        # fp16 on the device, then to the host a batch at a time (a 21K-class epoch's logits
        # would not fit on the device), while the next batch is decoded
        batches = prefetch(views, lambda v: host_batch(images[v.idx], device))
        logits = [
            teacher(render(norm.to_tensor(b), v)).float().half().cpu()
            for v, b in zip(views, batches)
        ]
        cols["idx"].append(np.concatenate([v.idx for v in views]))
        cols["flips"].append(np.concatenate([v.flips for v in views]))
        cols["logits"].append(torch.cat(logits).numpy())
        if views[0].boxes is not None:
            cols["boxes"].append(np.concatenate([v.boxes for v in views]).astype(np.int16))
        if views[0].mix_box is not None:
            cols["mix"].append(np.array([(*v.mix_box, v.mix_lam) for v in views], np.float64))
            cols["mix_perm"].append(np.concatenate([v.mix_perm for v in views]).astype(np.int32))
        tracker.update(done)
    out = {k: np.stack(v) for k, v in cols.items() if v}
    out["idx"] = out["idx"].astype(np.int32)
    out["epochs"] = np.asarray(list(epochs), np.int32)
    out["batch_size"] = np.asarray(batch_size, np.int32)
    return out


def views_of(labels: dict[str, np.ndarray], row: int) -> list[View]:
    """The views of one stored epoch (a row of the stacked arrays)."""
    bs = int(labels["batch_size"])
    n = labels["idx"].shape[1]
    views = []
    for b, s in enumerate(range(0, n, bs)):
        sl = slice(s, s + bs)
        v = View(
            labels["idx"][row, sl].astype(np.int64),
            labels["boxes"][row, sl].astype(np.int32) if "boxes" in labels else None,
            labels["flips"][row, sl],
        )
        if "mix" in labels:
            y0, y1, x0, x1, lam = labels["mix"][row, b]
            v.mix_box = (int(y0), int(y1), int(x0), int(x1))
            v.mix_perm = labels["mix_perm"][row, sl].astype(np.int64)
            v.mix_lam = float(lam)
        views.append(v)
    return views


def merge_shards(shards: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Epoch-range shards joined in epoch order (each shard is one relabel job)."""
    shards = sorted(shards, key=lambda s: int(s["epochs"][0]))
    keys = [k for k in shards[0] if k != "batch_size"]
    out = {k: np.concatenate([s[k] for s in shards]) for k in keys}
    out["batch_size"] = shards[0]["batch_size"]
    return out


@dataclass(frozen=True)
class LabelBudget:
    """How much of the stored labels a student may use: the field's label-pruning axis."""

    topk: int | None = None  # keep the k largest logits per view (None: all classes)
    dtype: str = "fp16"  # fp16 as stored, or int8 (per-row affine)
    keep: float = 1.0  # share of the stored epochs kept; the student cycles through them

    @classmethod
    def from_config(cls, d: dict) -> LabelBudget:
        return cls(d.get("topk"), d.get("dtype", "fp16"), d.get("keep", 1.0))

    def kept_epochs(self, stored: np.ndarray, seed: int) -> np.ndarray:
        """A seeded random share of the stored epochs, in order (random label pruning)."""
        k = max(1, math.ceil(self.keep * len(stored)))
        return np.sort(random.Random(f"keep:{seed}").sample(sorted(stored.tolist()), k))

    def encode(self, logits: np.ndarray) -> dict[str, np.ndarray]:
        """What storing `logits` (..., C) at this budget would keep."""
        out = {}
        values = logits.astype(np.float32)
        if self.topk and self.topk < logits.shape[-1]:
            index = np.argsort(-values, axis=-1, kind="stable")[..., : self.topk]
            values = np.take_along_axis(values, index, -1)
            out["index"] = index.astype(np.int16 if logits.shape[-1] < 2**15 else np.int32)
        if self.dtype == "int8":
            lo = values.min(-1, keepdims=True)
            step = np.maximum(values.max(-1, keepdims=True) - lo, 1e-6) / 255
            out["q"] = np.round((values - lo) / step).astype(np.uint8)
            out["lo"], out["step"] = lo.astype(np.float16), step.astype(np.float16)
        else:
            out["values"] = values.astype(np.float16)
        return out

    def decode(self, enc: dict[str, np.ndarray], num_classes: int) -> np.ndarray:
        """Logits a student trains on; classes outside the top-k get -inf (probability 0)."""
        if "q" in enc:
            values = enc["lo"].astype(np.float32) + enc["q"] * enc["step"].astype(np.float32)
        else:
            values = enc["values"].astype(np.float32)
        if "index" not in enc:
            return values
        full = np.full((*values.shape[:-1], num_classes), -np.inf, np.float32)
        np.put_along_axis(full, enc["index"].astype(np.int64), values, -1)
        return full


VIEW_KEYS = ("idx", "boxes", "flips", "mix", "mix_perm")


class StoredLabels:
    """A student's source of views and soft labels, read from relabel shards under a budget."""

    def __init__(self, labels: dict[str, np.ndarray], budget: LabelBudget, seed: int):
        self.labels = labels
        self.budget = budget
        self.num_classes = labels["logits"].shape[-1]
        self.row = {int(e): r for r, e in enumerate(labels["epochs"])}
        self.kept = budget.kept_epochs(labels["epochs"], seed)
        rows = [self.row[int(e)] for e in self.kept]
        enc = budget.encode(labels["logits"][rows])
        self.logits = budget.decode(enc, self.num_classes)
        kept_views = sum(labels[k][rows].nbytes for k in VIEW_KEYS if k in labels)
        self.bytes = {
            "logits": int(sum(a.nbytes for a in enc.values())),
            "views": int(kept_views),
        }

    def check_fits(self, n_images: int, epochs: int, batch_size: int) -> None:
        have = self.labels["idx"].shape[1]
        stored_bs = int(self.labels["batch_size"])
        if have != n_images or stored_bs != batch_size:
            raise LabelError(
                f"stored labels cover {have} images in batches of {stored_bs}, the student "
                f"trains on {n_images} in batches of {batch_size}; rerun relabel for this set"
            )
        if self.budget.keep == 1.0 and len(self.row) < epochs:
            raise LabelError(
                f"stored labels hold {len(self.row)} epochs, the student trains {epochs}; "
                "relabel more epochs or set student.label_budget.keep below 1"
            )

    def epoch(self, epoch: int) -> tuple[list[View], torch.Tensor]:
        """Views and logits for student epoch `epoch`, cycling through the kept epochs."""
        k = (epoch - 1) % len(self.kept)
        row = self.row[int(self.kept[k])]
        return views_of(self.labels, row), torch.from_numpy(self.logits[k])
