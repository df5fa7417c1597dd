"""`ddflow rehearse`: the stand-in keeps the shapes the code paths depend on and cuts only sizes;
its stand-in files load through ddflow's own readers; the default run rehearses one full config
end to end and the 21K class list through the data stage, and `-m slow` one full config per
distinct code path (`test_ci_rehearsals`)."""

import glob
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from ddflow.config import incremental_recipe, load_config, load_yaml, validate_config
from ddflow.rehearse import STANDIN_CLASSES, class_names, standin_config, write_data, write_weights

from conftest import ROOT

FULL = sorted(glob.glob(str(ROOT / "config/*/*.full.yaml")))


@pytest.mark.parametrize("path", FULL, ids=[Path(p).name for p in FULL])
def test_a_stand_in_keeps_every_shape_and_cuts_only_sizes(path, tmp_path):
    original = load_config(path)
    plan = standin_config(Path(path), tmp_path)
    cfg = validate_config(plan.config)
    ds, od = cfg["dataset"], original["dataset"]
    for key in ("source", "image_size", "storage", "mean", "std"):
        assert ds.get(key) == od.get(key), key
    assert ds["name"] == od["name"] + "-rehearsal"
    assert cfg["report"]["name"].endswith(".rehearsal")
    kinds = sorted({m["kind"] for m in cfg["methods"].values()})
    assert kinds == sorted({m["kind"] for m in original["methods"].values()})
    assert set(cfg["ipc"]) <= {1, 2} and len(cfg["ipc"]) == min(2, len(original["ipc"]))
    if "delt" in kinds:
        assert 2 in cfg["ipc"]  # EarlyLate rounds need two images a class
    for key in ("teacher", "student"):
        assert cfg[key]["arch"] == original[key]["arch"]
    assert cfg["student"]["labels"] == original["student"]["labels"]
    assert (cfg["incremental"] is None) == (original["incremental"] is None)
    assert (cfg["pruning"] is None) == (original["pruning"] is None)
    if original["report"]["paper"]:
        paper = cfg["report"]["paper"]
        assert (
            paper["scale"] == "rehearsal"
            and paper["tables"] == original["report"]["paper"]["tables"]
        )
        assert set(paper["ipc"]) == {str(i) for i in cfg["ipc"]}
    if sorted(original["ipc"]) != cfg["ipc"]:
        assert f"ipc: {sorted(original['ipc'])} -> {cfg['ipc']}" in plan.changes
    assert any(c.startswith("data: stand-in") for c in plan.changes)
    for key, w in plan.weights.items():  # a loaded model keeps its relation to the classes
        assert w["outputs"] == (1000 if w["classes_file"] or key == "teacher.init" else
                                plan.data["classes"])  # fmt: skip
    # Few shards whatever classes the source fixes: CIFAR-100 keeps its 100, where G-VBSM and
    # EDC cut their batch to two classes and rehearsed in 75 shard jobs of eight teachers each
    # (EDC 5,297 s). More than one, and at most LPLD's one class a shard (4 classes, 2 IPCs).
    from ddflow.methods import KINDS
    from ddflow.recover.shards import method_shards

    for name, method in cfg["methods"].items():
        if KINDS[method["kind"]].sharded:
            shards = method_shards(method, plan.data["classes"], cfg["ipc"])
            assert 1 < len(shards) <= 4 * len(cfg["ipc"]), (name, len(shards))


def test_the_changes_list_every_cut_key(tmp_path):
    plan = standin_config(ROOT / "config/delt/table1_imagenet1k.full.yaml", tmp_path)
    lines = "\n".join(plan.changes)
    assert "ipc: [10, 50, 100] -> [1, 2]" in lines
    assert "methods.sre2l.iterations: 4000 -> 2" in lines
    assert "methods.delt.round_iterations: 500 -> 1" in lines
    assert "student.epochs: 300 -> 2" in lines
    assert "teacher: stand-in weights for torchvision:resnet18 (random, 4 outputs" in lines
    assert "runtime.threads: 16 -> 1" in lines


def test_jobs_run_side_by_side_as_far_as_the_hosts_memory_holds_them():
    """One thread a job (the stand-in) and a mem_mb bound: a stand-in job's start dominates, so
    `--cores` runs them side by side, never more than the rules' mem_mb asks fit in memory."""
    from ddflow.rehearse import _memory_bound

    [flag, bound] = _memory_bound(["--dry-run"])
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    assert flag == "--resources" and bound == f"mem_mb={total}"
    assert _memory_bound(["--resources", "mem_mb=4000"]) == []
    assert _memory_bound(["--profile", "profiles/slurm"]) == []
    assert _memory_bound(["--resources=mem_mb=4000"]) == []


INCREMENTAL = [p for p in FULL if "incremental" in (load_yaml(p) or {})]


@pytest.mark.parametrize("path", INCREMENTAL, ids=[Path(p).name for p in INCREMENTAL])
def test_the_incremental_students_batch_and_rate_are_cut_as_the_students(path, tmp_path):
    """The incremental runs take SRe2L-CL's recipe (batch 256), not the student's: uncut, the
    figure-8 rehearsal trained each step's whole set in one 224-px batch (13 GB peak)."""
    full = validate_config(load_yaml(path))
    before = incremental_recipe(full["student"], full["incremental"])
    stand = validate_config(standin_config(Path(path), tmp_path).config)
    after = incremental_recipe(stand["student"], stand["incremental"])
    assert after["batch_size"] == 16 and after["epochs"] == 2
    assert after["lr"] == pytest.approx(before["lr"] * 16 / before["batch_size"])


def test_swept_sizes_are_cut_as_the_base_and_stay_distinct(tmp_path):
    """DELT Table 3 sweeps iterations 1,000-4,000 and rounds of 500-1,000: uncut, its rehearsal
    ran 4,000 steps a shard at 224 px (40 min for 3 of 93 jobs)."""
    plan = standin_config(ROOT / "config/delt/table3_ablations.full.yaml", tmp_path)
    sweeps = plan.config["sweeps"]
    assert sweeps["mi_ri"]["grid"] == {"iterations": [2, 3], "round_iterations": [1, 2]}
    assert sweeps["patches"]["grid"]["iterations"] == [2]
    assert sweeps["patches"]["grid"]["mosaic_factor"] == [1, 5]  # not a size: first and last
    for path in FULL:
        stand = standin_config(Path(path), tmp_path).config
        for name, sweep in (stand.get("sweeps") or {}).items():
            for key in ("iterations", "round_iterations"):
                assert max(sweep.get("grid", {}).get(key, [0])) <= 10, (path, name, key)


def test_every_rehearsed_method_finds_the_real_images_and_candidates_its_cells_need(tmp_path):
    """DELT Table 3a sweeps the mosaic factor to 5 (50 cells a class at IPC 2): its rehearsal
    failed with 2 candidates a class cut for the base's factor 1, on 16 stand-in images."""
    from ddflow.methods import KINDS
    from ddflow.rehearse import _kind_cut

    plan = standin_config(ROOT / "config/delt/table3_ablations.full.yaml", tmp_path)
    assert plan.config["sweeps"]["patches"]["base"]["mosaic_candidates"] == 2 * 5**2
    assert plan.data["train"] >= 2 * 5**2
    for path in FULL:
        plan = standin_config(Path(path), tmp_path)
        cfg, top = validate_config(plan.config), max(plan.config["ipc"])
        for name, method in cfg["methods"].items():
            kind = KINDS[method["kind"]]
            assert plan.data["train"] >= kind.images_needed(method, top), (path, name)
            for key, need in _kind_cut(method, top, plan.data["classes"]).items():
                if isinstance(need, int) and "candidates" in key:
                    assert method[key] >= need, (path, name, key)


def test_a_stand_in_keeps_the_budgets_that_set_every_budget_key(tmp_path):
    """A budget is a code path (top-k, int8, keep by epoch or batch, generate), not a size: the
    stand-in keeps the first and as few more as set every key and choice the list sets."""
    from ddflow.rehearse import _cut_budgets

    plan = standin_config(ROOT / "config/protocols/label_protocols.full.yaml", tmp_path)
    assert plan.config["student"]["label_budget"] == [{}, {"topk": 1, "dtype": "int8", "keep": 0.1}]
    batches = {"keep": 0.2, "keep_unit": "batch", "generate": "kept"}
    budgets = [{}, {"keep": 0.5}, {"topk": 5}, {"keep": 0.1, "keep_unit": "batch"},
               {"topk": 3, "keep": 0.2}, batches]  # fmt: skip
    assert _cut_budgets(budgets) == [budgets[0], budgets[4], budgets[5]]
    assert _cut_budgets({"topk": 5}) == {"topk": 5}


def test_a_squeezed_stand_in_teacher_stays_a_sane_labeller(tmp_path):
    """Its batch is cut to 8, so its rate follows (linear scaling): at the paper's 0.1 a
    2-epoch stand-in MobileNetV2 gives eval logits ~4e4 and a logit-matching student (EDC's MSE)
    diverges; scaled, its logits are those of a barely trained model."""
    import numpy as np
    import torch

    from ddflow.data.datasets import DatasetBundle
    from ddflow.train.teacher import train_teacher

    plan = standin_config(ROOT / "config/frontier/edc_tiny.full.yaml", tmp_path)
    changes = "\n".join(plan.changes)
    assert "teachers.mbv2.lr: 0.1 -> 0.00625" in changes  # batch 128 -> 8
    assert "student.lr: 0.1 -> 0.002" in changes  # batch 100 -> 2
    block = validate_config(plan.config)["teachers"]["mbv2"]
    assert (block["batch_size"], block["epochs"]) == (8, 2)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (64, 64, 64, 3), dtype=np.uint8), np.repeat(np.arange(4), 16)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    bundle = DatasetBundle(x, y, x[:8], y[:8], class_names(4), mean, std)
    model, _ = train_teacher(bundle, block, "cpu")
    batch = torch.tensor(x[:16]).permute(0, 3, 1, 2) / 255 - torch.tensor(mean)[:, None, None]
    with torch.no_grad():
        logits = model.eval()(batch / torch.tensor(std)[:, None, None])
    assert logits.abs().max() < 20


def _load(plan, key, cfg):
    from ddflow.models.pretrained import load_pretrained
    from ddflow.rehearse import _get

    classes = class_names(plan.data["classes"])
    block = _get(cfg, key)
    size = plan.data["image_size"] or plan.data["native"]
    ds = cfg["dataset"]
    return load_pretrained(block, classes, (3, size, size), ds["mean"], ds["std"],
                           keep_all_outputs=True, config_key=key)  # fmt: skip


def test_stand_in_weights_load_through_ddflows_loaders(tmp_path, monkeypatch):
    """torchvision's file in the scratch TORCH_HOME (never the user's), a checkpoint in one of
    the layouts ddflow reads, and a classes_file that slices 1,000 outputs to the data's."""
    plan = standin_config(ROOT / "config/delt/table1_imagenet100.full.yaml", tmp_path)
    cfg = write_weights(plan)
    assert plan.torch_home.is_relative_to(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(plan.torch_home))
    model, source = _load(plan, "ranker", cfg)
    assert source["outputs"] == 1000 and len(source["class_rows"]) == STANDIN_CLASSES
    assert source["class_rows"] != list(range(STANDIN_CLASSES))  # spread over the outputs
    plan = standin_config(ROOT / "config/delt/table2_convnet_imagenet1k.full.yaml", tmp_path)
    cfg = write_weights(plan)
    model, source = _load(plan, "teacher", cfg)
    assert source["kind"] == "checkpoint" and source["outputs"] == STANDIN_CLASSES


@pytest.mark.parametrize("source", ["cifar100", "imagefolder"])
def test_stand_in_data_reads_through_the_data_stage(tmp_path, source):
    from ddflow.data.datasets import prepare

    config = {"cifar100": "config/cda/table1_cifar100.full.yaml",
              "imagefolder": "config/cda/table17_cda_1k.full.yaml"}[source]  # fmt: skip
    plan = standin_config(ROOT / config, tmp_path)
    write_data(plan.data)
    ds = validate_config(plan.config)["dataset"]
    bundle = prepare(ds, str(tmp_path / "d.npz"), str(tmp_path / "m.json"))
    assert bundle.num_classes == plan.data["classes"]
    assert bundle.train_x.shape[1:3] == (ds.get("image_size") or 32,) * 2
    assert len(bundle.train_y) == plan.data["classes"] * plan.data["train"]


def test_a_rehearsal_that_ends_before_its_last_job_has_not_passed(tmp_path):
    """Snakemake can exit 0 with jobs left (seen with `--until teacher`: 4 of 48 steps, reported
    passed); without arguments that cut the DAG, that is not a pass."""
    from ddflow.rehearse import _failures

    def out(text):
        return subprocess.CompletedProcess([], 0, stdout=text, stderr="")

    stopped = out("1 of 48 steps (2%) done\n4 of 48 steps (8%) done\nComplete log(s): x\n")
    [line] = _failures(stopped, tmp_path)
    assert "4 of 48 jobs" in line
    assert _failures(stopped, tmp_path, cut=True) == []
    assert _failures(out("47 of 48 steps (98%) done\n48 of 48 steps (100%) done\n"), tmp_path) == []
    assert _failures(out("Nothing to be done (all requested files are present)\n"), tmp_path) == []


def test_a_stopped_rehearsal_of_many_configs_keeps_the_report_of_those_that_ended(
    tmp_path, monkeypatch
):
    """Rehearsing every full config is hours on a CPU: the report must not wait for the last."""
    import ddflow.rehearse as rh

    def fake_run(plan, workdir, cores, extra):
        if plan.source.name == "second.yaml":
            raise KeyboardInterrupt
        peaks = {"teacher": (900, None, 1)}
        return rh.Outcome(plan.source, workdir / "s.yaml", True, 12.0, [], peaks, [],
                          ["images a class: 16"], workdir / "log")  # fmt: skip

    monkeypatch.setattr(rh, "standin_config", lambda c, *a: SimpleNamespace(source=Path(c)))
    monkeypatch.setattr(rh, "run_one", fake_run)
    with pytest.raises(KeyboardInterrupt):
        rh.rehearse(["first.yaml", "second.yaml"], workdir=tmp_path)
    report = (tmp_path / "REHEARSAL.md").read_text()
    assert "| `first.yaml` | passed | 12 |" in report and "second.yaml" not in report
    assert "| teacher | 1 | 900 |  |" in report
    assert not list(tmp_path.glob(".REHEARSAL.md.tmp*"))


# One full config per distinct code path, in one scratch directory (they share its stages):
# every seed method kind with torchvision weights and file storage at 224 px, and pruning a
# loaded VGG-11-BN (delt table6); stored labels from sharded relabels and at budgets, LPLD's
# batch pools labelled alone (label_budgets); incremental on Tiny's 64-px array (table14); an
# RDED observer checkpoint with a ranker sliced by a classes_file (table2 ImageNet-100); a timm
# checkpoint (table6 batch 8); teacher.init with CDA's squeeze recipe (table5). The hard and
# hybrid protocols are the tiny workflow's (test_workflow.py): at paper scale they add only
# students. About 30 minutes on two cores, so the default run takes the first up to its stored
# labels (relabel, budgets, file storage, torchvision models) and `-m slow` all of them.
CI_CONFIGS = [
    "config/protocols/label_budgets.full.yaml",
    "config/cda/table14_incremental_tiny.full.yaml",
    "config/delt/table6_pruning_imagenet1k.full.yaml",
    "config/delt/table2_convnet_imagenet100.full.yaml",
    "config/cda/table6_batch_size_8.full.yaml",
    "config/cda/table5_squeeze_resnet18_imagenet1k.full.yaml",
    "config/frontier/gvbsm_imagenet1k.full.yaml",  # statistics of several teachers
    "config/frontier/cim_imagenet1k.full.yaml",
]


def _rehearse(workdir, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-m", "ddflow.cli", "rehearse", "--workdir", str(workdir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)


def _passed(out, workdir, configs):
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert f"{len(configs)} of {len(configs)} passed" in out.stdout
    report = (workdir / "REHEARSAL.md").read_text()
    assert report.count("| passed |") == len(configs)
    return report


@pytest.mark.workflow
def test_a_paper_scale_set_is_relabelled_stored_at_its_budgets_and_trains_students(tmp_path):
    """One full config end to end (224 px, file storage, a torchvision teacher loaded from a
    TORCH_HOME): data, teacher, recovery, assembly, sharded relabel, budget files, students on
    the stored labels, and the tables. Its 47 jobs run two at a time (one thread each)."""
    report = _passed(_rehearse(tmp_path, CI_CONFIGS[0]), tmp_path, CI_CONFIGS[:1])
    for rule in ("recover_shard", "relabel", "label_budget", "student", "label_budget_table"):
        assert f"| {rule} |" in report, rule
    [table] = tmp_path.glob("results/imagenet1k-rehearsal/reports/*/tables/summary.md")
    rows = [r for r in table.read_text().splitlines() if r.startswith("| imagenet1k-rehearsal")]
    assert {r.split("|")[2].strip() for r in rows} == {"random", "sre2l"}, rows


@pytest.mark.workflow
def test_the_21k_class_list_parses_and_reads_through_the_data_stage(tmp_path):
    big = _rehearse(tmp_path, "config/cda/table4_imagenet21k.full.yaml", "--classes", "10450",
                    "--images-per-class", "1", "--", "--until", "data")  # fmt: skip
    assert big.returncode == 0, big.stdout[-4000:] + big.stderr[-2000:]
    [meta] = tmp_path.glob("results/imagenet21k-rehearsal/data-*/meta.json")
    assert '"n_train": 10450' in meta.read_text()


@pytest.mark.slow
@pytest.mark.workflow
def test_ci_rehearsals(tmp_path):
    report = _passed(_rehearse(tmp_path, *CI_CONFIGS), tmp_path, CI_CONFIGS)
    assert "| recover_shard |" in report and "| relabel |" in report
    assert "| incremental |" in report and "| pruned_student |" in report
    assert "| stats |" in report  # G-VBSM's statistics passes
    [rendered] = tmp_path.glob("results/imagenet1k-rehearsal/reports/*pruning*/paper/*.md")
    assert rendered.read_text().startswith("# ") and "REHEARSAL" in rendered.read_text()
