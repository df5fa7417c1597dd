"""Recovery loss terms a method composes in config, on the shared loop (reference-frontier.md §8).

`StatMatch` hooks a teacher's BatchNorm and convolution inputs and, after a forward, sums over the
hooked layers w_l * R_l, with w = first_multiplier on the first hooked layer (the image itself
when convolution inputs are hooked: G-VBSM's and EDC's x10) and 1 elsewhere:

- `bn`: ||running_var - v||_2 + ||running_mean - m||_2 of each BatchNorm input (SRe2L's term);
- `conv`: the same two against the teacher statistics of each convolution input, plus the
  patch moments' two (recover/stats.py);
- `class_weight` w: R = (1 - w) * (the global terms) + w * (the same terms against the per-class
  targets averaged over the batch's labels) (EDC's soft category-aware matching, w = 0.5);
- `ema_alpha` a: the batch statistic s in every term becomes a * ema + (1 - a) * s in value, with
  slope 1 in s (the authors' "+ s - s.detach()"), and ema takes that value; its first step uses s
  itself (slope 2 there, as released; `ema_first: single` gives slope 1);
- `drop_rate` p: each convolution term is left out of a step with probability p (its EMA then
  does not move).

With `chunks` > 1 (or a tuple of sizes) the forward holds that many independent batches (the
per-device sub-batches of the authors' multi-GPU runs, or packed batches): each gets its own
statistics, EMA and drops.
`dd_spectrum` is G-VBSM's eigen-spectrum diversity term over each class of the whole batch.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from torch import nn

from ddflow.recover.bn_loss import _BNMoments, _mean_var, _parts
from ddflow.recover.stats import _cells


def _patch(x: torch.Tensor, patch: int, chunks) -> tuple[torch.Tensor, torch.Tensor]:
    """Per chunk, the mean and biased variance of each cell over (N, C, cell): (chunks, cells)."""
    cells = _cells(x.float(), patch)  # (N, C, cells, cell)
    per = [p.transpose(0, 2).flatten(1) for p in _parts(cells, chunks)]  # (cells, n C cell)
    moments = [torch.var_mean(p, 1, correction=0) for p in per]
    return torch.stack([m for _, m in moments]), torch.stack([v for v, _ in moments])


class StatMatch:
    """The statistics terms of one teacher (see the module docstring for each option)."""

    def __init__(
        self,
        model: nn.Module,
        *,
        bn: bool = True,
        conv: bool = False,
        targets: dict | None = None,
        patch: int = 16,
        class_weight: float = 0.0,
        class_patch_keys: str = "swapped",
        ema_alpha: float | None = None,
        ema_first: str = "authors",
        drop_rate: float = 0.0,
        first_multiplier: float = 10.0,
        chunks: int = 1,
        rng: random.Random | None = None,
    ):
        self.targets, self.patch, self.chunks = targets or {}, patch, chunks
        self.class_weight, self.alpha, self.ema_first = class_weight, ema_alpha, ema_first
        self.drop_rate, self.rng = drop_rate, rng or random.Random(0)
        # the released class files hold the patch mean under the patch-var key and the reverse
        self.class_patch = ({"patch_mean": "patch_var", "patch_var": "patch_mean"}
                            if class_patch_keys == "swapped" else {})  # fmt: skip
        self.sites = [
            (name, m) for name, m in model.named_modules()
            if (bn and isinstance(m, nn.BatchNorm2d)) or (conv and isinstance(m, nn.Conv2d))
        ]  # fmt: skip
        if not self.sites:
            raise ValueError("statistics matching needs a teacher with the hooked layers")
        missing = [n for n, m in self.sites if isinstance(m, nn.Conv2d) and f"{n}|mean" not in
                   self.targets]  # fmt: skip
        if missing:
            raise ValueError(f"no teacher statistics for convolution inputs {missing[:3]}")
        self.weights = [first_multiplier] + [1.0] * (len(self.sites) - 1)
        self.current: dict[str, dict[str, torch.Tensor]] = {}
        self.ema: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self.labels: torch.Tensor | None = None
        self.handles = [m.register_forward_pre_hook(self._hook(n, m)) for n, m in self.sites]

    def _hook(self, name: str, module: nn.Module):
        def hook(mod, inputs):
            x, raw = _BNMoments.apply(inputs[0], self.chunks)
            mean, var = _mean_var(raw, torch.float32)
            stats = {"mean": mean, "var": var}
            if isinstance(module, nn.Conv2d):
                stats["patch_mean"], stats["patch_var"] = _patch(x, self.patch, self.chunks)
            self.current[name] = stats
            return (x,)

        return hook

    def set_labels(self, labels: torch.Tensor) -> None:
        """The classes of the next forward's images (for the per-class targets)."""
        self.labels = labels

    def _targets(self, name: str, module: nn.Module, stat: str, device) -> torch.Tensor:
        if isinstance(module, nn.BatchNorm2d):
            return getattr(module, f"running_{stat}").float()[None]
        return torch.as_tensor(self.targets[f"{name}|{stat}"], dtype=torch.float32,
                               device=device)[None]  # fmt: skip

    def _class_targets(self, name: str, stat: str, device) -> torch.Tensor:
        """Per chunk, the class targets averaged over the chunk's labels: (chunks, dims)."""
        stored = self.class_patch.get(stat, stat)
        table = torch.as_tensor(self.targets[f"{name}|class_{stored}"], dtype=torch.float32,
                                device=device)  # fmt: skip
        return torch.stack([t.mean(0) for t in _parts(table[self.labels], self.chunks)])

    def _estimate(self, key: tuple[str, str], cur: torch.Tensor, keep: torch.Tensor):
        """The EMA form of a batch statistic: its value a * ema + (1 - a) * s with slope 1 in s;
        a chunk's first kept step takes s itself (slope 2 there, as released). The EMA of the
        chunks kept this step takes the value; a dropped chunk's stays (it was not computed)."""
        if self.alpha is None:
            return cur
        ema, seen = self.ema.get(key, (torch.zeros_like(cur.detach()), torch.zeros_like(keep)))
        slope = cur - cur.detach()
        first = cur + slope if self.ema_first == "authors" else cur
        later = self.alpha * ema + (1 - self.alpha) * cur.detach() + slope
        moving = torch.where(seen[:, None], later, first)
        self.ema[key] = (torch.where(keep[:, None], moving.detach(), ema), seen | keep)
        return moving

    def value(self) -> torch.Tensor:
        total = 0.0
        for (name, module), w in zip(self.sites, self.weights):
            stats = self.current[name]
            device = stats["mean"].device
            k = len(stats["mean"])
            keep = torch.ones(k, dtype=torch.bool, device=device)
            if isinstance(module, nn.Conv2d) and self.drop_rate > 0:
                drops = [self.rng.random() > 1.0 - self.drop_rate for _ in range(k)]
                keep = ~torch.tensor(drops, device=device)
            global_r, class_r = 0.0, 0.0
            for stat, cur in stats.items():
                est = self._estimate((name, stat), cur, keep)
                global_r = global_r + torch.linalg.vector_norm(
                    self._targets(name, module, stat, device) - est, dim=1
                )
                if self.class_weight:
                    class_r = class_r + torch.linalg.vector_norm(
                        self._class_targets(name, stat, device) - est, dim=1
                    )
            r = (1 - self.class_weight) * global_r + self.class_weight * class_r
            total = total + w * (r * keep).sum()
        self.current.clear()
        return total

    def reset(self) -> None:
        """A new batch: its EMA starts afresh (see recover/gvbsm.py on why)."""
        self.ema.clear()

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def dd_spectrum(xa: torch.Tensor, labels: torch.Tensor, tau: float = 4.0, pool: int = 32):
    """G-VBSM's data densification: per class of the batch, X = the images average-pooled to
    pool x pool and flattened, and the eigenvalues l of X X^T; KL(softmax(l / tau) || softmax(l))
    with the softened target held fixed, summed over classes. It flattens each class's spectrum
    (more diverse images); a class with one image contributes 0."""
    x = xa if xa.dtype == torch.float64 else xa.float()  # bf16 pixels: eigenvalues in float32
    flat = F.adaptive_avg_pool2d(x, (pool, pool)).flatten(1)
    total = flat.new_zeros(())
    for c in torch.unique(labels):
        x = flat[labels == c]
        eig = torch.linalg.eigvalsh(x @ x.T)  # symmetric: real; the KL is order-free
        target = (eig / tau).softmax(0).detach()
        total = total + F.kl_div(eig.log_softmax(0), target, reduction="sum")
    return total
