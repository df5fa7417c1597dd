"""Label budgets: what of the FKD labels a student keeps, stored at that size (the field's label
pruning axis: LPLD, LPQLD; reference-frontier.md §3.3).

A budget keeps the k largest logits of each view (`topk`), stores them as fp16 or int8 (a byte a
logit plus an fp16 offset and step a view), and keeps a share of the labelled units:
- `keep_unit: epoch` (ddflow's random label pruning): a seeded random ceil(keep x E) of the E
  labelled epochs; the student cycles through them in order;
- `keep_unit: batch` (LPLD): the first int(keep x E x B) batches of the E x B in epoch order (a
  prefix pool, so only they need labelling); each student epoch draws B of them uniformly with
  replacement, and a draw of an epoch's last batch takes the one before it (the released sampler's
  quirk, `pool_skip_last`; those batches are then never read, so they are not stored either).

The relabel stage stores its labels at the budget (labels/stored.py), so the bytes on disk are
the bytes the student reads. numpy only: the workflow plans budget files while it parses.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LabelBudget:
    topk: int | None = None  # keep the k largest logits per view (None: all classes)
    dtype: str = "fp16"  # fp16, or int8 (per-view affine)
    keep: float = 1.0  # share of the labelled units kept
    keep_unit: str = "epoch"  # epoch (seeded random share) or batch (LPLD's prefix pool)
    pool_skip_last: bool = True  # batch unit: a draw of an epoch's last batch takes the one before

    @classmethod
    def from_config(cls, d: dict) -> LabelBudget:
        return cls(d.get("topk"), d.get("dtype", "fp16"), d.get("keep", 1.0),
                   d.get("keep_unit", "epoch"), d.get("pool_skip_last", True))  # fmt: skip

    @property
    def full(self) -> bool:
        """FKD as published: every logit of every epoch in fp16 (the relabel stage's own files)."""
        return self == LabelBudget()

    def slice(self) -> dict:
        """The budget as stage ids and label files record it (the batch unit's keys only there)."""
        out = {"topk": self.topk, "dtype": self.dtype, "keep": self.keep}
        if self.keep_unit == "batch":
            out |= {"keep_unit": "batch", "pool_skip_last": self.pool_skip_last}
        return out

    # ---- which units are kept --------------------------------------------------------------

    def kept_epochs(self, epochs: int, seed: int) -> list[int]:
        """Epoch unit: a seeded random share of epochs 1..E, in order."""
        k = max(1, math.ceil(self.keep * epochs))
        return sorted(random.Random(f"keep:{seed}").sample(range(1, epochs + 1), k))

    def pool_size(self, epochs: int, batches: int) -> int:
        """Batch unit: the prefix of the E x B labelled batches the student draws from."""
        return max(1, int(self.keep * epochs * batches))

    def kept(self, epochs: int, batches: int, seed: int) -> dict[int, list[int]]:
        """Epoch -> the positions of its batches that are stored (and so labelled)."""
        if self.keep_unit == "epoch":
            return {e: list(range(batches)) for e in self.kept_epochs(epochs, seed)}
        if self.pool_skip_last and batches == 1:
            raise ValueError(
                "label budget keep_unit batch with pool_skip_last: every batch is the last of its "
                "epoch (one batch an epoch), so none could be drawn; set pool_skip_last: false"
            )
        out: dict[int, list[int]] = {}
        for g in range(self.pool_size(epochs, batches)):
            e, b = divmod(g, batches)
            if not (self.pool_skip_last and b == batches - 1):
                out.setdefault(e + 1, []).append(b)
        return out

    def draws(self, epochs: int, batches: int, seed: int, epoch: int) -> list[tuple[int, int]]:
        """Batch unit: the (epoch, position) of the stored batches student epoch `epoch` trains
        on, B uniform draws with replacement from the pool, seeded by the student seed (LPLD's
        draws are unseeded)."""
        rng = random.Random(f"pool:{seed}:{epoch}")
        pool = self.pool_size(epochs, batches)
        out = []
        for _ in range(batches):
            g = rng.randrange(pool)
            if self.pool_skip_last and g % batches == batches - 1:
                g -= 1
            out.append((g // batches + 1, g % batches))
        return out

    # ---- how logits are stored -------------------------------------------------------------

    def encode(self, logits: np.ndarray) -> dict[str, np.ndarray]:
        """What storing `logits` (..., C) at this budget keeps."""
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

    @staticmethod
    def decode(enc: dict[str, np.ndarray], num_classes: int) -> np.ndarray:
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


LOGIT_KEYS = ("values", "q", "lo", "step", "index")


def batches_per_epoch(images: int, batch_size: int) -> int:
    return math.ceil(images / batch_size)


def ranges_with_kept(
    budget: LabelBudget, ranges: list[tuple[int, int]], epochs: int, batches: int, seed: int
) -> list[tuple[int, int]]:
    """The relabel epoch ranges holding a kept unit: the budget's files, one per range."""
    kept = budget.kept(epochs, batches, seed)
    return [(a, b) for a, b in ranges if any(a <= e <= b for e in kept)]
