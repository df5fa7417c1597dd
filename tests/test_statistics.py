"""Synthesis x evaluation seeds: the config's expansion, the statistics, and the tables."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from ddflow.config import (
    ConfigError,
    StageIds,
    base_method,
    configured_method,
    experiment_record,
    validate_config,
)
from ddflow.report.stats import nested, paired_difference, t_quantile
from ddflow.report.tables import summarize, write_tables


def _config(methods, **extra):
    return {"dataset": {"name": "m", "source": "mnist-embedded"}, "teacher": {}, "ipc": [10],
            "student": {}, "methods": methods, **extra}  # fmt: skip


# --- the config --------------------------------------------------------------------------------


def test_seeds_become_independent_sets_and_the_own_seed_keeps_its_results():
    plain = validate_config(_config({"sre2l": {"kind": "sre2l", "iterations": 50}}))
    cfg = validate_config(
        _config({"sre2l": {"kind": "sre2l", "iterations": 50, "seeds": [2, 0, 1]}})
    )
    members = cfg["synthesis_members"]["sre2l"]
    assert members == [("sre2l__seed2", 2), ("sre2l", 0), ("sre2l__seed1", 1)]
    assert [cfg["methods"][m]["seed"] for m, _ in members] == [2, 0, 1]
    assert all("seeds" not in cfg["methods"][m] for m, _ in members)
    ids, plain_ids = StageIds(cfg), StageIds(plain)
    assert ids.method("sre2l") == plain_ids.method("sre2l")  # nothing reruns for the own seed
    assert len({ids.method(m) for m, _ in members}) == 3
    assert ids.teacher == plain_ids.teacher  # the sets share only the teacher
    assert base_method(cfg["synthesis_members"], "sre2l__seed1") == ("sre2l", 1)
    assert base_method(cfg["synthesis_members"], "random") == ("random", None)
    assert configured_method(cfg["methods"], cfg["synthesis_members"], "sre2l") == {
        **{k: v for k, v in plain["methods"]["sre2l"].items() if k != "seed"},
        "seeds": [2, 0, 1],
    }
    record = experiment_record(cfg)
    assert record["synthesis_seeds"]["sre2l"][0] == ["sre2l__seed2", 2]
    assert "synthesis_members" not in record["config"]


def test_seeded_random_is_the_baseline_and_no_default_is_added():
    cfg = validate_config(_config({"random": {"kind": "random", "seeds": [1, 2]}}))
    assert sorted(cfg["methods"]) == ["random__seed1", "random__seed2"]


def test_a_deterministic_kind_refuses_seeds():
    with pytest.raises(ConfigError, match=r"methods.h.seeds': kind herding .* remove seeds"):
        validate_config(_config({"h": {"kind": "herding", "seeds": [0, 1]}}))


def test_a_seed_member_that_collides_with_a_method_is_refused():
    methods = {"a": {"kind": "random", "seeds": [0, 1]}, "a__seed1": {"kind": "random"}}
    with pytest.raises(ConfigError, match="seed 1 makes method 'a__seed1'"):
        validate_config(_config(methods))


def test_sweep_variants_with_seeds_keep_their_variant():
    sweeps = {"ms": {"base": {"kind": "cda", "seeds": [0, 1]}, "grid": {"milestone": [0.5, 1.0]}}}
    cfg = validate_config(_config({}, sweeps=sweeps))
    members = dict(cfg["sweep_members"]["ms"])
    assert members == {
        "ms__milestone_0p5": {"milestone": 0.5},
        "ms__milestone_0p5__seed1": {"milestone": 0.5},
        "ms__milestone_1p0": {"milestone": 1.0},
        "ms__milestone_1p0__seed1": {"milestone": 1.0},
    }


# --- the statistics ----------------------------------------------------------------------------


def test_nested_estimate_matches_a_hand_computation():
    # 2 sets x 3 evaluation seeds; set means 2 and 6, grand mean 4
    est = nested(np.array([[1.0, 2.0, 3.0], [4.0, 6.0, 8.0]]))
    msw = (1 + 0 + 1 + 4 + 0 + 4) / (2 * 2)  # 2.5
    msb = 3 * ((2 - 4) ** 2 + (6 - 4) ** 2) / 1  # 24
    assert est.mean == 4 and est.sets == 2 and est.seeds == 3 and est.df == 1
    assert est.sd_eval == pytest.approx(math.sqrt(msw))
    assert est.sd_synth == pytest.approx(math.sqrt((msb - msw) / 3))
    assert est.se == pytest.approx(math.sqrt(msb / 6)) and est.ci_over == "sets"
    assert est.std == pytest.approx(np.std([1, 2, 3, 4, 6, 8], ddof=1))
    assert est.ci_high - est.mean == pytest.approx(12.7062 * 2, rel=1e-4)  # t(0.975, 1) = 12.706
    assert est.ci_low == pytest.approx(2 * est.mean - est.ci_high)


def test_one_set_gives_an_interval_over_evaluation_seeds_only():
    est = nested(np.array([[1.0, 2.0, 3.0]]))
    assert est.ci_over == "eval seeds" and est.df == 2 and math.isnan(est.sd_synth)
    assert est.ci_high - 2 == pytest.approx(4.3027 / math.sqrt(3), rel=1e-4)  # t(0.975, 2)
    single = nested(np.array([[5.0]]))
    assert single.ci_over == "" and math.isnan(single.ci_low) and single.std == 0


def test_between_set_variance_below_the_noise_floor_is_zero():
    est = nested(np.array([[1.0, 3.0], [1.2, 2.8]]))  # set means 2, 2: MSB < MSW
    assert est.sd_synth == 0.0


def test_t_quantiles():
    assert t_quantile(1) == pytest.approx(12.7062, rel=1e-5)
    assert t_quantile(4) == pytest.approx(2.7764, rel=1e-4)
    assert t_quantile(10**6) == pytest.approx(1.95996, rel=1e-4)


def test_the_interval_covers_the_true_mean_95_percent_when_sets_vary():
    """Where sets differ (sd 2) more than students (sd 1), the interval over sets holds its
    level; one that treated the S x E runs as independent would not."""
    rng = np.random.default_rng(0)
    s, e, reps, hit, naive = 4, 3, 2000, 0, 0
    for _ in range(reps):
        y = 70 + rng.normal(0, 2, (s, 1)) + rng.normal(0, 1, (s, e))
        est = nested(y)
        hit += est.ci_low <= 70 <= est.ci_high
        half = t_quantile(s * e - 1) * y.std(ddof=1) / math.sqrt(s * e)
        naive += abs(y.mean() - 70) <= half
    assert 0.93 <= hit / reps <= 0.97
    assert naive / reps < 0.85


def _runs(rows):
    return pd.DataFrame(rows, columns=["set", "seed", "top1_last"])


def test_paired_difference_pairs_on_the_evaluation_seed():
    method = _runs([("a", 0, 60.0), ("a", 1, 64.0), ("a", 2, 62.0)])
    random = _runs([("r", 0, 50.0), ("r", 1, 55.0), ("r", 2, 51.0), ("r", 3, 99.0)])
    est = paired_difference(method, random)
    d = np.array([10.0, 9.0, 11.0])  # seed 3 has no partner and is left out
    assert est.mean == pytest.approx(d.mean()) and est.df == 2
    assert est.se == pytest.approx(d.std(ddof=1) / math.sqrt(3))
    from scipy.stats import ttest_rel

    assert est.p_value == pytest.approx(ttest_rel([60, 64, 62], [50, 55, 51]).pvalue)
    # several baseline subsets: the difference is to their mean at each evaluation seed
    two = _runs([("r", 0, 50.0), ("r", 1, 55.0), ("r", 2, 51.0),
                 ("q", 0, 52.0), ("q", 1, 53.0), ("q", 2, 53.0)])  # fmt: skip
    assert paired_difference(method, two).mean == pytest.approx(np.mean([9.0, 10.0, 10.0]))
    assert paired_difference(method, _runs([("r", 7, 50.0)])) is None


# --- the tables --------------------------------------------------------------------------------


def _student(tmp_path, method, kind, seed, top1, set_=None, val=None, **extra):
    r = {**extra, "dataset": "d", "method": method, "kind": kind, "ipc": 10, "student": "convnet",
         "protocol": "online", "seed": seed, "top1_last": top1, "top1_best": top1 + 1,
         "teacher_top1": 90.0}  # fmt: skip
    if set_:
        r["set"] = set_
    if val is not None:
        r["top1_val_selected"] = val
    path = tmp_path / f"{set_ or method}-{seed}.json"
    path.write_text(json.dumps(r))
    return str(path)


def test_summary_rows_carry_the_interval_the_split_and_the_paired_gain(tmp_path):
    y = {"sre2l": [60.0, 61.0, 62.0], "sre2l__seed1": [66.0, 65.0, 67.0]}
    rand = [50.0, 52.0, 51.0]
    paths = [_student(tmp_path, "sre2l", "sre2l", e, v, s if s != "sre2l" else None, val=v - 1)
             for s, vals in y.items() for e, v in enumerate(vals)]  # fmt: skip
    paths += [_student(tmp_path, "random", "random", e, v) for e, v in enumerate(rand)]
    table = summarize(paths).set_index("method")
    est = nested(np.array(list(y.values())))
    row = table.loc["sre2l"]
    assert (row.sets, row.seeds) == (2, 3)
    assert row.top1_last_ci95_low == round(est.ci_low, 2)
    assert row.top1_last_ci95_high == round(est.ci_high, 2)
    assert row.sd_synth == round(est.sd_synth, 2) and row.sd_eval == round(est.sd_eval, 2)
    assert row.top1_val_selected_mean == round(np.mean([*y["sre2l"], *y["sre2l__seed1"]]) - 1, 2)
    diff = nested(np.array(list(y.values())) - np.array(rand)[None, :])
    assert row.gain_over_random == round(est.mean - np.mean(rand), 2)
    assert (row.gain_ci95_low, row.gain_ci95_high) == (
        round(diff.ci_low, 2),
        round(diff.ci_high, 2),
    )
    assert row.gain_p_value == round(diff.p_value, 4)
    base = table.loc["random"]
    assert base.sets == 1 and base.ci_over == "eval seeds" and math.isnan(base.gain_ci95_low)
    md = tmp_path / "t.md"
    write_tables(paths, str(tmp_path / "t.csv"), str(md))
    text = md.read_text()
    assert "2 x 3" in text and "sd set / eval" in text and "top1_val_selected_mean" in text
    assert f"[{diff.ci_low:.2f}, {diff.ci_high:.2f}]" in text


def test_results_without_sets_or_validation_read_as_before(tmp_path):
    paths = [_student(tmp_path, "random", "random", e, 50.0 + e) for e in range(2)]
    table = summarize(paths)
    assert table.loc[0, "sets"] == 1 and table.loc[0, "seeds"] == 2
    assert math.isnan(table.loc[0, "top1_val_selected_mean"])
    write_tables(paths, str(tmp_path / "t.csv"), str(tmp_path / "t.md"))
    text = (tmp_path / "t.md").read_text()
    assert "sd set / eval" not in text and "top1_val_selected_mean" not in text


def test_a_sweep_picks_its_variant_on_validation_not_test(tmp_path):
    from ddflow.report.tables import write_sweep_table

    # variant a is better on test, b on validation: b is the honest choice
    runs = [("s__m_a", {"m": "a"}, 70.0, 40.0), ("s__m_b", {"m": "b"}, 60.0, 45.0)]
    paths = [
        _student(tmp_path, n, "cda", e, test + e, variant=v, sweep="s", val_top1_last=val + e)
        for n, v, test, val in runs
        for e in range(2)
    ]
    base = [_student(tmp_path, "random", "random", e, 50.0) for e in range(2)]
    table = write_sweep_table(paths, base, str(tmp_path / "s.csv"), str(tmp_path / "s.md"))
    assert dict(zip(table["m"], table["selected_on_val"])) == {"a": False, "b": True}
    assert "selected_on_val" in (tmp_path / "s.md").read_text()
