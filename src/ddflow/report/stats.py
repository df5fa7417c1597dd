"""Statistics over synthesis x evaluation seeds: one place, stated in config/README.md.

A result is a balanced two-level nested design: S distilled sets (synthesis seeds, sharing the
teacher), each evaluated by E students (evaluation seeds). The method's expected top-1 varies with
both, so its confidence interval uses the between-set mean square (S - 1 degrees of freedom);
with one set it can only be conditional on that set (E - 1 degrees of freedom over students).
The comparison with the random subset pairs runs on the evaluation seed, which fixes the
student's initialisation and the order of its views for both.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

LEVEL = 0.95


@dataclass
class Estimate:
    mean: float
    std: float  # over all S x E runs
    sets: int  # S
    seeds: int  # E
    sd_synth: float  # between-set component: sqrt(max(0, (MSB - MSW) / E))
    sd_eval: float  # within-set (evaluation seed) component: sqrt(MSW)
    se: float
    df: int
    ci_low: float
    ci_high: float
    ci_over: str  # "sets", "eval seeds" (conditional on the one set), or "" (no interval)
    p_value: float  # two-sided, of mean == 0 (used for paired differences)

    def as_dict(self, prefix: str) -> dict:
        return {f"{prefix}_{k}": v for k, v in asdict(self).items()}


def t_quantile(df: int, level: float = LEVEL) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, df))


def nested(y: np.ndarray) -> Estimate:
    """Estimate of the mean of y[s, e] (sets x evaluation seeds), one-way random effects."""
    y = np.asarray(y, dtype=np.float64)
    s, e = y.shape
    mean = float(y.mean())
    std = float(y.std(ddof=1)) if y.size > 1 else 0.0
    set_means = y.mean(axis=1)
    msw = float(((y - set_means[:, None]) ** 2).sum() / (s * (e - 1))) if e > 1 else math.nan
    msb = float(e * ((set_means - mean) ** 2).sum() / (s - 1)) if s > 1 else math.nan
    sd_eval = math.sqrt(msw) if e > 1 else math.nan
    sd_synth = math.sqrt(max(0.0, (msb - msw) / e)) if s > 1 and e > 1 else math.nan
    if s > 1:
        se, df, over = math.sqrt(msb / (s * e)), s - 1, "sets"
    elif e > 1:
        se, df, over = std / math.sqrt(e), e - 1, "eval seeds"
    else:
        se, df, over = math.nan, 0, ""
    if over:
        half = t_quantile(df) * se
        lo, hi = mean - half, mean + half
        p = _two_sided_p(mean, se, df)
    else:
        lo = hi = p = math.nan
    return Estimate(mean, std, s, e, sd_synth, sd_eval, se, df, lo, hi, over, p)


def _two_sided_p(mean: float, se: float, df: int) -> float:
    from scipy.stats import t

    if se == 0:
        return 0.0 if mean != 0 else 1.0
    return float(2 * t.sf(abs(mean / se), df))


def matrix(runs, value: str = "top1_last") -> tuple[np.ndarray, list[int]]:
    """runs (a DataFrame with set, seed and value columns) as sets x evaluation seeds; seeds that
    some set lacks are dropped so the design stays balanced."""
    grid = runs.pivot_table(index="set", columns="seed", values=value, aggfunc="mean")
    grid = grid.dropna(axis=1)
    return grid.to_numpy(), [int(c) for c in grid.columns]


def paired_difference(method_runs, baseline_runs, value: str = "top1_last") -> Estimate | None:
    """method minus baseline, paired on the evaluation seed: D[s, e] = y[s, e] - b[e], where
    b[e] is the baseline's mean over its sets. The baseline's sets are taken as given."""
    y, seeds = matrix(method_runs, value)
    b, b_seeds = matrix(baseline_runs, value)
    common = [i for i, sd in enumerate(seeds) if sd in b_seeds]
    if not common:
        return None
    base = b.mean(axis=0)[[b_seeds.index(seeds[i]) for i in common]]
    return nested(y[:, common] - base[None, :])
