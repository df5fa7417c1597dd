"""Named label protocols: how a student is supervised, applied identically to every set.

    hard    cross-entropy on the set's class labels (CutMix-weighted); no teacher
    online  KD to the teacher run on the exact view the student sees (RDED/DELT validation)
    stored  KD to stored fp16 logits of the replayed views (SRe2L/CDA FKD), under a label budget
    hybrid  online KD x T^2 plus student.hard_weight x the hard term (Hinton et al.)

One class per protocol in PROTOCOLS; the student loop only calls `epoch` and `loss`, config
validation `check`. The workflow reads the classes' declarations (`needs_teacher`, ...) while it
parses, so this module imports torch only inside the methods a job runs
(tests/test_parse_light.py guards it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ddflow.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ddflow.labels.stored import StoredLabels
    from ddflow.train.views import View


def hard_loss(logits: torch.Tensor, y: torch.Tensor, view: View) -> torch.Tensor:
    """Cross-entropy with CutMix's label weights (the pasted area belongs to the permuted image)."""
    import torch
    import torch.nn.functional as F

    if view.mix_box is None:
        return F.cross_entropy(logits, y)
    y2 = y[torch.as_tensor(view.mix_perm, device=y.device)]
    lam = view.mix_lam
    return lam * F.cross_entropy(logits, y) + (1 - lam) * F.cross_entropy(logits, y2)


class Protocol:
    needs_teacher = False  # runs the teacher at training time
    needs_stored = False  # reads relabelled logits
    needs_hard = False  # reads the set's class labels

    def __init__(self, cfg: dict, seed: int, n: int, batch_size: int, hw: tuple[int, int], **_):
        self.cfg, self.seed, self.n, self.bs, self.hw = cfg, seed, n, batch_size, hw

    @staticmethod
    def check(student: dict) -> None:
        """Rules the protocol sets on the student block; raise ConfigError naming the key."""

    def epoch(self, epoch: int) -> tuple[list[View], torch.Tensor | None]:
        """This epoch's views and, for stored labels, their logits in view order."""
        from ddflow.train.views import draw_epoch

        return draw_epoch(self.n, self.bs, self.hw, self.cfg, self.seed, epoch), None

    def loss(self, logits, x, view, y, soft) -> torch.Tensor:
        raise NotImplementedError

    def soft_loss(self, logits, target, y) -> torch.Tensor:
        """student.loss against a teacher's logits: KL at the temperature, or mse_gt."""
        from ddflow.labels.soft import kd_loss, mse_gt

        if self.cfg.get("loss", "kl") == "mse_gt":
            return mse_gt(logits, target, y, self.cfg["ce_weight"])
        return kd_loss(logits, target, self.cfg["temperature"], self.cfg["t2_factor"])


def _whole_batch(student: dict, name: str) -> None:
    """A protocol whose CutMix-weighted hard term reads the whole batch's labels."""
    if student.get("micro_batch"):
        raise ConfigError(
            f"config key 'student.micro_batch': the {name} protocol weights CutMix's hard "
            "labels over the whole batch; use it with online or stored labels only"
        )


class Hard(Protocol):
    needs_hard = True

    @staticmethod
    def check(student):
        _whole_batch(student, "hard")

    def loss(self, logits, x, view, y, soft):
        return hard_loss(logits, y, view)


class Online(Protocol):
    needs_teacher = True

    def __init__(self, *args, teacher: nn.Module, **kw):
        from ddflow.labels.soft import OnlineTeacher

        super().__init__(*args)
        self.teacher = OnlineTeacher(teacher)

    def loss(self, logits, x, view, y, soft):
        return self.soft_loss(logits, self.teacher(x), y)


class Hybrid(Online):
    """Hinton et al.'s combination: the KD term x T^2 (so its gradients keep their size as T
    grows) plus hard_weight x the hard term. Without the T^2 a T = 20 KL is ~1/400 of the
    cross-entropy's scale and the hybrid would train as hard labels alone."""

    needs_hard = True

    @staticmethod
    def check(student):
        _whole_batch(student, "hybrid")
        if student.get("loss", "kl") != "kl":
            raise ConfigError(
                "config key 'student.loss': the hybrid protocol is KL x T^2 plus its own hard "
                "term; mse_gt is for online and stored labels"
            )

    def loss(self, logits, x, view, y, soft):
        from ddflow.labels.soft import kd_loss

        t = self.cfg["temperature"]
        soft_term = kd_loss(logits, self.teacher(x), t, t2_factor=True)
        return soft_term + self.cfg["hard_weight"] * hard_loss(logits, y, view)


class Stored(Protocol):
    needs_stored = True

    @staticmethod
    def check(student):
        """The stored logits are of the replayed views: nothing may change the images after."""
        if student["augment"] != "views":
            raise ConfigError(
                f"config key 'student.augment': stored labels replay the drawn views, which "
                f"{student['augment']} replaces; set student.augment: views or drop 'stored' from "
                "student.labels"
            )
        if student.get("loss") == "mse_gt" and any(b.get("topk") for b in student["label_budget"]):
            raise ConfigError(
                "config key 'student.loss': mse_gt regresses every logit, which a top-k label "
                "budget leaves out; use loss kl with top-k budgets"
            )
        for key in ("randaugment", "tv_randaugment"):
            if student.get(key) is not None:
                raise ConfigError(
                    f"config key 'student.{key}': stored labels replay crops, flips and CutMix "
                    f"only (as FKD does); set student.{key}: null or drop 'stored' from "
                    "student.labels"
                )

    def __init__(self, *args, stored: StoredLabels, **kw):
        super().__init__(*args)
        self.stored = stored
        stored.check_fits(self.n, self.cfg["epochs"], self.bs)

    def epoch(self, epoch):
        return self.stored.epoch(epoch, self.seed)

    def loss(self, logits, x, view, y, soft):
        return self.soft_loss(logits, soft.to(logits.device), y)


PROTOCOLS: dict[str, type[Protocol]] = {
    "hard": Hard,
    "online": Online,
    "stored": Stored,
    "hybrid": Hybrid,
}


def make_protocol(
    cfg: dict,
    seed: int,
    n: int,
    batch_size: int,
    hw: tuple[int, int],
    teacher: nn.Module | None = None,
    stored: StoredLabels | None = None,
) -> Protocol:
    cls = PROTOCOLS[cfg["labels"]]
    return cls(cfg, seed, n, batch_size, hw, teacher=teacher, stored=stored)


def split_soft(soft: torch.Tensor | None, views: list[View]):
    """Pair each view with its rows of the epoch's stored logits (None when labels are online)."""
    import numpy as np

    offsets = np.cumsum([0] + [len(v.idx) for v in views])
    for v, a, b in zip(views, offsets[:-1], offsets[1:]):
        yield v, None if soft is None else soft[a:b]
