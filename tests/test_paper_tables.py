"""Paper tables: which ddflow run fills which published cell, and how the table reads."""

import io
import json

import pandas as pd
import pytest

from ddflow.report.paper import (
    caption,
    experiment_cells,
    layout,
    load_published,
    match,
    render_table,
    write_paper,
)

PUBLISHED = """\
paper,table,row,col,dataset,method,ipc,student,setting,metric,value,std,uncertain,note
x,table1,Tiny IPC 50,SRe2L R18,tiny-imagenet,sre2l,50,resnet18,,top1,41.1,0.4,0,
x,table1,Tiny IPC 50,CDA R18,tiny-imagenet,cda,50,resnet18,,top1,48.7,,0,
x,table1,Tiny IPC 50,MTT R18,tiny-imagenet,mtt,50,resnet18,,top1,28.0,,0,
x,table1,Tiny IPC 100,CDA R18,tiny-imagenet,cda,100,resnet18,,top1,53.2,,1,garbled
x,table2,easy,0.4,imagenet1k,cda,,resnet18,crop_schedule=constant;min_scale=0.4,top1,30.0,,0,
x,table2,easy,0.8,imagenet1k,cda,,resnet18,crop_schedule=constant;min_scale=0.8,top1,20.0,,0,
x,table2,epochs,300,imagenet1k,cda,,resnet18,student_epochs=300,top1,25.0,,0,
"""


@pytest.fixture
def published():
    return load_published(io.StringIO(PUBLISHED))


def _experiment(name, methods, tables, **paper):
    return {
        "config": {
            "dataset": {"name": "cifar10-mini"},
            "teacher": {"arch": "convnet_d3"},
            "student": {
                "arch": "convnet_d3",
                "epochs": 300,
                "seeds": [0, 1],
                "labels": ["online", "stored"],
                "label_budget": [{}],
            },  # fmt: skip
            "methods": methods,
            "report": {"name": name, "paper": {"tables": tables, "scale": "mini", **paper}},
        }
    }


def _summary(rows, protocol="online"):
    """summary.csv rows: (method, kind, ipc, mean, std)."""
    return pd.DataFrame(
        [
            {
                "dataset": "cifar10-mini",
                "method": m,
                "kind": k,
                "ipc": ipc,
                "student": "convnet_d3",
                "protocol": protocol,
                "seeds": 2,
                "top1_last_mean": mean,
                "top1_last_std": std,
                "top1_best_mean": mean,
                "teacher_top1": 58.5,
                "random_top1_last_mean": 50.0,
            }
            for m, k, ipc, mean, std in rows
        ]
    )


def _cells(published_tables="x/table1"):
    methods = {
        "sre2l": {"kind": "sre2l", "iterations": 300},
        "cda": {"kind": "cda", "iterations": 300, "crop_schedule": "cosine"},
        "random": {"kind": "random"},
    }
    exp = _experiment(
        "t1", methods, [published_tables], dataset="tiny-imagenet", student="resnet18"
    )
    summary = _summary(
        [
            ("sre2l", "sre2l", 50, 38.0, 1.0),
            ("cda", "cda", 50, 45.5, 0.5),
            ("random", "random", 50, 44.0, 0.2),
        ]
    )
    return experiment_cells(summary, exp)


def test_a_run_fills_the_cell_of_its_kind_ipc_and_stand_in(published):
    m = match(published, _cells(), "x/table1").set_index("col")
    assert m.loc["SRe2L R18", "ddflow_mean"] == 38.0
    assert m.loc["CDA R18"].iloc[0]["ddflow_mean"] == 45.5  # IPC 50 row
    assert m.loc["CDA R18"].iloc[1]["ddflow_seeds"] == 0  # IPC 100: not run
    assert m.loc["MTT R18", "ddflow_seeds"] == 0  # not a ddflow kind


def test_without_the_stand_in_nothing_matches(published):
    cells = _cells()
    cells["paper_dataset"] = "cifar10-mini"
    assert (match(published, cells, "x/table1").ddflow_seeds == 0).all()


def test_the_layout_is_the_papers_with_quoted_and_reconstructed_cells_marked(published):
    grid = layout(match(published, _cells(), "x/table1"))
    assert list(grid.columns) == ["SRe2L R18", "CDA R18", "MTT R18"]
    assert list(grid.index) == ["Tiny IPC 50", "Tiny IPC 100"]
    assert grid.loc["Tiny IPC 50", "SRe2L R18"] == "**38.00 ± 1.00** / 41.1 ± 0.4 (-3.10)"
    assert grid.loc["Tiny IPC 50", "CDA R18"] == "**45.50 ± 0.50** / 48.7 (-3.20)"
    assert grid.loc["Tiny IPC 50", "MTT R18"] == "28 (quoted)"
    assert grid.loc["Tiny IPC 100", "CDA R18"] == "— / 53.2 †"
    assert grid.loc["Tiny IPC 100", "MTT R18"] == ""


def test_a_run_matching_no_cell_is_listed_not_dropped(published):
    md, _ = render_table(published, _cells(), "x/table1")
    assert "no published counterpart" in md and "| random " in md
    assert "teacher convnet_d3 at 58.50%" in md
    assert "cifar10-mini stands in for the paper's tiny-imagenet" in md


def test_settings_match_the_effective_method_and_student_config(published):
    base = {"kind": "cda", "crop_schedule": "constant", "max_scale": 1.0}
    methods = {
        "easy__min_scale_0p4": {**base, "min_scale": 0.4},
        "easy__min_scale_0p6": {**base, "min_scale": 0.6},
        "plain": {"kind": "cda", "crop_schedule": "cosine", "min_scale": 0.08},
    }
    exp = _experiment("t2", methods, ["x/table2"], dataset="imagenet1k", student="resnet18")
    summary = _summary(
        [
            ("easy__min_scale_0p4", "cda", 10, 31.0, 0.0),
            ("easy__min_scale_0p6", "cda", 10, 25.0, 0.0),
            ("plain", "cda", 10, 27.0, 0.0),
        ]
    )
    m = match(published, experiment_cells(summary, exp), "x/table2").set_index("col")
    assert m.loc["0.4", "ddflow_method"] == "easy__min_scale_0p4"
    assert m.loc["0.8", "ddflow_seeds"] == 0  # ddflow ran 0.6, the paper 0.8
    # student_epochs=300 is the student's recipe: every run fits, the plain (non-sweep) one
    # is not preferred for a cell with a setting, so the cell is ambiguous and left empty
    assert m.loc["300", "ambiguous"]
    md, _ = render_table(published, experiment_cells(summary, exp), "x/table2")
    assert "easy__min_scale_0p6" in md.split("no published counterpart")[1]


def test_one_run_shared_by_two_experiments_fills_its_cell_once(published):
    cells = pd.concat([_cells(), _cells().assign(experiment="t1-copy")], ignore_index=True)
    m = match(published, cells, "x/table1")
    assert not m.ambiguous.any()
    assert m.set_index("col").loc["SRe2L R18", "ddflow_mean"] == 38.0


def test_write_paper_writes_tables_and_cells(published, tmp_path):
    items = write_paper(_cells(), ["x/table1"], tmp_path, published)
    assert [i["path"] for i in items] == ["x-table1.md"]
    assert "2 of 4 published cells have a ddflow value" in items[0]["caption"]
    html = (tmp_path / "x-table1.html").read_text()
    assert "<b>38.00 ± 1.00</b>" in html
    cells = pd.read_csv(tmp_path / "cells.csv")
    assert json.loads(cells.method_config[1])["crop_schedule"] == "cosine"


def test_the_shipped_published_numbers_load():
    table = load_published()
    assert {"cda", "delt"} <= set(table.paper)
    assert table.value.notna().all()


def test_cda_figure5_draws_ddflow_curves_over_the_papers_points(tmp_path):
    """Table 18 (printed as Figure 5): the mini's milestones 0.25..1.0 beside the paper's."""
    from ddflow.config import DERIVED_KEYS, load_config

    from conftest import ROOT

    cfg = load_config(str(ROOT / "config/cda/table5_scheduler_milestone.mini.yaml"))
    for key in DERIVED_KEYS:
        cfg.pop(key)
    names = [m for m in cfg["methods"] if m != "random"]
    summary = _summary(
        [(m, "cda", 10, 40 + cfg["methods"][m]["milestone"], 0.5) for m in names]
        + [("random", "random", 10, 44.0, 0.1)]
    )
    summary["dataset"] = "cifar10-mini"
    cells = experiment_cells(summary, {"config": cfg})
    items = write_paper(cells, ["cda/table18"], tmp_path)
    assert [i["name"] for i in items] == ["cda/table18", "cda/figure5"]
    assert (tmp_path / "cda-figure5.png").stat().st_size > 20_000
    matched = pd.read_csv(tmp_path / "cda-table18.csv")
    filled = matched[matched.ddflow_seeds > 0]
    # the paper's milestones 0.5 and 1.0 of each scheduler are among the mini's 0.25..1.0
    assert len(filled) == 6 and set(filled.ddflow_mean) == {40.5, 41.0}
    assert set(filled.setting.str.extract(r"milestone=([\d.]+)")[0].astype(float)) == {0.5, 1.0}
    # the paper does not restate this ablation's IPC: every cell says ddflow inferred it
    md = (tmp_path / "cda-table18.md").read_text()
    assert "‡ = the paper does not state, ddflow infers its IPC" in md
    assert md.count("‡") == len(matched) + 1  # every cell, and the caption


def test_a_printed_gain_is_filled_with_ddflows_own_gain():
    published = load_published(
        io.StringIO(
            PUBLISHED.splitlines()[0]
            + "\ncda,table4,Tiny / 50,R18 / SRe2L,tiny-imagenet,sre2l,50,resnet18,,top1,41.1,,0,"
            + "\ncda,table4,Tiny / 50,R18 / Ours,tiny-imagenet,cda,50,resnet18,,top1,48.7,,0,"
            + "\ncda,table4,Tiny / 50,R18 / Ours,tiny-imagenet,cda,50,resnet18,,top1_gain,7.6,,0,\n"
        )
    )
    cells = _cells().assign(table="cda/table4")
    m = match(published, cells, "cda/table4").set_index("metric")
    assert m.loc["top1_gain", "ddflow_mean"] == pytest.approx(45.5 - 38.0)
    assert m.loc["top1_gain", "ddflow_std"] == pytest.approx((0.5**2 + 1.0**2) ** 0.5)


def test_with_several_protocols_a_cell_takes_online_labels_unless_it_names_them(published):
    methods = {"sre2l": {"kind": "sre2l", "iterations": 300}}
    exp = _experiment("p", methods, ["x/table1"], dataset="tiny-imagenet", student="resnet18")
    rows = [("sre2l", "sre2l", 50, 38.0, 1.0)]
    summary = pd.concat([_summary(rows), _summary([(*rows[0][:3], 30.0, 2.0)], "stored")])
    cells = experiment_cells(summary, exp)
    assert sorted(cells.protocol) == ["online", "stored"]
    m = match(published, cells, "x/table1").set_index("col")
    assert m.loc["SRe2L R18", "ddflow_mean"] == 38.0 and not m.loc["SRe2L R18", "ambiguous"]
    stored = published.copy()
    stored.loc[stored.col == "SRe2L R18", "setting"] = "labels=stored"
    assert match(stored, cells, "x/table1").set_index("col").loc["SRe2L R18", "ddflow_mean"] == 30
    assert "stored (FKD) soft labels" in caption("x/table1", cells[cells.protocol == "stored"])


def _incremental(steps, per_step=2):
    """incremental.csv rows of an experiment with `steps` steps: SRe2L and CDA, top-1 10*k+..."""
    return pd.DataFrame(
        [
            {"method": m, "kind": m, "ipc": 10, "protocol": "online", "step": k,
             "classes_seen": per_step * k, "runs": 3, "top1_mean": base + k, "top1_std": 0.5}
            for m, base in (("sre2l", 40.0), ("cda", 50.0))
            for k in range(1, steps + 1)
        ]
    )  # fmt: skip


def _cl_experiment(tables, steps):
    methods = {"sre2l": {"kind": "sre2l"}, "cda": {"kind": "cda"}}
    exp = _experiment("cl", methods, tables, dataset="tiny-imagenet", ipc={"10": 100})
    exp["config"]["incremental"] = {"steps": steps, "order_seed": 0, "every": 1}
    return exp


def test_incremental_results_fill_the_papers_step_k_with_their_own_step_k():
    published = load_published()
    summary = _summary([("cda", "cda", 10, 99.0, 0.0)])  # a student result never fills CL cells
    cells = experiment_cells(
        summary, _cl_experiment(["cda/table14", "cda/table15"], 5), {"incremental": _incremental(5)}
    )
    five = match(published, cells, "cda/table14").set_index(["row", "col"])
    # ddflow's step k (2k CIFAR classes) stands in for the paper's step k (40k Tiny classes)
    assert five.loc[("CDA (ours)", "# class 40"), "ddflow_mean"] == 51.0
    assert five.loc[("CDA (ours)", "# class 200"), "ddflow_mean"] == 55.0
    assert five.loc[("SRe2L", "# class 120"), "ddflow_mean"] == 43.0
    assert (five.ddflow_seeds == 3).all()
    ten = match(published, cells, "cda/table15")
    assert (ten.ddflow_seeds == 0).all()  # a 5-step run fills no 10-step cell
    md, _ = render_table(published, cells, "cda/table14")
    assert "Class-incremental learning in 5 steps" in md and "99.0" not in md


def test_pruned_students_fill_data_free_pruning_cells_and_its_printed_gain():
    published = load_published()
    methods = {m: {"kind": m} for m in ("sre2l", "rded", "delt", "random")}
    exp = _experiment("prune", methods, ["delt/table6"], dataset="imagenet1k", student="vgg11_bn")
    exp["config"]["pruning"] = {"ratio": 0.5, "scope": "global"}
    rows = [("sre2l", 10, 12.0), ("rded", 10, 14.0), ("delt", 10, 18.5), ("random", 10, 15.0)]
    pruning = _summary([(m, m, ipc, v, 0.3) for m, ipc, v in rows]).assign(
        student="convnet_d3 slimmed 0.5"
    )
    summary = _summary([(m, m, ipc, 90.0, 0.0) for m, ipc, _ in rows])
    cells = experiment_cells(summary, exp, {"pruning": pruning})
    assert set(cells.student) == {"convnet_d3"} and set(cells.application) == {"pruning"}
    m = match(published, cells, "delt/table6").set_index(["row", "col", "metric"])
    assert m.loc[("IPC 10", "Ours", "top1"), "ddflow_mean"] == 18.5
    assert m.loc[("IPC 10", "Ours", "top1_gain"), "ddflow_mean"] == pytest.approx(4.5)
    assert m.loc[("IPC 50", "Ours", "top1"), "ddflow_seeds"] == 0
    with pytest.raises(ValueError, match="no incremental results"):
        experiment_cells(summary, _cl_experiment(["cda/table14"], 5), {})


def test_a_paper_application_table_needs_its_application_block():
    import yaml

    from ddflow.config import ConfigError, validate_config

    from conftest import ROOT

    raw = yaml.safe_load((ROOT / "config" / "applications" / "applications.mini.yaml").read_text())
    validate_config(raw)
    raw.pop("incremental")
    with pytest.raises(ConfigError, match="cda/table14 is filled by the incremental application"):
        validate_config(raw)


def test_hours_tables_take_the_measured_recovery_and_squeeze_cost():
    published = load_published()
    methods = {"sre2l": {"kind": "sre2l"}, "cda": {"kind": "cda"},
               "delt": {"kind": "delt", "round_iterations": 500}}  # fmt: skip
    exp = _experiment("cost", methods, ["delt/table5", {"table": "cda/appendix_c",
                      "dataset": "imagenet1k"}], dataset="cifar10", ipc={"10": 50})  # fmt: skip
    summary = _summary([(m, m, 10, 50.0, 1.0) for m in methods])
    cost = pd.DataFrame(
        [{"method": m, "ipc": 10, "protocol": "online", "recover_wall_s": s,
          "recover_peak_mb": 2048.0, "device": "cuda"}
         for m, s in (("sre2l", 360.0), ("cda", 360.0), ("delt", 270.0))]
    )  # fmt: skip
    teacher = {"wall_s": 7200.0, "peak_rss_mb": 900.0, "peak_gpu_mb": 3072.0}
    cells = experiment_cells(summary, exp, cost={"table": cost, "teacher": teacher})
    m = match(published, cells, "delt/table5").set_index(["row", "col", "metric"])
    col = "Dataset (hours) / CIFAR-10"
    assert m.loc[("SRe2L [11]", col, "hours"), "ddflow_mean"] == pytest.approx(0.1)
    assert m.loc[("Ours (RI = 500)", col, "hours"), "ddflow_mean"] == pytest.approx(0.075)
    assert m.loc[("Ours (RI = 500)", col, "hours_saving_pct"), "ddflow_mean"] == pytest.approx(25)
    assert m.loc[("Ours (RI = 1K)", col, "hours"), "ddflow_seeds"] == 0  # RI 1K not run
    assert m.loc[("CDA [12]", "Dataset (hours) / ImageNet-1K", "hours"), "ddflow_seeds"] == 0
    c = match(published, cells, "cda/appendix_c").set_index(["row", "col"])
    row = "ImageNet-1K recovery, IPC 50 (1x A100 40G)"
    assert c.loc[(row, "hours"), "ddflow_mean"] == pytest.approx(0.1)
    assert c.loc[(row, "peak GPU memory (GB)"), "ddflow_mean"] == pytest.approx(2.0)
    md, _ = render_table(published, cells, "delt/table5")
    assert "**0.075** / 0.083" in md
    assert caption("cda/appendix_c", cells).startswith("CDA (Yin & Shen, Dataset Distillation in "
                                                        "Large Data Era), Appendix C.")  # fmt: skip


def test_cells_naming_a_recovery_or_relabel_model_take_runs_of_that_teacher():
    published = load_published()
    methods = {"cda": {"kind": "cda"}}
    exp = _experiment("dn", methods, ["cda/table7", {"table": "cda/table19"}],
                      dataset="imagenet1k", student="resnet18")  # fmt: skip
    exp["config"]["teacher"] = {"arch": "torchvision:densenet121"}
    cells = experiment_cells(_summary([("cda", "cda", 50, 51.0, 0.5)]), exp)
    t7 = match(published, cells, "cda/table7").set_index(["row", "col"])
    r18 = "Validation Model / R18"
    assert t7.loc[("DenseNet-121 (Ours)", r18), "ddflow_mean"] == 51.0
    assert t7.loc[("ResNet-18 (Ours)", r18), "ddflow_seeds"] == 0  # recovered with ResNet-18
    t19 = match(published, cells, "cda/table19").set_index(["row", "col"])
    assert t19.loc[("DenseNet-121", r18), "ddflow_mean"] == 51.0  # relabelled by DenseNet-121
    assert t19.loc[("ResNet-18", r18), "ddflow_seeds"] == 0  # needs a ResNet-18 relabel model
    exp["config"]["teacher"] = {"arch": "convnet_d3"}  # a mini: its teacher stands in
    exp["config"]["report"]["paper"]["teacher"] = "densenet121"
    cells = experiment_cells(_summary([("cda", "cda", 50, 49.0, 0.5)]), exp)
    t7 = match(published, cells, "cda/table7").set_index(["row", "col"])
    assert t7.loc[("DenseNet-121 (Ours)", r18), "ddflow_mean"] == 49.0


def test_a_relabel_model_cell_takes_runs_labelled_by_that_model():
    published = load_published()
    exp = _experiment("r18", {"cda": {"kind": "cda"}}, ["cda/table19"], dataset="imagenet1k",
                      student="resnet18", teacher="densenet121")  # fmt: skip
    exp["config"]["student"]["relabel_model"] = {"arch": "torchvision:resnet18"}
    cells = experiment_cells(_summary([("cda", "cda", 50, 47.0, 0.5)]), exp)
    t19 = match(published, cells, "cda/table19").set_index(["row", "col"])
    assert t19.loc[("ResNet-18", "Validation Model / R18"), "ddflow_mean"] == 47.0
    assert t19.loc[("DenseNet-121", "Validation Model / R18"), "ddflow_seeds"] == 0


def test_a_parameter_count_cell_takes_the_trained_students_size():
    published = load_published()
    exp = _experiment("sq", {"cda": {"kind": "cda"}}, ["cda/table20"], dataset="imagenet1k",
                      student="squeezenet1_1")  # fmt: skip
    summary = _summary([("cda", "cda", 50, 19.0, 0.4)]).assign(student_params=1_235_496)
    m = match(published, experiment_cells(summary, exp), "cda/table20").set_index(["row", "col"])
    assert m.loc[("#Params (M)", "SqueezeNet"), "ddflow_mean"] == pytest.approx(1.235496)
    assert m.loc[("accuracy (%)", "SqueezeNet"), "ddflow_mean"] == 19.0
    assert m.loc[("#Params (M)", "AlexNet"), "ddflow_seeds"] == 0
    md, _ = render_table(published, experiment_cells(summary, exp), "cda/table20")
    assert "**1.24** / 1.2" in md


def _squeezed(name, init, recipe=True, **teacher):
    exp = _experiment(name, {"cda": {"kind": "cda"}}, [{"table": "cda/table5",
                      "dataset": "imagenet21k", "teacher": "resnet18"}])  # fmt: skip
    cda = {"optimizer": "adam", "label_smoothing": 0.2, "cutout": 0.5,
           "randaugment": "rand-m9-mstd0.5"} if recipe else {}  # fmt: skip
    exp["config"]["teacher"] = {
        "arch": "torchvision:resnet18", "epochs": 80, "lr": 3e-4, "batch_size": 1024,
        "weight_decay": 1e-4, **cda, **({"init": init} if init else {}), **teacher,
    }  # fmt: skip
    return exp


def test_a_squeeze_table_takes_the_trained_teachers_top1_top5_and_gain_over_the_quoted_row():
    published = load_published()
    summary = _summary([("cda", "cda", 10, 20.0, 1.0)])
    columns = ["method", "ipc", "protocol", "recover_wall_s", "recover_peak_mb", "device"]
    cost = {
        "table": pd.DataFrame(columns=columns),
        "teacher": {"wall_s": 3600.0, "peak_rss_mb": 1.0},
    }
    in1k = experiment_cells(summary, _squeezed("a", {"pretrained": "IMAGENET1K_V1"}), cost=cost,
                            teacher={"test_top1": 37.0, "test_top5": 66.0})  # fmt: skip
    rnd = experiment_cells(summary, _squeezed("b", None), cost=cost,
                           teacher={"test_top1": 39.0, "test_top5": 68.5})  # fmt: skip
    sgd = experiment_cells(summary, _squeezed("c", None, recipe=False), cost=cost,
                           teacher={"test_top1": 30.0, "test_top5": 60.0})  # fmt: skip
    cells = pd.concat([in1k, rnd, sgd])
    assert set(cells.kind) == {"full"}  # a squeeze table takes no distilled-set run
    m = match(published, cells, "cda/table5").set_index(["row", "col", "metric"])
    top1, top5 = "Top-1 Acc. (%)", "Top-5 Acc. (%)"
    assert m.loc[("ResNet-18 (Ours) / ImageNet-1K", top1, "top1"), "ddflow_mean"] == 37.0
    assert m.loc[("ResNet-18 (Ours) / ImageNet-1K", top5, "top5"), "ddflow_mean"] == 66.0
    assert m.loc[("ResNet-18 (Ours) / Random", top1, "top1"), "ddflow_mean"] == 39.0  # not SGD's
    assert m.loc[("ResNet-50 (Ours) / Random", top1, "top1"), "ddflow_seeds"] == 0  # R18 only
    ridnik = m.loc[("Ridnik et al. (2021) / ImageNet-1K", top1, "top1")]
    assert ridnik.ddflow_seeds == 0 and ridnik.method == "ridnik2021"  # quoted
    md, _ = render_table(published, cells, "cda/table5")
    assert "| **37.00** / 38.1 (-1.10) | **66.00** / 67.2 (-1.20) |" in md
    assert "(published only)" in md and "squeezed by ddflow" in md
    assert "from IMAGENET1K_V1" in md and "from random initialisation" in md
    # the printed gains of the R50 rows: ddflow's R50 teacher over the quoted Ridnik value
    r50 = _squeezed("d", {"pretrained": "IMAGENET1K_V1"})
    r50["config"]["report"]["paper"]["tables"][0]["teacher"] = "resnet50"
    cells = experiment_cells(
        summary, r50, cost=cost, teacher={"test_top1": 43.0, "test_top5": 73.0}
    )
    m = match(published, cells, "cda/table5").set_index(["row", "col", "metric"])
    gain = m.loc[("ResNet-50 (Ours) / ImageNet-1K", top1, "top1_gain"), "ddflow_mean"]
    assert gain == pytest.approx(43.0 - 42.2)
    gain5 = m.loc[("ResNet-50 (Ours) / ImageNet-1K", top5, "top5_gain"), "ddflow_mean"]
    assert gain5 == pytest.approx(73.0 - 72.0)
    # a loaded teacher was not squeezed here: it fills nothing
    loaded = _squeezed("e", None)
    loaded["config"]["teacher"] = {"arch": "timm:resnet18", "checkpoint": "x.pth"}
    assert experiment_cells(summary, loaded, cost=cost, teacher={"test_top1": 1.0,
                            "test_top5": 2.0}).empty  # fmt: skip
