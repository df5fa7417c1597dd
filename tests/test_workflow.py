"""End to end on the tiny config, then rerun precision through Snakemake's dry-run API."""

import csv
import hashlib
import json
import os
import re
import signal
import subprocess
import time

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import ROOT, dry_run_plan, snakemake_cmd

pytestmark = pytest.mark.workflow
TINY = yaml.safe_load((ROOT / "tests" / "data" / "tiny.yaml").read_text())


def write_config(path, cfg):
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def planned(workdir, cfg) -> list[str]:
    return dry_run_plan(workdir, write_config(workdir / "plan.yaml", cfg))


def run_workflow(workdir, cfg):
    configfile = write_config(workdir / "config.yaml", cfg)
    out = subprocess.run(
        snakemake_cmd(workdir, configfile, "--cores", "2"), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return workdir


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return run_workflow(tmp_path_factory.mktemp("wf"), TINY)


def files(workdir, pattern):
    return sorted(str(p.relative_to(workdir)) for p in workdir.glob(pattern))


def test_full_run_outputs(run):
    table = (run / "results/tiny/tables/summary.csv").read_text().splitlines()
    assert table[0].startswith("dataset,method,kind,ipc,student,protocol,sets,seeds,top1_last_mean")
    assert {row.split(",")[1] for row in table[1:]} == {"sre2l", "random"}
    for fig in ["student_curves.png", "grid-sre2l-ipc2.png", "grid-random-ipc2.png"]:
        assert (run / "results/tiny/figures" / fig).stat().st_size > 1000
    assert not (run / "results/tiny/figures/crop_schedules.png").exists()  # no curriculum here
    [manifest_path] = run.glob("results/tiny/distilled/sre2l-*/ipc2/manifest.json")
    manifest = json.loads(manifest_path.read_text())
    assert manifest["n_images"] == 20 and manifest["classes"] == [str(i) for i in range(10)]
    assert manifest["stage"]["method"]["kind"] == "sre2l" and manifest["cost"]["shards"] == 2
    for entry in manifest["files"]:
        data = (manifest_path.parent / "images" / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    [student] = run.glob("results/tiny/students/sre2l-*/ipc2/student-*/seed0.json")
    result = json.loads(student.read_text())
    assert result["provenance"]["threads"] == TINY["runtime"]["threads"]
    assert 0 <= result["top1_last"] <= 100 and len(result["curve"]) == 2
    assert not list(run.glob("results/**/.*.tmp*")), "temp files left behind"
    # every training job's metrics beside its log: per epoch, per logged recovery step
    rows = list(csv.DictReader(student.with_name("seed0.metrics.csv").open()))
    trained = [r for r in rows if r["metric"] not in ("test_top1", "progress")]  # not file loops
    assert [(r["step"], r["metric"]) for r in trained] == [
        ("1", "train_loss"), ("2", "train_loss")]  # fmt: skip
    assert float(rows[-1]["value"]) == result["top1_last"] and rows[-1]["total"] == "2"
    [teacher] = run.glob("results/tiny/teacher/*/teacher.metrics.csv")
    assert {r["metric"] for r in csv.DictReader(teacher.open())} == {"train_loss", "test_top1"}
    shard = next(run.glob("results/tiny/recover/sre2l-*/logs/*.metrics.csv"))
    assert [r["step"] for r in csv.DictReader(shard.open()) if r["metric"] == "loss"] == [
        "2", "4", "5"]  # fmt: skip


def test_second_run_plans_nothing(run):
    assert planned(run, TINY) == []


def test_reordered_yaml_keys_plan_nothing(run):
    def reverse(x):
        return {k: reverse(x[k]) for k in reversed(list(x))} if isinstance(x, dict) else x

    assert planned(run, reverse(TINY)) == []


def test_raising_ipc_plans_only_new_shards_and_downstream(run):
    plan = planned(run, {**TINY, "ipc": [4]})
    shards = [p for p in plan if "/shards/" in p]
    assert [re.search(r"_i(\d{4})", p).group(1) for p in shards] == ["0002", "0003"]
    assert not [p for p in plan if "/teacher/" in p or "/data-" in p]
    rest = [p for p in plan if "/shards/" not in p]
    report = ("summary", "cost", "diversity", "student_curves", "experiment", "cells", "delt-")
    assert all("ipc4" in p or p.rsplit("/", 1)[1].startswith(report) for p in rest), rest
    assert len([p for p in rest if "/students/" in p]) == 2  # sre2l + random, one seed


def test_student_recipe_change_plans_only_students_and_report(run):
    plan = planned(run, {**TINY, "student": {**TINY["student"], "epochs": 3}})
    assert len([p for p in plan if "/students/" in p]) == 2
    others = [p for p in plan if "/students/" not in p]
    assert sorted(others) == [
        "results/tiny/experiment.yaml",
        "results/tiny/figures/student_curves.png",
        "results/tiny/paper/cells.csv",
        "results/tiny/paper/delt-table1.html",
        "results/tiny/paper/delt-table1.md",
        "results/tiny/tables/cost.csv",
        "results/tiny/tables/cost.md",
        "results/tiny/tables/summary.csv",
        "results/tiny/tables/summary.md",
    ]


def test_method_change_reruns_that_method_not_teacher_or_baseline(run):
    cfg = {**TINY, "methods": {"sre2l": {**TINY["methods"]["sre2l"], "r_bn": 0.05}}}
    plan = planned(run, cfg)
    assert len([p for p in plan if "/shards/" in p]) == 2
    assert not [p for p in plan if "/teacher/" in p or "/data-" in p or "random" in p]


def test_stale_id_path_is_refused(run):
    stale = "results/tiny/recover/sre2l-0000000000/shards/c00000-00010_i0000-0001.npz"
    out = subprocess.run(
        snakemake_cmd(run, run / "config.yaml", "-n", stale), capture_output=True, text=True
    )
    assert out.returncode != 0
    assert "is not the current config's id" in out.stdout + out.stderr


@pytest.mark.slow
def test_rgb_imagefolder_end_to_end(cifar_export, tmp_path):
    cfg = {
        **TINY,
        "dataset": {
            "name": "cifar",
            "source": "imagefolder",
            "root": str(cifar_export / "imagefolder"),
        },
        "methods": {"sre2l": {**TINY["methods"]["sre2l"], "iterations": 2, "flip": True}},
        "student": {**TINY["student"], "epochs": 1},
    }
    run_workflow(tmp_path, cfg)
    [manifest] = tmp_path.glob("results/cifar/distilled/sre2l-*/ipc2/manifest.json")
    m = json.loads(manifest.read_text())
    assert m["classes"][0] == "airplane" and m["files"][0]["file"].startswith("00000-airplane/")
    assert (tmp_path / "results/cifar/tables/summary.md").exists()


SWEEP = yaml.safe_load((ROOT / "tests" / "data" / "tiny_sweep.yaml").read_text())


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    return run_workflow(tmp_path_factory.mktemp("sweep"), SWEEP)


def with_grid(values):
    cfg = yaml.safe_load(yaml.safe_dump(SWEEP))
    cfg["sweeps"]["milestone"]["grid"]["milestone"] = values
    return cfg


def test_sweep_outputs(sweep_run):
    table = (sweep_run / "results/tinysweep/tables/sweep-milestone.csv").read_text().splitlines()
    assert table[0].startswith("dataset,method,milestone,kind,ipc")
    assert [row.split(",")[2] for row in table[1:]] == ["0.5", "1.0"]
    assert (sweep_run / "results/tinysweep/figures/sweep-milestone.png").stat().st_size > 1000
    assert planned(sweep_run, SWEEP) == []


def test_adding_a_variant_never_reruns_its_siblings(sweep_run):
    plan = planned(sweep_run, with_grid([0.5, 0.75, 1.0]))
    work = [p for p in plan if "/shards/" in p or "/students/" in p or "/distilled/" in p]
    assert work and all("milestone__milestone_0p75" in p for p in work), work


def test_changing_a_variant_reruns_only_that_variant(sweep_run):
    plan = planned(sweep_run, with_grid([0.4, 1.0]))
    work = [p for p in plan if "/shards/" in p or "/students/" in p or "/snapshots/" in p]
    assert work and all("milestone__milestone_0p4" in p for p in work), work


def test_snapshot_last_step_equals_the_recovered_image(sweep_run):
    import numpy as np
    from PIL import Image

    [snap] = sweep_run.glob("results/tinysweep/snapshots/milestone__milestone_1p0-*.npz")
    with np.load(snap) as z:
        images, steps, classes = z["images"], z["steps"].tolist(), z["classes"].tolist()
    assert steps == [0, 2, 4] and classes == [0, 7]
    [images_dir] = sweep_run.glob("results/tinysweep/distilled/milestone__milestone_1p0-*/ipc1")
    for ci, c in enumerate(classes):
        [png] = (images_dir / "images").glob(f"{c:05d}-*/*.png")
        assert np.array_equal(np.asarray(Image.open(png))[..., None], images[-1, ci])
    assert not np.array_equal(images[0], images[-1])


def test_delt_rded_and_measurements_end_to_end(tmp_path):
    cfg = yaml.safe_load((ROOT / "tests" / "data" / "tiny_delt.yaml").read_text())
    run = run_workflow(tmp_path, cfg)
    summary = (run / "results/tinydelt/tables/summary.csv").read_text()
    for method in ("delt", "delt_mosaic", "cda_real", "rded", "random"):
        assert f",{method}," in summary
    with (run / "results/tinydelt/tables/cost.csv").open() as f:
        cost = {r["method"]: r for r in csv.DictReader(f)}
    iterations = {m: int(r["image_iterations"]) for m, r in cost.items()}
    # image-iterations: DELT MI 6 / RI 2 at IPC 3 -> 6 + 4 + 2 per class; real-init CDA 3 x 4
    assert iterations["delt"] == 10 * (6 + 4 + 2) and iterations["cda_real"] == 10 * 3 * 4
    assert iterations["random"] == 0
    with open(run / "results/tinydelt/tables/diversity.csv") as f:
        diversity = list(csv.DictReader(f))
    assert len(diversity) == 5 and {r["classifier"] for r in diversity} == {"teacher"}
    assert all(0 <= float(r["top1_crops"]) <= 100 for r in diversity)  # CDA Table 9's columns
    # DELT's images are recorded with their steps, for the grid's order
    [manifest] = run.glob("results/tinydelt/distilled/delt-*/ipc3/manifest.json")
    steps = [f["iterations"] for f in json.loads(manifest.read_text())["files"]]
    assert steps[:3] == [6, 4, 2]
    assert (run / "results/tinydelt/figures/diversity.png").stat().st_size > 1000
    # the curriculum figures exist for runs with a curriculum (DELT's and CDA's cosine)
    assert (run / "results/tinydelt/figures/crop_schedules.png").stat().st_size > 1000
    ranking = np.load(next(run.glob("results/tinydelt/ranking/teacher-*.npz")))
    assert (
        ranking["scores"].shape == (200,)
        and ((ranking["scores"] >= 0) & (ranking["scores"] <= 1)).all()
    )
    assert planned(run, cfg) == []
    plan = planned(run, {**cfg, "ipc": [4]})
    delt_shards = [p for p in plan if "/delt-" in p and "/shards/" in p]
    # IPC-joint: new shards hold all 4 images of 15 // 4 = 3 consecutive classes
    assert [p.rsplit("/", 1)[1] for p in delt_shards] == [
        "c00000-00003_i0000-0004.npz",
        "c00003-00006_i0000-0004.npz",
        "c00006-00009_i0000-0004.npz",
        "c00009-00010_i0000-0004.npz",
    ]


def test_paper_table_holds_the_runs_and_the_published_cells(run):
    md = (run / "results/tiny/paper/delt-table1.md").read_text()
    assert "| CIFAR-10 / 10 " in md and "— / 43 ± 0.9" in md  # DELT's published cell, not run
    assert "ddflow's tiny stands in for the paper's cifar10" in md
    summary = csv.DictReader((run / "results/tiny/tables/summary.csv").open())
    unmatched = md.split("no published counterpart")[1]
    for row in summary:  # IPC 2 is in no published row: every run is listed, none dropped
        method, mean = row["method"], float(row["top1_last_mean"])
        assert re.search(rf"\| {method} .*\| +{mean:g} \|", unmatched), (method, unmatched)


def test_snakemake_report_shows_tables_and_figures_with_captions(run):
    out = subprocess.run(
        snakemake_cmd(run, run / "config.yaml", "--report", str(run / "report.html")),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    html = (run / "report.html").read_text()
    for item in ["summary.csv", "student_curves.png", "grid-sre2l-ipc2.png", "delt-table1.html"]:
        assert item in html
    assert "delt/table1 (mini)" in html  # grouped by paper table
    assert "Top-1 (%) of convnet_d3 students" in html  # the caption, rendered with the config


def test_one_command_per_paper_runs_its_configs_and_writes_an_index(run):
    """`ddflow paper delt mini`, in a working directory holding config/delt/*.mini.yaml."""
    configs = run / "config" / "delt"
    configs.mkdir(parents=True, exist_ok=True)
    (configs / "tiny.mini.yaml").write_text((run / "config.yaml").read_text())
    cmd = ["ddflow", "paper", "delt", "mini", "--", "-s", str(ROOT / "Snakefile"), "--cores", "2"]
    out = subprocess.run(cmd, cwd=run, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    paper = run / "results/papers/delt-mini"
    index = (paper / "index.md").read_text()
    assert "- [delt/table1](delt-table1.md): DELT, Table 1." in index
    assert "config/delt/tiny.mini.yaml" in index
    assert set(json.loads((paper / "timings.json").read_text())) == {"config/delt/tiny.mini.yaml"}
    table = (paper / "delt-table1.md").read_text()
    assert table == (run / "results/tiny/paper/delt-table1.md").read_text()  # one renderer
    out = subprocess.run(
        ["ddflow", "paper", "delt", "mini", "--only", "nothing"], cwd=run, capture_output=True
    )
    assert out.returncode == 2 and b"--only ['nothing']: no match" in out.stderr


def test_named_report_reuses_every_result_and_writes_only_its_own_tables(run):
    plan = planned(run, {**TINY, "report": {"name": "exp_a"}})
    assert "results/tiny/reports/exp_a/tables/summary.csv" in plan
    assert all("/reports/exp_a/" in p for p in plan), plan


def _photo_dataset(root, classes, n_train, n_val):
    """A folder like ImageNet's: WNID class folders of mixed-size JPEGs, train/ and val/."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        for c, wnid in enumerate(classes):
            (root / split / wnid).mkdir(parents=True)
            for i in range(n):
                w, h = rng.integers(36, 80, size=2)
                arr = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
                arr[..., c % 3] += np.uint8(120 + 40 * (c // 3))  # a class-coloured photo
                Image.fromarray(arr).save(root / split / wnid / f"{wnid}_{i}.JPEG")


def test_imagenet_layout_with_file_storage_and_a_loaded_observer(tmp_path):
    """The ImageNet-100 recipe in small: files decoded on demand, a larger observer sliced."""
    import os

    import torch
    from PIL import Image

    from ddflow.data.datasets import load_bundle, resize_center_crop
    from ddflow.data.pixels import Normalizer
    from ddflow.models import build_model

    wnids = [f"n0{i}" for i in range(4)]
    _photo_dataset(tmp_path / "imagenet", wnids, n_train=8, n_val=3)
    observer_classes = ["n09", "n03", "n01", "n07", "n00", "n02"]  # its own order, a superset
    (tmp_path / "observer_classes.txt").write_text("\n".join(observer_classes) + "\n")
    torch.manual_seed(0)
    observer = build_model("convnet_d3", len(observer_classes), 3, (32, 32))
    torch.save({"model": observer.state_dict()}, tmp_path / "observer.pth")
    cfg = {
        "dataset": {
            "name": "in4",
            "source": "imagefolder",
            "root": str(tmp_path / "imagenet"),
            "image_size": 32,
            "storage": "files",
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
        },
        "teacher": {
            "arch": "convnet_d3",
            "checkpoint": str(tmp_path / "observer.pth"),
            "classes_file": str(tmp_path / "observer_classes.txt"),
        },
        # DELT's ImageNet-100 recipe: a separate (here: the same) larger model ranks the images
        "ranker": {
            "arch": "convnet_d3",
            "checkpoint": str(tmp_path / "observer.pth"),
            "classes_file": str(tmp_path / "observer_classes.txt"),
        },
        "ipc": [2],
        "methods": {
            "delt": {"kind": "delt", "iterations": 4, "round_iterations": 2, "jitter": 2},
            "rded": {"kind": "rded", "factor": 2, "candidates": 8},
        },
        "student": {"arch": "convnet_d3", "epochs": 1, "batch_size": 4, "seeds": [0]},
        "runtime": {"threads": 1},
    }
    (tmp_path / "wf").mkdir()
    run = run_workflow(tmp_path / "wf", cfg)
    [data_npz] = run.glob("results/in4/data-*/dataset.npz")
    with np.load(data_npz) as z:
        assert sorted(k for k in z.files if not k.startswith("__")) == [
            "test_kept",
            "test_paths",
            "test_stats",
            "test_y",
            "train_kept",
            "train_paths",
            "train_stats",
            "train_y",
        ]
    [metrics] = run.glob("results/in4/teacher/convnet_d3-*/metrics.json")
    source = json.loads(metrics.read_text())["source"]
    assert source["kind"] == "checkpoint" and source["class_rows"] == [4, 2, 5, 1]
    # the ranking is the ranker's softmax over its 6 classes, read at each image's class
    [ranking] = run.glob("results/in4/ranking/ranker-*.npz")
    bundle = load_bundle(data_npz, data_npz.parent / "meta.json")
    norm = Normalizer(bundle.mean, bundle.std)
    with torch.no_grad():
        probs = observer.eval()(norm.to_tensor(bundle.train_x[:])).softmax(1)
    rows = torch.tensor([4, 2, 5, 1])[torch.as_tensor(bundle.train_y)]
    scores = torch.as_tensor(np.load(ranking)["scores"])
    assert torch.allclose(scores, probs[torch.arange(len(rows)), rows], atol=1e-5)
    summary = (run / "results/in4/tables/summary.csv").read_text()
    assert all(f",{m}," in summary for m in ("delt", "rded", "random"))
    [manifest] = run.glob("results/in4/distilled/random-*/ipc2/manifest.json")
    picked = json.loads(manifest.read_text())["source_index"]
    # the random subset's first image is its source photo, resized and centre-cropped
    first = sorted((run / manifest.parent / "images").glob("00000-n00/*.png"))[0]
    with Image.open(tmp_path / "imagenet/train/n00" / f"n00_{picked[0]}.JPEG") as photo:
        expected = np.asarray(resize_center_crop(photo.convert("RGB"), 32))
    assert len(picked) == 8 and np.array_equal(np.asarray(Image.open(first)), expected)
    assert planned(run, cfg) == []
    # the unused training recipe of a loaded teacher changes nothing; a newer weights file reruns it
    # an unused key reruns nothing: only the run's record of its config is rewritten
    changed = planned(run, {**cfg, "teacher": {**cfg["teacher"], "epochs": 90}})
    assert changed == ["results/in4/experiment.yaml"]
    later = os.stat(tmp_path / "observer.pth").st_mtime + 60
    os.utime(tmp_path / "observer.pth", (later, later))
    assert any("/teacher/" in p for p in planned(run, cfg))


@pytest.mark.slow
def test_rgb_cifar_python_end_to_end_on_the_shipped_fixture(tmp_path):
    """Runs in CI without any external data: the shipped CIFAR-10 fixture (3 images a class)."""
    cfg = {
        **TINY,
        "dataset": {
            "name": "cifar",
            "source": "cifar10",
            "root": str(ROOT / "tests" / "data" / "cifar"),
        },
        "methods": {"sre2l": {**TINY["methods"]["sre2l"], "iterations": 2, "flip": True}},
        "student": {**TINY["student"], "epochs": 1},
    }
    run_workflow(tmp_path, cfg)
    [manifest] = tmp_path.glob("results/cifar/distilled/random-*/ipc2/manifest.json")
    m = json.loads(manifest.read_text())
    assert m["classes"][:2] == ["airplane", "automobile"] and m["n_images"] == 20
    [image] = [f for f in m["files"] if f["label"] == 1][:1]
    assert np.asarray(Image.open(manifest.parent / "images" / image["file"])).shape == (32, 32, 3)
    # how data is fetched and how jobs report progress rerun no stage: only the run's record
    # (the effective config) and the paper tables that quote it
    runtime = {**cfg["runtime"], "progress_every_s": 5, "logger": "tensorboard"}
    quiet = {**cfg, "dataset": {**cfg["dataset"], "download": True}, "runtime": runtime}
    plan = planned(tmp_path, quiet)
    assert "results/cifar/experiment.yaml" in plan
    assert [p for p in plan if "/paper/" not in p and not p.endswith("experiment.yaml")] == []


def _job_inputs(workdir, cfg) -> list[tuple[str, str, str]]:
    """(rule, output, input line) of every job a dry run would start."""
    configfile = write_config(workdir / "jobs.yaml", cfg)
    out = subprocess.run(snakemake_cmd(workdir, configfile, "-n"), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    jobs = re.findall(r"^rule (\w+):\n((?:    .*\n)+)", out.stdout, re.M)
    field = lambda body, k: (re.search(rf"^    {k}: (.*)$", body, re.M) or [None, ""])[1]  # noqa
    return [(rule, field(body, "output"), field(body, "input")) for rule, body in jobs]


PROTOCOLS = {
    **TINY,
    "student": {
        **TINY["student"],
        "labels": ["hard", "online", "stored", "hybrid"],
        "relabel_epochs_per_shard": 1,
    },
    "report": {"name": "protocols"},
}


def test_every_protocol_runs_and_only_online_labels_load_the_teacher(run):
    jobs = _job_inputs(run, PROTOCOLS)
    students = [(o, i) for rule, o, i in jobs if rule == "student"]
    assert len(students) == 2 * 3  # hard, stored, hybrid are new; online is the TINY run's
    relabels = [o for rule, o, _ in jobs if rule == "relabel"]
    names = sorted(r.split("/")[-1] for r in relabels)
    assert names == ["epochs0001-0001.npz"] * 2 + ["epochs0002-0002.npz"] * 2
    assert not [o for o, i in students if "teacher.pt" in i and "/labels/" in i]
    assert sum("teacher.pt" in i for _, i in students) == 2  # hybrid only (online already ran)
    assert sum("/labels/" in i for _, i in students) == 2
    run_workflow(run, PROTOCOLS)
    table = (run / "results/tiny/reports/protocols/tables/summary.csv").read_text()
    rows = list(csv.DictReader(table.splitlines()))
    assert sorted({r["protocol"] for r in rows}) == ["hard", "hybrid", "online", "stored"]
    for r in rows:
        gain = float(r["top1_last_mean"]) - float(r["random_top1_last_mean"])
        assert float(r["gain_over_random"]) == pytest.approx(gain, abs=0.011)
    cost = list(csv.DictReader((run / "results/tiny/reports/protocols/tables/cost.csv").open()))
    need = {(r["method"], r["protocol"]): r["teacher_at_training"] for r in cost}
    assert need[("sre2l", "stored")] == need[("random", "hard")] == "no"
    assert need[("sre2l", "online")] == need[("random", "hybrid")] == "yes"
    stored = [r for r in cost if r["protocol"] == "stored"]
    # 20 images x 2 epochs x 10 classes x fp16, plus each view's index, box, flip, CutMix
    assert all(int(r["label_bytes"]) > 20 * 2 * 10 * 2 for r in stored)
    # a smaller label budget reruns only the stored students; relabel is reused, and the
    # budget's files are made from its files
    plan = planned(run, {**PROTOCOLS, "student": {**PROTOCOLS["student"],
                                                 "label_budget": {"topk": 3}}})  # fmt: skip
    assert not [p for p in plan if "/distilled/" in p]
    labels = [p for p in plan if "/labels/" in p]
    assert len(labels) == 4 and all("/budget-" in p for p in labels)  # 2 sets x 2 ranges
    assert len([p for p in plan if "/students/" in p]) == 2


BUDGETS = {
    **PROTOCOLS,
    "student": {
        **PROTOCOLS["student"],
        "labels": ["stored"],
        "label_budget": [
            {},
            {"topk": 3, "dtype": "int8"},
            {"keep": 0.5, "keep_unit": "batch", "generate": "kept"},
        ],
    },
    "report": {"name": "budgets"},
}


def test_label_budgets_are_stored_at_their_size_and_swept(run):
    """Each budget's files hold what its students read, on disk; LPLD's pool labels only its
    batches (epoch 1 of 2: the first two of four batches, the second the last of its epoch, so
    only one is stored); the sweep's table lists every method and the random subset."""
    from ddflow.config import StageIds, validate_config
    from ddflow.forecast import label_bytes
    from ddflow.io import load_npz

    jobs = _job_inputs(run, BUDGETS)
    made = [(o.split("/budget-")[1], i) for rule, o, i in jobs if rule == "label_budget"]
    ids = StageIds(validate_config(yaml.safe_load(yaml.safe_dump(BUDGETS))))
    top, pool = (ids.budget(p) for p in ("stored-top3-int8", "stored-batches0.5"))
    assert sorted(k for k, _ in made) == sorted(
        [f"{top}/epochs0001-0001.npz", f"{top}/epochs0002-0002.npz",
         f"{pool}/epochs0001-0001.npz"] * 2
    )  # fmt: skip
    assert all("/relabel-" in i for k, i in made if k.startswith(top))
    assert not [i for k, i in made if k.startswith(pool) and "/relabel-" in i]
    run_workflow(run, BUDGETS)
    recipe = ids.protocols["stored-batches0.5"]
    for method in ("sre2l", "random"):
        folder = next(run.glob(f"results/tiny/labels/{method}-*/ipc2/relabel-*"))
        for protocol, budget in (("stored-top3-int8", top), ("stored-batches0.5", pool)):
            paths = sorted(folder.glob(f"budget-{budget}/*.npz"))
            arrays = [load_npz(p) for p in paths]
            label_keys = ("values", "q", "lo", "step", "index", "idx", "flips", "boxes", "mix",
                          "mix_perm", "batch_epoch", "batch_index", "batch_len")  # fmt: skip
            held = sum(a[k].nbytes for a in arrays for k in label_keys if k in a)
            assert held == label_bytes(ids.protocols[protocol]["label_budget"], recipe, 20, 10, 10)
            sid = ids.students[protocol]
            [result] = run.glob(f"results/tiny/students/{method}-*/ipc2/student-{sid}/seed0.json")
            read = json.loads(result.read_text())["labels"]
            assert read["label_bytes"] == sum(p.stat().st_size for p in paths)
            assert read["label_array_bytes"] == held < read["full_label_bytes"]
        [pool_file] = arrays
        assert pool_file["batch_epoch"].tolist() == [1] and pool_file["batch_index"].tolist() == [0]
    table = list(csv.DictReader((run / "results/tiny/reports/budgets/tables/label_budgets.csv")
                                .open()))  # fmt: skip
    assert {(r["method"], r["protocol"]) for r in table} == {
        (m, p) for m in ("sre2l", "random") for p in ("stored", "stored-top3-int8",
                                                    "stored-batches0.5")
    }  # fmt: skip
    for r in table:  # the arrays: FKD's exactly for the full labels, fewer for every budget
        array, full = int(r["label_array_bytes"]), int(r["full_label_bytes"])
        assert array == full if r["protocol"] == "stored" else array < full
        assert float(r["fewer_bytes"]) == round(full / array, 1)
    md = (run / "results/tiny/reports/budgets/tables/label_budgets.md").read_text()
    assert "| sre2l (IPC 2) " in md and "| random (IPC 2) " in md and "4x)" in md
    # export ships a budget's files as they are on disk, or every budget's
    pytest.importorskip("datasets", reason="pip install -e '.[test]' installs it")
    [set_dir] = run.glob("results/tiny/distilled/sre2l-*/ipc2")
    out = run / "export-pool"
    done = subprocess.run(["ddflow", "export", str(set_dir), str(out), "--labels",
                           "stored-batches0.5"], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    index = json.loads((out / "labels" / "index.json").read_text())
    [(where, entry)] = index.items()
    assert where.endswith(f"budget-{pool}") and entry["protocol"] == "stored-batches0.5"
    [shipped] = (out / "labels" / where).glob("*.npz")
    [source] = run.glob(f"results/tiny/labels/sre2l-*/ipc2/{where}/*.npz")
    assert shipped.read_bytes() == source.read_bytes() and entry["bytes"] == source.stat().st_size
    assert f"protocol `stored-batches0.5`, 1 file(s), {entry['bytes']:,} bytes" in (
        out / "README.md").read_text()  # fmt: skip
    every = run / "export-all"
    assert subprocess.run(["ddflow", "export", str(set_dir), str(every)]).returncode == 0
    protocols = {e["protocol"] for e in json.loads((every / "labels/index.json").read_text())
                 .values()}  # fmt: skip
    assert {"stored", "stored-top3-int8", "stored-batches0.5"} <= protocols
    wrong = subprocess.run(["ddflow", "export", str(set_dir), str(run / "x"), "--labels",
                            "stored-top7"], capture_output=True, text=True)  # fmt: skip
    assert wrong.returncode != 0 and "no stored labels of that protocol" in wrong.stderr


def test_coreset_and_external_kinds_end_to_end(run):
    """The rule gives each coreset kind the data and the teacher's cached features (one job for
    all), and the set holds exactly the library's per-class choice of real images; an external
    set's folder is read in class order at the data's size."""
    from ddflow.config import StageIds, validate_config
    from ddflow.select.coreset import by_score, herding, k_center_greedy

    released = run / "released"  # an external set: 2 grey images per class, at another size
    for c in range(10):
        (released / str(c)).mkdir(parents=True, exist_ok=True)
        for k in range(2):
            Image.new("L", (35, 35), 20 * c + k).save(released / str(c) / f"{k}.png")
    cfg = {**TINY, "methods": {"herding": {"kind": "herding"}, "kcenter": {"kind": "kcenter"},
                               "el2n": {"kind": "el2n", "keep": "easiest"},
                               "ext": {"kind": "external", "path": str(released)}}}  # fmt: skip
    ids = StageIds(validate_config(yaml.safe_load(yaml.safe_dump(cfg))))
    targets = [f"results/tiny/distilled/{m}-{ids.method(m)}/ipc2/manifest.json" for m in
               cfg["methods"]]  # fmt: skip
    configfile = write_config(run / "coresets.yaml", cfg)
    out = subprocess.run(
        snakemake_cmd(run, configfile, "--cores", "2", *targets), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert out.stdout.count("rule features:") + out.stderr.count("rule features:") == 1
    [features] = run.glob(f"results/tiny/features/teacher-{ids.teacher}-{ids.features}.npz")
    f = np.load(features)
    data = np.load(next(run.glob("results/tiny/data-*/dataset.npz")))
    assert (f["labels"] == data["train_y"]).all() and np.isfinite(f["features"]).all()
    pick = {
        "herding": lambda idx: herding(f["features"][idx], 2),
        "kcenter": lambda idx: k_center_greedy(f["features"][idx], 2),
        "el2n": lambda idx: by_score(f["el2n"][idx], 2, hardest=False),
    }
    ext = json.loads((run / targets[-1]).read_text())
    assert [f["label"] for f in ext["files"]] == [c for c in range(10) for _ in range(2)]
    last = Image.open(
        run / targets[-1].replace("manifest.json", "images") / ext["files"][-1]["file"]
    )
    assert np.asarray(last).shape == (28, 28) and np.asarray(last)[14, 14] == 181
    for method, target in zip(list(cfg["methods"])[:3], targets):
        manifest = json.loads((run / target).read_text())
        expect = []
        for c in range(10):
            idx = np.flatnonzero(data["train_y"] == c)
            expect += idx[pick[method](idx)].tolist()
        assert manifest["source_index"] == expect, method
        first = Image.open(run / target.replace("manifest.json", "images") /
                           manifest["files"][0]["file"])  # fmt: skip
        assert (np.asarray(first) == data["train_x"][expect[0]].squeeze()).all()


def test_a_newer_adapter_script_reruns_nothing_as_users_run(run):
    """A pulled or edited workflow script gets a new mtime; results follow stage ids, so the
    command line (with the workflow profile's rerun triggers) plans nothing."""
    import os

    for script in ("student.py", "select_set.py", "data.py"):
        os.utime(ROOT / "workflow" / "scripts" / script)
    out = subprocess.run(
        snakemake_cmd(run, write_config(run / "config.yaml", TINY), "-n"),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Nothing to be done" in out.stdout + out.stderr, out.stdout[-3000:]


@pytest.mark.slow
def test_synthesis_seeds_add_only_their_sets_and_reach_the_summary(run):
    """Adding seeds to a method (and to the baseline) plans only the new sets and their
    students; the summary pools each method's sets into one row with an interval over sets."""
    methods = {**TINY["methods"], "random": {"kind": "random", "seeds": [0, 1]}}
    methods["sre2l"] = {**methods["sre2l"], "seeds": [0, 1]}
    cfg = {**TINY, "methods": methods, "report": {"name": "seeds"}}
    plan = planned(run, cfg)
    students = sorted(p.split("/")[3].split("-")[0] for p in plan if "/students/" in p)
    assert students == ["random__seed1", "sre2l__seed1"]
    assert not [p for p in plan if "/teacher/" in p or "/data-" in p]
    run_workflow(run, cfg)
    [seeded] = run.glob("results/tiny/students/sre2l__seed1-*/ipc2/student-*/seed0.json")
    result = json.loads(seeded.read_text())
    assert (result["method"], result["set"], result["synthesis_seed"]) == (
        "sre2l",
        "sre2l__seed1",
        1,
    )
    rows = {r["method"]: r for r in csv.DictReader(
        (run / "results/tiny/reports/seeds/tables/summary.csv").open())}  # fmt: skip
    assert set(rows) == {"sre2l", "random"}
    assert (rows["sre2l"]["sets"], rows["sre2l"]["seeds"], rows["sre2l"]["ci_over"]) == (
        "2",
        "1",
        "sets",
    )
    assert rows["random"]["sets"] == "2" and rows["sre2l"]["gain_ci95_low"] != ""


def test_a_validation_split_selects_the_epoch_end_to_end(tmp_path):
    cfg = {**TINY, "dataset": {**TINY["dataset"], "val_per_class": 5}, "report": {}}
    run_workflow(tmp_path, cfg)
    [meta] = tmp_path.glob("results/tiny/data-*/meta.json")
    assert json.loads(meta.read_text())["n_val"] == 50
    [teacher] = tmp_path.glob("results/tiny/teacher/*/metrics.json")
    assert 0 <= json.loads(teacher.read_text())["val_top1"] <= 100
    [student] = tmp_path.glob("results/tiny/students/sre2l-*/ipc2/student-*/seed0.json")
    result = json.loads(student.read_text())
    assert result["val_selected_epoch"] in (1, 2)
    at = next(p for p in result["curve"] if p["epoch"] == result["val_selected_epoch"])
    assert result["top1_val_selected"] == at["test_top1"]
    rows = list(csv.DictReader((tmp_path / "results/tiny/tables/summary.csv").open()))
    assert all(r["top1_val_selected_mean"] != "" for r in rows)
    assert "top1_val_selected_mean" in (tmp_path / "results/tiny/tables/summary.md").read_text()


def test_status_follows_a_run_while_it_works_and_after_it_is_stopped(run, tmp_path):
    done = subprocess.run(["ddflow", "status"], cwd=run, capture_output=True, text=True).stdout
    assert "(not running)" in done and "0 running, 0 failed, 0 left" in done
    slow = {**TINY, "student": {**TINY["student"], "epochs": 3000, "eval_every": 1000}}
    proc = subprocess.Popen(
        snakemake_cmd(tmp_path, write_config(tmp_path / "c.yaml", slow), "--cores", "1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        # as in a terminal: a suite started in the background (`cmd &`) inherits SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            found = list(tmp_path.glob("results/tiny/students/*/*/*/seed0.metrics.csv"))
            # epochs under way (a set's file loop reports its own rows first)
            if found and found[0].read_text().count(",student seed 0,") > 2:
                break
            time.sleep(1)
        text = subprocess.run(["ddflow", "status"], cwd=tmp_path, capture_output=True,
                              text=True).stdout  # fmt: skip
        assert "(running now)" in text and "1 running" in text, text
        assert re.search(r"running: student .*; student seed 0: \d+/3000 \(\d+%\), ETA ", text)
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal: the run and its jobs
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    text = subprocess.run(["ddflow", "status"], cwd=tmp_path, capture_output=True, text=True)
    assert "(not running)" in text.stdout and "1 stopped by the user" in text.stdout
    assert re.search(r"stopped: student .*; student seed 0: \d+/3000", text.stdout), text.stdout


def test_the_python_api_runs_an_experiment_and_evaluates_a_folder(run):
    import ddflow.api as dd

    table = dd.distil(TINY, run, 2)  # everything is cached: the summary comes back
    assert set(table["method"]) == {"sre2l", "random"}
    released = run / "api_released"
    for c in range(10):
        (released / str(c)).mkdir(parents=True, exist_ok=True)
        for k in range(2):
            Image.new("L", (28, 28), 25 * c + k).save(released / str(c) / f"{k}.png")
    rows = dd.evaluate_folder(released, TINY, name="theirs", workdir=run, cores=2)
    assert set(rows["method"]) == {"theirs", "random"}
    theirs = rows.set_index("method").loc["theirs"]
    assert theirs["kind"] == "external" and 0 <= theirs["top1_last_mean"] <= 100
    assert (run / "results/tiny/reports/evaluate-theirs/tables/summary.md").is_file()
    assert not (run / ".ddflow").exists() and list(run.glob("results/.configs/config-*.yaml"))


def test_export_to_the_datasets_format_reloads_and_trains_a_student(run, tmp_path):
    """Offline: export the set, reload it with datasets, check teacher and card, train on it."""
    datasets = pytest.importorskip("datasets", reason="pip install -e '.[test]' installs it")
    import torch
    from safetensors.torch import load_file

    from ddflow import io
    from ddflow.config import load_config, student_protocols
    from ddflow.data.datasets import load_bundle
    from ddflow.distilled import read_distilled
    from ddflow.train.student import train_student

    [set_dir] = run.glob("results/tiny/distilled/sre2l-*/ipc2")
    out = subprocess.run(["ddflow", "export", str(set_dir), str(tmp_path / "exp")],
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    classes = [str(i) for i in range(10)]
    ds = datasets.load_from_disk(str(tmp_path / "exp" / "dataset"))
    assert len(ds) == 20 and ds.features["label"].names == classes
    images = np.stack([np.asarray(im)[..., None] for im in ds["image"]])
    original, labels, manifest = read_distilled(
        set_dir / "images", set_dir / "manifest.json", classes
    )
    assert np.array_equal(images, original) and ds["label"] == labels.tolist()
    state, meta = io.load_checkpoint(next(run.glob("results/tiny/teacher/*/teacher.pt")))
    exported = load_file(str(tmp_path / "exp" / "teacher.safetensors"))
    assert set(exported) == set(state) and all(torch.equal(exported[k], state[k]) for k in state)
    card = (tmp_path / "exp" / "README.md").read_text()
    assert card.startswith("---\ntask_categories:\n- image-classification\n")
    assert "# sre2l (sre2l): tiny, 2 images per class" in card
    assert f"test top-1 {meta['test_top1']:.2f}%" in card
    assert f"Stage ids: method `{manifest['method_id']}`" in card
    assert re.search(r"\| online \| convnet_d3 \| 1 x 1 \| \d+\.\d\d ± 0\.00 \|", card)
    assert "ddflow run config.yaml" in card
    cfg = load_config(str(tmp_path / "exp" / "config.yaml"))  # the experiment, runnable again
    recipe = {**student_protocols(cfg["student"])["online"], "labels": "hard"}
    [npz] = run.glob("results/tiny/data-*/dataset.npz")
    bundle = load_bundle(npz, npz.with_name("meta.json"))
    result = train_student(images, None, bundle, recipe, 0, torch.device("cpu"),
                           targets=np.asarray(ds["label"]))  # fmt: skip
    assert 0 <= result["top1_last"] <= 100 and len(result["curve"]) == recipe["epochs"]


@pytest.mark.slow
def test_class_incremental_learning_end_to_end(run):
    """Two steps on every set (random included): only the incremental runs and their report."""
    cfg = {**TINY, "incremental": {"steps": 2}, "report": {"name": "cl"}}
    plan = planned(run, cfg)
    assert not [p for p in plan if "/students/" in p or "/distilled/" in p or "/teacher/" in p]
    assert len([p for p in plan if "/incremental/" in p]) == 2  # sre2l and random, seed 0
    run_workflow(run, cfg)
    [result] = run.glob("results/tiny/incremental/sre2l-*/ipc2/student-*/cl-*/seed0.json")
    r = json.loads(result.read_text())
    assert [(s["classes_seen"], s["n_images"]) for s in r["steps"]] == [(5, 10), (10, 20)]
    from ddflow.applications.incremental import class_order

    assert r["order"] == class_order(10, 0).tolist() and r["method"] == "sre2l"
    table = (run / "results/tiny/reports/cl/tables/incremental.md").read_text()
    assert "| 5 classes" in table and "| 10 classes" in table and "random (IPC 2, online)" in table
    assert (run / "results/tiny/reports/cl/figures/incremental.png").stat().st_size > 1000


def test_data_free_pruning_end_to_end(run):
    """Slim the tiny run's ConvNet teacher and retrain it on every set: only those jobs run."""
    cfg = {**TINY, "pruning": {"ratio": 0.5}, "report": {"name": "prune"}}
    plan = planned(run, cfg)
    assert not [p for p in plan if "/students/" in p or "/distilled/" in p or "/teacher/" in p]
    assert len([p for p in plan if "/pruned/" in p]) == 2  # sre2l and random, seed 0
    run_workflow(run, cfg)
    [result] = run.glob("results/tiny/pruned/sre2l-*/ipc2/student-*/prune-*/seed0.json")
    r = json.loads(result.read_text())
    p = r["pruning"]
    assert p["channels_before"] == [128, 128, 128] and sum(p["channels"]) < 384 / 2 + 1
    assert r["student"] == "convnet_d3 slimmed 0.5" and 0 <= r["top1_last"] <= 100
    table = (run / "results/tiny/reports/prune/tables/pruning.md").read_text()
    assert table.startswith("Data-free slimming at ratio 0.5 (global threshold): ")
    assert "| sre2l " in table and "| random " in table


@pytest.mark.slow
def test_slimming_a_loaded_network_of_its_own_renders_delt_table6(run):
    """DELT Table 6's shape: the slimmed network is loaded (not the recovery teacher), teaches
    its pruned copy, and its results fill the paper's table beside the published numbers."""
    import torch

    from ddflow.io import load_checkpoint

    [ckpt] = run.glob("results/tiny/teacher/*/teacher.pt")
    state, _ = load_checkpoint(str(ckpt))
    torch.save(state, run / "network.pt")
    network = {"arch": "convnet_d3", "checkpoint": str(run / "network.pt")}
    paper = {"tables": ["delt/table6"], "scale": "mini", "dataset": "imagenet1k",
             "student": "vgg11_bn", "ipc": {"2": 10}}  # fmt: skip
    cfg = {**TINY, "pruning": {"network": network}, "report": {"name": "net", "paper": paper}}
    run_workflow(run, cfg)
    results = run.glob("results/tiny/pruned/sre2l-*/ipc2/student-*/prune-*/seed0.json")
    runs = [json.loads(p.read_text()) for p in results]
    [r] = [r for r in runs if r["pruning"]["network"]["kind"] == "checkpoint"]
    assert r["pruning"]["top1_unpruned"] >= 0
    table = (run / "results/tiny/reports/net/paper/delt-table6.md").read_text()
    assert "ddflow's tiny stands in for the paper's imagenet1k" in table
    assert "retrained from its kept weights" in table and "**" in table  # a filled cell


@pytest.mark.slow
def test_a_relabel_model_with_the_teachers_weights_labels_exactly_as_the_teacher(run):
    """student.relabel_model (CDA Table 19): its own student id, and the loaded model labels.
    Loaded with the teacher's own weights, every student curve is the teacher-labelled one."""
    import torch

    from ddflow.io import load_checkpoint

    [ckpt] = run.glob("results/tiny/teacher/*/teacher.pt")
    state, _ = load_checkpoint(str(ckpt))
    torch.save(state, run / "labeler.pt")
    labeler = {"arch": TINY["teacher"]["arch"], "checkpoint": str(run / "labeler.pt")}
    cfg = {**TINY, "student": {**TINY["student"], "relabel_model": labeler},
           "report": {"name": "labeler"}}  # fmt: skip
    plan = planned(run, cfg)
    assert [p for p in plan if "/students/" in p] and not [p for p in plan if "/distilled/" in p]
    run_workflow(run, cfg)
    from ddflow.config import StageIds, validate_config

    plain = StageIds(validate_config(TINY)).students["online"]
    relabelled = StageIds(validate_config(cfg)).students["online"]
    assert plain != relabelled

    def result(sid):
        [p] = run.glob(f"results/tiny/students/sre2l-*/ipc2/student-{sid}/seed0.json")
        return json.loads(p.read_text())

    assert result(relabelled)["curve"] == result(plain)["curve"]
