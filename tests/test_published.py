"""The published numbers of the CDA and DELT papers (src/ddflow/report/published.csv).

The CSV holds one line per numeric cell of every results table of
  CDA  = Yin & Shen, "Dataset Distillation in Large Data Era"
         (shared/docs/papers/000_095c7f4899988e90.txt)
  DELT = "DELT: A Simple Diversity-driven EarlyLate Training for Dataset Distillation"
         (shared/docs/papers/004_c3deae10beb18698.txt)
These tests check its schema, that no table lost a cell, and recompute the papers' own prose claims
from the transcribed cells ("l.N" = line N of the paper's text file). A claim the paper itself gets
wrong is kept as a strict xfail that says why.
"""

from __future__ import annotations

import csv
import math
import re
from collections import Counter
from functools import lru_cache
from pathlib import Path

import pytest

CSV_PATH = Path(__file__).parents[1] / "src/ddflow/report/published.csv"
HEADER = [
    "paper",
    "table",
    "row",
    "col",
    "dataset",
    "method",
    "ipc",
    "student",
    "setting",
    "metric",
    "value",
    "std",
    "uncertain",
    "inferred",
    "note",
]
PAPERS = {"cda", "delt", "gvbsm", "edc", "lpld", "fadrm", "cvdd", "cim"}
DATASETS = {
    "cifar10",
    "cifar100",
    "tiny-imagenet",
    "imagenette",
    "imagenet100",
    "imagenet1k",
    "imagenet21k",
}
METRICS = {
    "top1",
    "top5",
    "top1_gain",
    "top5_gain",
    "hours",
    "hours_saving_pct",
    "memory_gb",
    "params_m",
}
METHODS = {
    "sre2l",
    "cda",
    "delt",
    "rded",
    "random",
    "full",
    "ridnik2021",  # the published ImageNet-21K-P squeeze recipe CDA Table 5 compares with
    "real",
    "dc",
    "dsa",
    "dm",
    "mtt",
    "idm",
    "tesla",
    "datm",
    "g-vbsm",
    "minimax",
    "gvbsm",
    "edc",
    "lpld",
    "fadrm",
    "cvdd",
    "cim",
    "sre2l++",  # CV-DD's improved SRe2L baseline, quoted
}
SETTING_KEYS = {
    "crop_schedule",
    "min_scale",
    "max_scale",
    "milestone",
    "iterations",
    "round_iterations",
    "mosaic_factor",
    "selection",
    "early_late",
    "init",
    "student_batch_size",
    "student_epochs",
    "recover_model",
    "relabel_model",
    "teacher_init",
    "steps",
    "classes",
    "view",
    # invented keys (used consistently): training recipe of a full-data model, pipeline stage
    "recipe",
    "stage",
    "teachers",  # how many teachers recover the set (FADRM 1, FADRM+ 3-4)
    "label_keep",  # a label budget's kept fraction (LPLD 40x: 0.025)
    "labels",  # the student's label protocol (stored: FKD's files)
}

# Exact number of numeric cells per table: a dropped or duplicated line fails here.
CELL_COUNTS = {
    ("cda", "table1"): 14,
    ("cda", "table2"): 12,
    ("cda", "table3"): 4,
    ("cda", "table4"): 63,  # 42 top-1 + 21 printed gains
    ("cda", "table5"): 14,  # 10 top-1/top-5 + 4 printed gains
    ("cda", "table6"): 5,
    ("cda", "table7"): 21,
    ("cda", "table8"): 10,
    # table9 (MobileNet-V2 on synthetic images) is absent from the text extraction
    ("cda", "table11"): 6,
    ("cda", "table13"): 18,
    ("cda", "table14"): 10,
    ("cda", "table15"): 20,
    ("cda", "table17"): 15,
    ("cda", "table18"): 30,
    ("cda", "table19"): 14,
    ("cda", "table20"): 24,  # 12 accuracies + 12 parameter counts
    ("cda", "appendix_c"): 6,  # cost numbers stated in prose (Appendix C)
    ("delt", "table1"): 96,
    ("delt", "table2"): 40,
    ("delt", "table3a"): 5,
    ("delt", "table3b"): 3,
    ("delt", "table3c"): 5,
    ("delt", "table3d"): 3,
    ("delt", "table3e"): 6,
    ("delt", "table4"): 30,  # 25 top-1 + 5 printed gains
    ("delt", "table5"): 21,  # 15 hours + 6 printed savings
    ("delt", "table6"): 8,  # 6 top-1 + 2 printed gains
    ("gvbsm", "table4"): 15,  # ImageNet-1K IPC 10/50/100 and Tiny 50/100 x 3 students
    ("gvbsm", "table5"): 10,  # CIFAR-100 IPC 1/10/50 and CIFAR-10 10/50 x 2 students
    ("edc", "table1"): 27,  # ImageNet-1K, Tiny, CIFAR-100 x IPC 1/10/50 x 3 students
    ("fadrm", "table1"): 42,  # IN-1K, Tiny, CIFAR-100 x IPC 1/10/50 x 4 columns; Nette x 2
    ("cvdd", "table1"): 48,  # IN-1K, Tiny, CIFAR-100, CIFAR-10 x IPC 1/10/50 x 4 columns
    ("cim", "table2"): 10,  # IN-1K R18 IPC 1-100, R50 10-100, Tiny R18 1-50
    ("lpld", "table1"): 18,  # 9 (dataset, IPC) x full labels and 40x
}


@lru_cache(maxsize=1)
def _load() -> tuple[list[str], tuple[dict, ...]]:
    with CSV_PATH.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), tuple(reader)


def rows() -> tuple[dict, ...]:
    return _load()[1]


def cell(paper: str, table: str, row: str, col: str, metric: str = "top1") -> float:
    hits = [
        r
        for r in rows()
        if (r["paper"], r["table"], r["row"], r["col"], r["metric"])
        == (paper, table, row, col, metric)
    ]
    assert len(hits) == 1, (paper, table, row, col, metric, len(hits))
    return float(hits[0]["value"])


def table(paper: str, table_: str, metric: str = "top1") -> dict[tuple[str, str], float]:
    return {
        (r["row"], r["col"]): float(r["value"])
        for r in rows()
        if r["paper"] == paper and r["table"] == table_ and r["metric"] == metric
    }


def mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs)


# --------------------------------------------------------------------------------- (a) schema


def test_header():
    assert _load()[0] == HEADER
    assert CSV_PATH.read_text(encoding="utf-8").splitlines()[0] == ",".join(HEADER)


def test_field_values():
    for i, r in enumerate(rows(), start=2):
        where = f"line {i}: {r}"
        assert r["paper"] in PAPERS, where
        assert re.fullmatch(r"table\d+[a-e]?|appendix_c", r["table"]), where
        assert r["row"].strip() and r["col"].strip(), where
        assert r["dataset"] in DATASETS, where
        assert r["method"] in METHODS, where
        assert r["ipc"] == "" or (r["ipc"].isdigit() and int(r["ipc"]) > 0), where
        assert re.fullmatch(r"[a-z0-9_]*", r["student"]), where
        assert r["metric"] in METRICS, where
        value = float(r["value"])
        assert math.isfinite(value), where
        if r["std"]:
            assert math.isfinite(float(r["std"])) and float(r["std"]) >= 0, where
            assert r["metric"] == "top1", where
        assert r["uncertain"] in {"0", "1"}, where
        if r["uncertain"] == "1":
            assert "reconstructed" in r["note"], where
        assert r["inferred"] in {"", "ipc", "student", "ipc;student"}, where
        if r["metric"] in {"top1", "top5"}:
            assert 0 <= value <= 100, where


def test_settings_well_formed():
    pair = re.compile(r"([a-z][a-z0-9_]*)=([^;=\s]+)")
    for r in rows():
        if not r["setting"]:
            continue
        parts = r["setting"].split(";")
        keys = []
        for p in parts:
            m = pair.fullmatch(p)
            assert m, (r["setting"], r)
            keys.append(m.group(1))
        assert keys == sorted(keys) and len(set(keys)) == len(keys), r["setting"]
        assert set(keys) <= SETTING_KEYS, (set(keys) - SETTING_KEYS, r)


def test_cells_unique():
    keys = Counter((r["paper"], r["table"], r["row"], r["col"], r["metric"]) for r in rows())
    assert [k for k, n in keys.items() if n > 1] == []


def test_reading_order():
    # Row by row: the lines of one printed row are contiguous, except where a table is printed
    # in two blocks with the same row labels (CDA Table 20).
    seen: dict[tuple[str, str], list[str]] = {}
    for r in rows():
        seen.setdefault((r["paper"], r["table"]), []).append(r["row"])
    for key, labels in seen.items():
        if key == ("cda", "table20"):
            continue
        runs = [lab for i, lab in enumerate(labels) if i == 0 or labels[i - 1] != lab]
        assert len(runs) == len(set(runs)), (key, runs)


# ------------------------------------------------------------------------- (b) completeness


def test_every_results_table_present_with_exact_cell_count():
    counts = Counter((r["paper"], r["table"]) for r in rows())
    assert dict(counts) == CELL_COUNTS


def test_main_grids_complete():
    # CDA Table 4: 7 (dataset, IPC) rows x 3 students x {SRe2L, Ours}; DELT Table 4: 5 x 5.
    assert len(table("cda", "table4")) == 42 and len(table("cda", "table4", "top1_gain")) == 21
    assert len(table("cda", "table18")) == 30
    assert len(table("delt", "table4")) == 25


# --------------------------------------------------------------- (c) CDA prose claims


def cda_t4_gain(dataset: str, ipc: int, net: str) -> float:
    row = f"{dataset} / {ipc}"
    return cell("cda", "table4", row, f"{net} / Ours") - cell(
        "cda", "table4", row, f"{net} / SRe2L"
    )


NETS = ["ResNet-18", "ResNet-50", "ResNet-101"]


def test_cda_table4_printed_gains_equal_differences():
    # Every up-arrow in Table 4 (l.192-198) is Ours - SRe2L of its block.
    for r in rows():
        if r["paper"] == "cda" and r["table"] == "table4" and r["metric"] == "top1_gain":
            ds, ipc = r["row"].split(" / ")
            net = r["col"].split(" / ")[0]
            assert cda_t4_gain(ds, int(ipc), net) == pytest.approx(float(r["value"]), abs=1e-6)


def test_cda_tiny_average_improvements():
    # l.176: "Our CDA surpasses SRe2L with average improvements of 7.7% and 3.4% under IPC 50 and
    # IPC 100 settings across ResNet-{18, 50, 101} validation models"
    assert mean(cda_t4_gain("Tiny-ImageNet", 50, n) for n in NETS) == pytest.approx(7.7, abs=0.05)
    assert mean(cda_t4_gain("Tiny-ImageNet", 100, n) for n in NETS) == pytest.approx(3.4, abs=0.05)


def test_cda_imagenet1k_average_margins():
    # l.211: "CDA enhances the validation accuracy, exhibiting average margins of 6.1%, 4.3%, and
    # 3.2% on ResNet-18, 50, 101 across varying IPC configurations" (IN-1K IPC 50/100/200)
    for net, claim in zip(NETS, [6.1, 4.3, 3.2]):
        got = mean(cda_t4_gain("ImageNet-1K", ipc, net) for ipc in (50, 100, 200))
        assert got == pytest.approx(claim, abs=0.05), net


def test_cda_imagenet21k_average_elevation_and_levels():
    # l.225: "Compared to reproduced SRe2L on ImageNet-21K, our approach attains an elevation of
    # 5.3% on average under IPC 10/20."
    gains = [cda_t4_gain("ImageNet-21K", ipc, n) for ipc in (10, 20) for n in NETS]
    assert mean(gains) == pytest.approx(5.3, abs=0.05)
    # l.225: "When applying IPC 10 ... validation accuracy surpasses 20% and 30% on ResNet-18 and
    # ResNet-50, 101, respectively."
    assert cell("cda", "table4", "ImageNet-21K / 10", "ResNet-18 / Ours") > 20
    assert cell("cda", "table4", "ImageNet-21K / 10", "ResNet-50 / Ours") > 30
    assert cell("cda", "table4", "ImageNet-21K / 10", "ResNet-101 / Ours") > 30


def test_cda_headline_numbers():
    # l.15 (abstract): "accuracy on large-scale ImageNet-1K and 21K with 63.2% under IPC 50 and
    # 36.1% under IPC 20" -- the best CDA IPC-50 ImageNet-1K cell is RegNet-Y-8GF in Table 7.
    in1k = [
        float(r["value"])
        for r in rows()
        if r["paper"] == "cda"
        and r["method"] == "cda"
        and r["dataset"] == "imagenet1k"
        and r["ipc"] == "50"
        and r["metric"] == "top1"
    ]
    assert round(max(in1k), 1) == 63.2
    assert cell("cda", "table4", "ImageNet-21K / 20", "ResNet-101 / Ours") == 36.1
    # l.47: "When tested on ImageNet-21K with IPC 20, our method achieves a top-1 accuracy of
    # 35.3% ... compared to the model pretrained with full data, at 44.5%"; l.15: the gap to
    # full-data training is "less than absolute 15%".
    distilled = cell("cda", "table4", "ImageNet-21K / 20", "ResNet-50 / Ours")
    full = cell("cda", "table5", "ResNet-50 (Ours) / Random", "Top-1 Acc. (%)")
    assert (distilled, full) == (35.3, 44.5)
    assert full - distilled < 15


def t17_gaps(budget: str) -> list[float]:
    t = table("cda", "table17")
    cols = [c for (r, c) in t if r == "SRe2L (4K)"]
    return [t[(f"Our CDA ({budget})", c)] - t[("SRe2L (4K)", c)] for c in cols]


def test_cda_1k_beats_sre2l_4k_and_average_gap():
    # l.211: "the results achieved with our CDA utilizing merely 1K recovery iterations surpass
    # those of SRe2L encompassing the entire 4K iterations" (Figure 1 = Table 17)
    assert all(g > 0 for g in t17_gaps("1K")) and all(g > 0 for g in t17_gaps("4K"))
    # l.47: "CDA outperforms SRe2L by 4~6% across different architectures under 50 IPC, on both
    # 1K and 4K recovery budgets" -- holds for the average over the five students (4.96, 5.36).
    for budget in ("1K", "4K"):
        assert 4 <= mean(t17_gaps(budget)) <= 6


@pytest.mark.xfail(
    strict=True,
    reason="paper inconsistent: l.47 says CDA beats SRe2L 'by 4~6% across different "
    "architectures', but Table 17 gives DenseNet-121 +7.52/+7.61, RegNet-Y-8GF +2.60/+2.88 and "
    "ResNet-101 (1K) +3.51",
)
def test_cda_gap_within_4_to_6_for_every_architecture():
    for budget in ("1K", "4K"):
        for g in t17_gaps(budget):
            assert 4 - 0.05 <= g <= 6 + 0.05


@pytest.mark.xfail(
    strict=True,
    reason="paper inconsistent: SRe2L (4K) ResNet-101 is 57.59 in Table 17 but 57.60 in Table 7 "
    "(57.6 in Table 4); all other shared cells agree",
)
def test_cda_table17_equals_table7():
    t7, t17 = table("cda", "table7"), table("cda", "table17")
    pairs = {"ResNet-18 (SRe2L)": "SRe2L (4K)", "ResNet-18 (Ours)": "Our CDA (4K)"}
    short = {"ResNet-18": "R18", "ResNet-50": "R50", "ResNet-101": "R101"}
    for (row17, col17), v in t17.items():
        for row7, r17 in pairs.items():
            if r17 == row17:
                col7 = "Validation Model / " + short.get(col17, col17)
                assert t7[(row7, col7)] == v, (row17, col17)


def test_cda_constant_learning_extremes_below_sre2l():
    # l.186: "the results for exceedingly straightforward or challenging scenarios fall below the
    # reproduced SRe2L baseline accuracy of 44.90%, especially when alpha >= 0.8 in easy and
    # alpha <= 0.4 in hard type"
    easy = "Easy (alpha_l = alpha, alpha_u = beta_u)"
    hard = "Hard (alpha_l = beta_l, alpha_u = alpha)"
    base = cell("cda", "table2", easy, "0.08")
    assert base == cell("cda", "table2", hard, "1.0") == 44.90
    for a in ("0.8", "1.0"):
        assert cell("cda", "table2", easy, a) < base
    for a in ("0.08", "0.2", "0.4"):
        assert cell("cda", "table2", hard, a) < base


def test_cda_reverse_curriculum_below_sre2l():
    # l.209: "CRL does not improve the generated dataset's quality compared to the baseline
    # SRe2L, which has 44.90% accuracy"; smaller milestone = earlier transition = worse.
    vals = [cell("cda", "table3", m, "Accuracy (%)") for m in ("0.2", "0.4", "0.6", "0.8")]
    assert max(vals) < 44.90
    assert vals == sorted(vals)


def test_cda_scheduler_choice():
    # l.244: "cosine marginally outperforms linear in terms of accuracy towards the end.
    # Consequently, we choose to implement the cosine scheduler, assigning a milestone of 1.0"
    t = table("cda", "table18")
    assert t[("Cosine", "1")] > t[("Linear", "1")]
    assert t[("Cosine", "1")] - t[("Linear", "1")] < 0.5  # "marginally"
    assert t[("Cosine", "1")] == max(v for (r, _), v in t.items() if r == "Cosine")
    # l.244: linear and cosine "reveal a trend of enhancing accuracy when the milestone is met at
    # a later phase"
    for sched in ("Linear", "Cosine"):
        assert t[(sched, "1")] > t[(sched, "0.5")] > t[(sched, "0.1")]


@pytest.mark.xfail(
    strict=True,
    reason="paper: Table 18's best cell is Linear at milestone 0.9 (48.06), 0.01 above the "
    "chosen Cosine at 1.0 (48.05); the text only claims cosine wins 'towards the end'",
)
def test_cda_cosine_milestone_1_is_best_of_table18():
    t = table("cda", "table18")
    assert t[("Cosine", "1")] == max(t.values())


def test_cda_batch_size_peaks_at_16():
    # l.246: "a rise in validation accuracy is observed as batch size reduces, peaking at 16"
    t = table("cda", "table6")
    assert max(t, key=t.get)[0] == "16"
    order = [t[(b, "Accuracy (%)")] for b in ("128", "64", "32", "16")]
    assert order == sorted(order)


def test_cda_beta_l_04_best():
    # l.389: "We choose 0.4 as the default lower bound beta_l ... to exhibit the best
    # distillation performance on CIFAR-100"
    t = table("cda", "table11")
    assert max(t, key=t.get)[1] == "0.4"
    assert cell("cda", "table11", "validation accuracy (800ep) (%)", "0.4") == cell(
        "cda", "table1", "50", "Ours"
    )


def test_cda_teacher_pretraining():
    # l.223: "Models pretrained by us and initialized with ImageNet-1K weight exhibit commendable
    # accuracy, showing a 2.0% improvement, while models initialized randomly achieve marginally
    # superior accuracy." (l.69: "~2% improvement over the default training (Ridnik et al.)")
    top1 = "Top-1 Acc. (%)"
    ridnik = cell("cda", "table5", "Ridnik et al. (2021) / ImageNet-1K", top1)
    assert cell("cda", "table5", "ResNet-50 (Ours) / ImageNet-1K", top1) - ridnik == (
        pytest.approx(2.0, abs=1e-6)
    )
    for net in ("ResNet-18", "ResNet-50"):
        rnd = cell("cda", "table5", f"{net} (Ours) / Random", top1)
        in1k = cell("cda", "table5", f"{net} (Ours) / ImageNet-1K", top1)
        assert 0 < rnd - in1k < 1
    # the printed up-arrows are gains over Ridnik et al. in top-1 and top-5
    for m, col in (("top1", top1), ("top5", "Top-5 Acc. (%)")):
        ref = cell("cda", "table5", "Ridnik et al. (2021) / ImageNet-1K", col, m)
        for r in rows():
            if r["table"] == "table5" and r["paper"] == "cda" and r["metric"] == f"{m}_gain":
                got = cell("cda", "table5", r["row"], col, m) - ref
                assert got == pytest.approx(float(r["value"]), abs=1e-6)


def test_cda_cifar100_beats_baselines_at_ipc_10_and_50():
    # l.165: "our CDA validation accuracy outperforms all baselines under 10 and 50 IPC"
    t = table("cda", "table1")
    for ipc in ("10", "50"):
        others = [v for (r, c), v in t.items() if r == ipc and c != "Ours"]
        assert t[(ipc, "Ours")] > max(others)
    assert t[("1", "Ours")] < t[("1", "MTT")]  # and not at IPC 1 (l.165 names only 10 and 50)


def test_cda_tiny_small_ipc():
    # l.413: "there is no advantage when IPC value is extremely low, such as IPC = 1. However, when
    # the IPC is increased slightly, our method demonstrates considerable benefits ... our
    # approach yields substantial improvements when afforded ... more training epochs."
    t = table("cda", "table13")
    assert t[("1", "CDA (800ep)")] < max(t[("1", "DM")], t[("1", "MTT")])
    for ipc in ("10", "50"):
        assert t[(ipc, "CDA (200ep)")] > max(t[(ipc, "DM")], t[(ipc, "MTT")])
    for ipc in ("1", "10", "20", "50"):
        eps = [t[(ipc, f"CDA ({e}ep)")] for e in (200, 400, 800)]
        assert eps == sorted(eps)


def test_cda_continual_learning_average_advantage():
    # l.281: "our CDA distilled dataset notably surpasses SRe2L, exhibiting an average advantage
    # of 3.8% and 4.5% on 5-step and 10-step class-incremental learning assignments"
    for tab, claim in (("table14", 3.8), ("table15", 4.5)):
        t = table("cda", tab)
        cols = [c for (r, c) in t if r == "SRe2L"]
        gap = mean(t[("CDA (ours)", c)] - t[("SRe2L", c)] for c in cols)
        assert gap == pytest.approx(claim, abs=0.05), tab


def test_cda_cross_model():
    # l.259: "we attain over 60% Top-1 accuracy with most of these models. Additionally, our
    # performance in Top-1 accuracy surpasses that of SRe2L across all validation models"
    t = table("cda", "table7")
    cols = [c for (r, c) in t if r == "ResNet-18 (Ours)"]
    ours = [t[("ResNet-18 (Ours)", c)] for c in cols]
    assert sum(v > 60 for v in ours) > len(ours) / 2
    assert all(t[("ResNet-18 (Ours)", c)] > t[("ResNet-18 (SRe2L)", c)] for c in cols)


def test_cda_relabel_model():
    # l.480: "employing DenseNet-121 as the data labeling yields superior results for
    # Densenet-121 and RegNet-Y-8GF validation models. Conversely, for other validation models,
    # employing ResNet-18 as the data labeling is more effective."
    t = table("cda", "table19")
    cols = [c for (r, c) in t if r == "ResNet-18"]
    for c in cols:
        dn_better = t[("DenseNet-121", c)] > t[("ResNet-18", c)]
        assert dn_better == (c.endswith(("DenseNet-121", "RegNet-Y-8GF"))), c
    # l.482: "In the last row of ... cross-model generation results in Table 8 [sic: Table 7's
    # DenseNet-121 row], we report the superior results between these two relabeling models"
    t7 = table("cda", "table7")
    for c in cols:
        assert t7[("DenseNet-121 (Ours)", c)] == max(t[("ResNet-18", c)], t[("DenseNet-121", c)])


def test_cda_more_validation_models():
    # l.491: upper group: "a trend that its validation performance improves as the number of model
    # parameters increases"; lower group (AlexNet, DeiT-Base, VGG): "These models also show a
    # trend of performance improvement with increasing size"
    params = table("cda", "table20", "params_m")
    acc = table("cda", "table20")
    models = [c for (_, c) in params]
    upper, lower = models[:6], models[6:]
    assert lower == sorted(lower, key=lambda m: params[("#Params (M)", m)])
    lower_acc = [acc[("accuracy (%)", m)] for m in lower]
    assert lower_acc == sorted(lower_acc)
    # upper group: a positive rank correlation, not a monotone sequence
    ranks = sorted(upper, key=lambda m: acc[("accuracy (%)", m)])
    d2 = sum((upper.index(m) - ranks.index(m)) ** 2 for m in upper)
    assert 1 - 6 * d2 / (len(upper) * (len(upper) ** 2 - 1)) > 0


# -------------------------------------------------------------- (c) DELT prose claims


def test_delt_imagenet1k_resnet101_headline():
    # l.30: "On ImageNet-1K, our proposed approach achieves 66.1% under IPC 50 with ResNet-101,
    # outperforming previous state-of-the-art RDED by 4.9%."
    ours = cell("delt", "table1", "ImageNet-1K / 50", "ResNet-101 / Ours")
    rded = cell("delt", "table1", "ImageNet-1K / 50", "ResNet-101 / RDED")
    assert ours == 66.1
    assert ours - rded == pytest.approx(4.9, abs=0.05)


def test_delt_cifar10_resnet101_gains():
    # l.31: "On small-scale datasets of CIFAR-10, our approach also obtains 2.5% and 19.2%
    # improvement over RDED and SRe2L using ResNet-101." (IPC 50)
    row = "CIFAR-10 / 50"
    ours = cell("delt", "table1", row, "ResNet-101 / Ours")
    assert ours - cell("delt", "table1", row, "ResNet-101 / RDED") == pytest.approx(2.5, abs=0.05)
    assert ours - cell("delt", "table1", row, "ResNet-101 / SRe2L") == pytest.approx(19.2, abs=0.05)


def _wins(t: dict[tuple[str, str], float], ours_col: str, other_cols: list[str]) -> tuple[int, int]:
    wins = total = 0
    for row in dict.fromkeys(r for (r, _) in t):
        if (row, ours_col) not in t:
            continue
        total += 1
        others = [t[(row, c)] for c in other_cols if (row, c) in t]
        wins += t[(row, ours_col)] > max(others)
    return wins, total


def test_delt_state_of_the_art_counts():
    # l.172: "our approach establishes the new state-of-the-art accuracy in 13 out of 15 of the
    # configurations on five datasets ... using relatively large backbone architecture of
    # ResNet-101"
    t1 = table("delt", "table1")
    assert _wins(t1, "ResNet-101 / Ours", ["ResNet-101 / SRe2L", "ResNet-101 / RDED"]) == (13, 15)
    # l.172: "The results using small-scale architecture ConvNet are shown in Table 2, our approach
    # also achieves the state-of-the-art accuracy in 8 out of 12 of the configurations"
    t2 = table("delt", "table2")
    others = [f"ConvNet / {m}" for m in ("MTT", "IDM", "TESLA", "DATM", "RDED")]
    assert _wins(t2, "ConvNet / Ours", others) == (8, 12)


def test_delt_ablation_winners():
    # l.187: "it can be observed that 1x1 achieves the best accuracy" (Table 3a)
    t = table("delt", "table3a")
    assert max(t, key=t.get)[0] == "1x1"
    # l.189: "the performance gap between different strategies is not significant, and selecting
    # the medium probability crops as the initialization achieves the best accuracy" (Table 3b)
    t = table("delt", "table3b")
    assert max(t, key=t.get)[0] == "Medium probability"
    assert max(t.values()) - min(t.values()) < 1
    # l.191: "The results show that 4K (same as [11, 12]) MI and 500 RI achieves the best
    # accuracy" (Table 3c)
    t = table("delt", "table3c")
    assert max(t, key=t.get) == ("Iterations / 4K", "Round Iterations / 500")
    assert ("Iterations / 1K", "Round Iterations / 1K") not in t  # "not feasible" (n/a)


def test_delt_real_vs_diffusion_vs_ours():
    # l.201: "While the first two methods produce more realistic images, each image contains
    # limited information. In contrast, our method achieves the best final performance."
    t = table("delt", "table3e")
    for ipc in ("10", "50"):
        assert t[(ipc, "Ours")] > max(t[(ipc, "RDED [15]")], t[(ipc, "MinimaxDiffusion [44]")])
        # the RDED and DELT cells repeat Table 1 (ImageNet-1K, ResNet-18)
        assert t[(ipc, "RDED [15]")] == cell(
            "delt", "table1", f"ImageNet-1K / {ipc}", "ResNet-18 / RDED"
        )
        assert t[(ipc, "Ours")] == cell(
            "delt", "table1", f"ImageNet-1K / {ipc}", "ResNet-18 / Ours"
        )


def test_delt_cross_architecture():
    # l.176: "our proposed approach demonstrates significant better performance than other
    # competitive methods on all these architectures"; the printed (+x) is the gain over RDED.
    t = table("delt", "table4")
    gains = table("delt", "table4", "top1_gain")
    cols = [c for (r, c) in t if r == "Ours"]
    for c in cols:
        assert t[("Ours", c)] > max(v for (r, cc), v in t.items() if cc == c and r != "Ours")
        assert t[("Ours", c)] - t[("RDED [15]", c)] == pytest.approx(gains[("Ours", c)], abs=1e-6)


def _savings():
    t = table("delt", "table5", "hours")
    s = table("delt", "table5", "hours_saving_pct")
    for (row, col), printed in s.items():
        base = t[("SRe2L [11]", col)]
        yield row, col, printed, 100 * (1 - t[(row, col)] / base)


def test_delt_time_savings():
    # Table 5 caption/l.205: the arrows are the time saved against SRe2L/CDA (29.0 / 5.0 / 0.084
    # hours, equal for both); l.205: EarlyLate needs "roughly 2/3" of their optimisation.
    t = table("delt", "table5", "hours")
    for col in {c for (_, c) in t}:
        assert t[("SRe2L [11]", col)] == t[("CDA [12]", col)]
    for row, col, printed, got in _savings():
        if (row, col) == ("Ours (RI = 500)", "Dataset (hours) / CIFAR-10"):
            continue  # see the xfail below
        assert got == pytest.approx(printed, abs=0.05), (row, col)
    for ri in ("500", "1K"):
        ratio = (
            t[(f"Ours (RI = {ri})", "Dataset (hours) / ImageNet-1K")]
            / t[("SRe2L [11]", "Dataset (hours) / ImageNet-1K")]
        )
        assert abs(ratio - 2 / 3) < 0.07


@pytest.mark.xfail(
    strict=True,
    reason="paper rounding: CIFAR-10 RI=500 saves 1 - 0.083/0.084 = 1.19%, printed as 1.1% "
    "(truncated, not rounded)",
)
def test_delt_cifar10_saving_rounded():
    for row, col, printed, got in _savings():
        if (row, col) == ("Ours (RI = 500)", "Dataset (hours) / CIFAR-10"):
            assert got == pytest.approx(printed, abs=0.05)


def test_delt_pruning():
    # l.274: "it significantly surpasses previous methods such as SRe2L and RDED under IPC 10 and
    # 50"; the printed (+x) is the gain over RDED.
    t = table("delt", "table6")
    gains = table("delt", "table6", "top1_gain")
    for row in ("IPC 10", "IPC 50"):
        assert t[(row, "Ours")] > max(t[(row, "SRe2L [11]")], t[(row, "RDED [15]")])
        assert t[(row, "Ours")] - t[(row, "RDED [15]")] == pytest.approx(
            gains[(row, "Ours")], abs=1e-6
        )


def test_inferred_cells_are_marked():
    """The cells whose IPC or student the paper does not state: CDA's ablations (Tables 2, 3, 11,
    18) and DELT Table 3b by IPC, every low-resolution ResNet by student; nothing else."""
    ablations = {("cda", "table2"), ("cda", "table3"), ("cda", "table11"), ("cda", "table18"),
                 ("delt", "table3b")}  # fmt: skip
    for r in rows():
        kinds = set(filter(None, r["inferred"].split(";")))
        assert ("ipc" in kinds) == ((r["paper"], r["table"]) in ablations), r
        assert ("student" in kinds) == r["student"].endswith("_lowres"), r


def test_frontier_headlines():
    """G-VBSM's abstract (38.7 / 47.6 / 31.4: CIFAR-100 IPC 10 ConvNet, Tiny IPC 50, ImageNet-1K
    IPC 10 ResNet-18) and EDC's (ImageNet-1K ResNet-18 IPC 10: 48.6), as the issue quotes both
    methods at IPC 10 / 50 (G-VBSM 31.4 / 51.8, EDC 48.6 / 58.0)."""
    assert cell("gvbsm", "table5", "CIFAR-100 / 10", "ConvNet-W128") == 38.7
    assert cell("gvbsm", "table4", "Tiny-ImageNet / 50", "ResNet-18") == 47.6
    assert [cell("gvbsm", "table4", f"ImageNet-1K / {i}", "ResNet-18") for i in (10, 50)] == [
        31.4, 51.8]  # fmt: skip
    assert [cell("edc", "table1", f"ImageNet-1K / {i}", "ResNet-18") for i in (10, 50)] == [
        48.6, 58.0]  # fmt: skip
    # part 2's headline (issue: FADRM+ 50.0 / 60.1, CV-DD 46.0 / 59.5, CIM 48.7 / 60.4, LPLD
    # 46.7 at IPC 50 with 40x fewer labels)
    assert [cell("fadrm", "table1", f"ImageNet-1K / {i}", "FADRM+ ResNet-18")
            for i in (10, 50)] == [50.0, 60.1]  # fmt: skip
    assert [cell("cvdd", "table1", f"ImageNet-1K / {i}", "CV-DD ResNet-18")
            for i in (10, 50)] == [46.0, 59.5]  # fmt: skip
    assert [cell("cim", "table2", f"ImageNet-1K / {i}", "ResNet-18") for i in (10, 50)] == [
        48.7, 60.4]  # fmt: skip
    assert cell("lpld", "table1", "ImageNet-1K / 50", "LPLD 40x") == 46.7
