"""Every shipped config validates, and each ablation expands to the paper's grid."""

import pytest
import yaml

from ddflow.config import validate_config

from conftest import ROOT, dry_run_plan

CONFIGS = sorted((ROOT / "config").rglob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[str(p.relative_to(ROOT)) for p in CONFIGS])
def test_config_validates(path):
    validate_config(yaml.safe_load(path.read_text()))


@pytest.mark.parametrize(
    ("name", "variants"),
    [
        ("table5_scheduler_milestone.mini", 12),
        ("table5_scheduler_milestone.full", 30),
        ("table2_constant.mini", 12),
        ("table3_reverse.mini", 4),
        ("table11_beta_l.full", 6),
    ],
)
def test_ablation_grid_sizes(name, variants):
    cfg = validate_config(yaml.safe_load((ROOT / "config" / "cda" / f"{name}.yaml").read_text()))
    assert sum(len(m) for m in cfg["sweep_members"].values()) == variants


def test_mini_configs_share_one_teacher():
    from ddflow.config import StageIds

    ids = {
        StageIds(validate_config(yaml.safe_load(p.read_text()))).teacher
        for p in (ROOT / "config" / "cda").glob("*.mini.yaml")
    }
    assert len(ids) == 1


def test_cda_tiny_preset_matches_the_published_command():
    cfg = validate_config(
        yaml.safe_load((ROOT / "config" / "cda" / "table4_sre2l_vs_cda.full.yaml").read_text())
    )
    cda = cfg["methods"]["cda"]
    assert (cda["lr"], cda["r_bn"], cda["iterations"], cda["jitter"]) == (0.4, 0.05, 4000, 4)
    assert (cda["crop_schedule"], cda["milestone"], cda["min_scale"]) == ("cosine", 1.0, 0.08)
    assert cfg["methods"]["sre2l"]["r_bn"] == 1.0  # SRe2L's Tiny script


def _ids(name):
    from ddflow.config import StageIds

    cfg = validate_config(yaml.safe_load((ROOT / "config" / "delt" / f"{name}.yaml").read_text()))
    ids = StageIds(cfg)
    return cfg, {m: ids.method(m) for m in cfg["methods"]}


def test_delt_cross_arch_minis_reuse_the_table1_shards():
    _, table1 = _ids("table1_comparison.mini")
    students = set()
    for short in ("conv3", "resnet18", "mobilenet_v2"):
        cfg, ids = _ids(f"table4_cross_arch_{short}.mini")
        assert ids == table1  # same recovery: only student runs are new
        students.add(cfg["student"]["arch"])
        assert cfg["report"]["name"] == f"table4_cross_arch_{short}.mini"
    assert students == {"convnet_d3", "resnet18_lowres", "torchvision:mobilenet_v2"}


def test_delt_table3_full_expands_to_the_paper_grid():
    from ddflow.config import StageIds

    cfg, _ = _ids("table3_ablations.full")
    table1, _ = _ids("table1_imagenet1k.full")
    assert (
        StageIds(cfg).teacher == StageIds(table1).teacher
    )  # one pretrained teacher, one data stage
    sizes = {k: len(v) for k, v in cfg["sweep_members"].items()}
    assert sizes == {"patches": 5, "selection": 3, "mi_ri": 6, "early_late": 2, "init": 2}
    mosaic = cfg["methods"]["patches__init_mosaic__iterations_500__mosaic_factor_3"]
    assert (mosaic["round_iterations"], mosaic["lr"], mosaic["jitter"]) == (500, 0.25, 0)


def test_delt_tiny_row_shares_the_cda_tiny_teacher_and_shards():
    from ddflow.config import StageIds

    def load(path):
        cfg = validate_config(yaml.safe_load((ROOT / "config" / path).read_text()))
        return cfg, StageIds(cfg)

    delt_cfg, delt = load("delt/table1_tiny.full.yaml")
    cda_cfg, cda = load("cda/table4_sre2l_vs_cda.full.yaml")
    assert delt.teacher == cda.teacher
    for m in ("sre2l", "cda"):
        assert delt.method(m) == cda.method(m)
    assert delt_cfg["methods"]["delt"]["init"] == "real"


def _planned_fresh(tmp_path, name, root):
    """Every file a fresh run of a paper config would create, on a stand-in dataset root."""
    cfg = yaml.safe_load((ROOT / "config" / f"{name}.yaml").read_text())
    cfg["dataset"]["root"] = str(root)
    configfile = tmp_path / f"{name.replace('/', '_')}.yaml"
    configfile.write_text(yaml.safe_dump(cfg))
    return set(dry_run_plan(tmp_path, configfile))


@pytest.mark.workflow
def test_imagenet1k_configs_reuse_each_others_sets(tmp_path):
    """ImageNet-1K paper configs plan on a stand-in folder of 1,000 empty class folders."""
    root = tmp_path / "imagenet"
    for split in ("train", "val"):
        for c in range(1000):
            (root / split / f"n{c:08d}").mkdir(parents=True)
    table1 = _planned_fresh(tmp_path, "delt/table1_imagenet1k.full", root)
    shared = {p for p in table1 if "/distilled/" in p and "/ipc10/" in p}
    assert {p.split("/")[3].split("-")[0] for p in shared} == {
        "sre2l",
        "cda",
        "delt",
        "rded",
        "random",
    }
    assert any("/teacher/torchvision:resnet18-" in p for p in table1)
    archs = set()
    for short in ("resnet18", "efficientnet_b0", "mobilenet_v2", "mnasnet1_3", "regnet_y_8gf"):
        plan = _planned_fresh(tmp_path, f"delt/table4_cross_arch_{short}.full", root)
        cfg = validate_config(
            yaml.safe_load(
                (ROOT / "config/delt" / f"table4_cross_arch_{short}.full.yaml").read_text()
            )
        )
        archs.add(cfg["student"]["arch"])
        # everything but student runs and this table's report is planned by Table 1 already
        new = {p for p in plan - table1 if "/students/" not in p and "/reports/" not in p}
        assert not new, sorted(new)[:5]
        assert shared <= plan
    assert len(archs) == 5
    # CDA's ImageNet-1K Table 4 reuses the SRe2L/CDA sets of IPC 50 and 100 (and their shards)
    cda = _planned_fresh(tmp_path, "cda/table4_imagenet1k.full", root)
    reused = {p for p in cda & table1 if "/distilled/" in p}
    assert {(p.split("/")[3].split("-")[0], p.split("/")[4]) for p in reused} == {
        (m, f"ipc{i}") for m in ("sre2l", "cda", "random") for i in (50, 100)
    }
    assert any("/shards/c00900-01000_i0090-0100.npz" in p for p in cda & table1)


def test_imagenet1k_full_configs_share_one_data_stage_and_teacher():
    from ddflow.config import StageIds

    names = [
        "cda/table2_constant.full",
        "cda/table3_reverse.full",
        "cda/table4_imagenet1k.full",
        "cda/table5_scheduler_milestone.full",
        "delt/table1_imagenet1k.full",
        "delt/table3_ablations.full",
        *[f"delt/table4_cross_arch_{s}.full" for s in ("resnet18", "mobilenet_v2")],
    ]
    ids = {
        name: StageIds(
            validate_config(yaml.safe_load((ROOT / "config" / f"{name}.yaml").read_text()))
        )
        for name in names
    }
    assert len({i.teacher for i in ids.values()}) == 1
    assert all(i.cfg["teacher"]["pretrained"] == "IMAGENET1K_V1" for i in ids.values())


def test_a_paper_regenerates_its_own_configs_and_those_elsewhere_that_list_its_tables(
    monkeypatch,
):
    from ddflow.report.regenerate import paper_configs

    monkeypatch.chdir(ROOT)
    cda = [c.as_posix() for c in paper_configs("cda", "mini")]
    delt = [c.as_posix() for c in paper_configs("delt", "mini")]
    apps = "config/applications/applications.mini.yaml"
    assert apps in cda and apps in delt  # CDA Table 14 and DELT Table 6
    assert (
        "config/cda/table1_cifar.mini.yaml" in cda
        and "config/cda/table1_cifar.mini.yaml" not in delt
    )
    assert not [c for c in cda + delt if c.startswith(("config/baselines", "config/protocols"))]
    assert all(c.endswith(".mini.yaml") for c in cda + delt)


def test_a_paper_renders_only_its_own_tables_from_a_config_serving_both(tmp_path, monkeypatch):
    import pandas as pd

    from ddflow.config import load_config, report_dir
    from ddflow.report.regenerate import render_paper

    monkeypatch.chdir(tmp_path)
    cfg = load_config(str(ROOT / "config/applications/applications.mini.yaml"))
    cells = tmp_path / report_dir(cfg) / "paper" / "cells.csv"
    cells.parent.mkdir(parents=True)
    pd.DataFrame(
        columns=["experiment", "scale", "table", "method", "kind", "ipc", "student", "top1_mean"]
    ).to_csv(cells, index=False)
    items = render_paper("cda", "mini", {ROOT / "x.yaml": cfg}, tmp_path / "out", {})
    names = [i["name"] for i in items]
    assert names == ["cda/table14"] and (tmp_path / "out/cda-table14.md").exists()


def test_the_table5_configs_squeeze_four_teachers_one_per_published_row():
    from ddflow.config import StageIds
    from ddflow.report.paper import squeeze_settings

    rows = {}
    for path in sorted((ROOT / "config" / "cda").glob("table5_squeeze_*.full.yaml")):
        cfg = validate_config(yaml.safe_load(path.read_text()))
        ids = StageIds(cfg)
        (stand_in,) = cfg["report"]["paper"]["tables"]
        settings = squeeze_settings(cfg["teacher"])
        rows[(stand_in["teacher"], settings["teacher_init"])] = (ids.data, ids.teacher)
        assert settings["recipe"] == "cda" and cfg["teacher"]["label_smoothing"] == 0.2
        assert cfg["teacher"]["epochs"] == (80 if settings["teacher_init"] == "imagenet1k" else 140)
    assert set(rows) == {(a, i) for a in ("resnet18", "resnet50") for i in ("imagenet1k", "random")}
    assert len({d for d, _ in rows.values()}) == 1  # one data stage
    assert len({t for _, t in rows.values()}) == 4  # four squeezes


def test_the_table7_columns_share_their_rows_sets_and_differ_only_in_the_student():
    from ddflow.config import StageIds

    def ids(path):
        i = StageIds(validate_config(yaml.safe_load(path.read_text())))
        return {m: i.method(m) for m in i.cfg["methods"]}, i.cfg["student"]["arch"]

    cda = ROOT / "config" / "cda"
    for recovery, base in (("resnet18", "table4_imagenet1k"), ("densenet121", None)):
        files = sorted(cda.glob(f"table7_{recovery}_*.full.yaml"))
        sets = {tuple(sorted(ids(f)[0].items())) for f in files}
        if base:
            sets.add(tuple(sorted(ids(cda / f"{base}.full.yaml")[0].items())))
        assert len(sets) == 1, recovery  # one row's sets, shared
        students = [ids(f)[1] for f in files]
        assert len(set(students)) == len(students) == (6 if recovery == "resnet18" else 7)
