"""The README's commands, run as a user runs them: from a copy of the repository root.

Tests elsewhere run in temporary folders without `config/config.yaml`; here the embedded default
sits where Snakemake finds it, so a default key leaking into an experiment shows up as an id that
`ddflow check` does not print.
"""

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from ddflow.config import DERIVED_KEYS, load_config

from conftest import ROOT

SHIPPED = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "config").rglob("*.yaml"))


def _features(path: str) -> set:
    """What a config's plan depends on: its kinds and starts, data source, storage and class
    list, model families and checkpoints, label protocols and options, applications."""
    c = yaml.safe_load((ROOT / path).read_text())
    ds, st = c.get("dataset", {}), c.get("student") or {}
    out = {("source", ds.get("source")), ("storage", ds.get("storage"))}
    out |= {("classes_file",)} if ds.get("classes_file") else set()
    for m in (c.get("methods") or {}).values():
        out |= {("kind", m.get("kind")), ("init", m.get("kind"), m.get("init"))}
    for t in [c.get("teacher") or {}, *(c.get("teachers") or {}).values()]:
        arch = str(t.get("arch", ""))
        out |= {("arch", arch.split(":")[0] if ":" in arch else "ddflow")}
        out |= {("checkpoint",)} if t.get("checkpoint") else set()
    labels = st.get("labels")
    out |= {("labels", x) for x in (labels if isinstance(labels, list) else [labels])}
    keys = ("relabel_model", "relabel_teachers", "label_budget", "relabel_bn", "augment")
    out |= {("student", k) for k in keys if st.get(k)}
    return out | {("top", k) for k in ("incremental", "pruning", "sweeps", "ranker") if c.get(k)}


def _covering(configs: list[str]) -> set[str]:
    """The configs that each add a feature the ones before them lack (in name order)."""
    seen, keep = set(), set()
    for path in configs:
        if _features(path) - seen:
            keep.add(path)
            seen |= _features(path)
    return keep


# The default run plans every mini and the full configs that between them take every feature a
# plan depends on (18 of 85); `-m slow` plans every full config.
PLANNED = _covering([p for p in SHIPPED if p.endswith(".full.yaml")])
PLAN_CASES = [
    c if not c.endswith(".full.yaml") or c in PLANNED else pytest.param(c, marks=pytest.mark.slow)
    for c in SHIPPED
]
# Stand-in dataset roots for the full configs' /path/to/... placeholders: empty class folders
# are all a plan reads.
STANDIN_CLASSES = {
    "imagenet": 1000,
    "imagenet100": 100,
    "tiny-imagenet-200": 200,
    "imagenette2": 10,
    # its real 10,450 classes would only slow the fixture: the ids and the plan's shape are what
    # this checks (benchmarks/dag_scale.py plans ImageNet-21K at full size)
    "imagenet21k": 1000,
}


def _images_needed() -> dict[str, int]:
    """The largest IPC each stand-in folder must hold a class, over the shipped configs."""
    needed = {}
    for path in SHIPPED:
        cfg = yaml.safe_load((ROOT / path).read_text())
        root = str(cfg["dataset"].get("root") or "")
        if root.startswith("/path/to/"):
            name = root.removeprefix("/path/to/").split("/")[0]
            needed[name] = max(needed.get(name, 1), *cfg["ipc"])
    return needed


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A copy of the repository as cloned, with the data folders a user would have."""
    base = tmp_path_factory.mktemp("clone")
    dst = base / "ddflow"
    local = {".git", "results", ".snakemake", "data"}  # a clone has none of the user's runs
    shutil.copytree(
        ROOT,
        dst,
        ignore=lambda d, names: [
            n
            for n in names
            if (d == str(ROOT) and n in local)
            or n == "__pycache__"
            or n.endswith((".egg-info", "_cache"))
        ],
    )
    (dst / "data" / "cifar10" / "cifar-10-batches-py").mkdir(parents=True)
    standin = base / "standin"
    per_class = _images_needed()
    for name, n in STANDIN_CLASSES.items():
        for split in ("train", "val"):
            for c in range(n):
                (standin / name / split / f"n{c:08d}").mkdir(parents=True)
        for c in range(n):  # empty files: `ddflow check` counts them against the IPC
            for i in range(per_class.get(name, 1)):
                (standin / name / "train" / f"n{c:08d}" / f"{i}.JPEG").touch()
    for sub in ("cifar-10-batches-py", "cifar-100-python"):
        (standin / "cifar" / sub).mkdir(parents=True)
    for path in SHIPPED:  # weight files the full configs load (CDA's ImageNet-21K models)
        for name in re.findall(r"/path/to/([\w.-]+\.pth)", (ROOT / path).read_text()):
            (standin / name).touch()
    (standin / "imagenet1k_wnids.txt").write_text(
        "".join(f"n{c:08d}\n" for c in range(STANDIN_CLASSES["imagenet"]))
    )
    for cfg in (dst / "config").rglob("*.yaml"):
        cfg.write_text(cfg.read_text().replace("/path/to/", f"{standin}/"))
    return dst


def _run(repo, *cmd):
    out = subprocess.run(cmd, cwd=repo, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


def _checked_ids(text):
    """Stage ids as `ddflow check CONFIG` prints them."""
    return {
        "data": re.search(r"data id ([0-9a-f]{10})", text).group(1),
        "teacher": set(re.findall(r"^teacher (?:\S+ )?\S+: \S+-([0-9a-f]{10})$", text, re.M)),
        "methods": dict(re.findall(r"^method (\S+) \(\w+\): \S+/\1-([0-9a-f]{10})", text, re.M)),
        "student": set(
            re.findall(
                r"(?:ids: |, )[\w.-]+ ([0-9a-f]{10})", re.search(r"^students .*", text, re.M)[0]
            )
        ),
    }


def _planned_ids(repo, *args):
    """Stage ids in the paths of a fresh dry run, as `snakemake -n [--configfile X]`."""
    text = _run(repo, sys.executable, "-m", "snakemake", "-n", *args)
    paths = set(re.findall(r"results/\S+", text))
    one = lambda pattern: {m for p in paths for m in re.findall(pattern, p)}  # noqa: E731
    return {
        "data": one(r"/data-([0-9a-f]{10})/"),
        "teacher": one(r"/teacher/[^/]+-([0-9a-f]{10})/"),
        "methods": dict(one(r"/distilled/([^/]+)-([0-9a-f]{10})/")),
        "student": one(r"/student-([0-9a-f]{10})/"),
    }


def _checked_all(repo, configs):
    """`ddflow check` of every config in one call (one import of the model libraries), its
    printout cut at each `== CONFIG` line."""
    out = subprocess.run(["ddflow", "check", *configs], cwd=repo, capture_output=True, text=True)
    parts = re.split(r"^== (\S+)\n", out.stdout, flags=re.M)
    texts = dict(zip(parts[1::2], parts[2::2]))
    if len(configs) == 1:  # one config: no == line, its error on stderr
        texts = {configs[0]: out.stdout + (out.stderr if out.returncode else "")}
    assert sorted(texts) == sorted(configs), out.stdout[-2000:] + out.stderr[-3000:]
    return texts


@pytest.fixture(scope="module")
def plans(repo, request):
    """The selected configs' ids from `ddflow check` and from `snakemake -n`, the dry runs one
    config per core at a time (each is mostly one core of Python; dry runs take no lock). A
    config's failure is kept and raised by its own test."""
    test = "test_snakemake_plans_the_ids_ddflow_check_prints"
    wanted = sorted({i.callspec.params["config"] for i in request.session.items
                     if getattr(i, "originalname", None) == test})  # fmt: skip
    checked = _checked_all(repo, wanted)

    def both(config):
        args = () if config == "config/config.yaml" else ("--configfile", config)
        try:
            if "ddflow: error:" in checked[config]:
                raise AssertionError(f"ddflow check {config}: {checked[config]}")
            return config, (_checked_ids(checked[config]), _planned_ids(repo, *args))
        except Exception as e:  # noqa: BLE001 (re-raised by the config's test)
            return config, e

    with ThreadPoolExecutor(len(os.sched_getaffinity(0))) as pool:
        return dict(pool.map(both, wanted))


@pytest.mark.workflow
@pytest.mark.parametrize("config", PLAN_CASES)
def test_snakemake_plans_the_ids_ddflow_check_prints(plans, config):
    if isinstance(plans[config], Exception):
        raise plans[config]
    checked, planned = plans[config]
    assert planned["data"] == {checked["data"]}
    assert planned["teacher"] == checked["teacher"]  # the teacher and every named one
    assert planned["methods"] == checked["methods"]
    assert planned["student"] == checked["student"]


@pytest.mark.workflow
@pytest.mark.parametrize(
    "config",
    [
        "config/config.yaml",
        "config/cda/table4_sre2l_vs_cda.mini.yaml",
        "config/cda/table2_constant.mini.yaml",
        "config/delt/table1_tiny.full.yaml",  # the ImageNet ones need CUDA to start
    ],
)
def test_the_run_records_exactly_its_config(repo, config):
    """experiment.yaml holds the validated config of the file given, nothing of the default."""
    args = () if config == "config/config.yaml" else ("--configfile", config)
    text = _run(repo, sys.executable, "-m", "snakemake", "--cores", "1", "experiment", *args)
    expected = load_config(str(repo / config))
    report = expected["report"]["name"]
    ds = expected["dataset"]["name"]
    path = repo / "results" / ds / (f"reports/{report}" if report else "") / "experiment.yaml"
    record = yaml.safe_load(path.read_text())
    for key in DERIVED_KEYS:
        expected.pop(key)
    assert record["config"] == expected
    assert f"ddflow: config {config};" in text
    assert f"effective config and ids: {path.relative_to(repo)}" in text
    printed = re.search(r"methods (.*?), students ", text).group(1).split(", ")
    assert sorted(printed) == sorted(f"{m}-{i}" for m, i in record["stage_ids"]["methods"].items())
    students = re.search(r"students (.*?); ", text).group(1).split(", ")
    assert students == [f"{p}-{i}" for p, i in record["stage_ids"]["students"].items()]


def test_the_default_is_not_merged_under_an_experiment(repo, tmp_path):
    """A key set only in config/config.yaml (here methods.sre2l) never reaches an experiment."""
    experiment = tmp_path / "only_random.yaml"
    experiment.write_text(
        yaml.safe_dump(
            {
                "dataset": {"name": "digits", "source": "mnist-embedded"},
                "teacher": {"arch": "convnet_d3"},
                "student": {"arch": "convnet_d3"},
                "ipc": [1],
                "methods": {"random": {"kind": "random"}},
            }
        )
    )
    planned = _planned_ids(repo, "--configfile", str(experiment))
    assert set(planned["methods"]) == {"random"}
    # --config overrides still apply on top of the default when no file is given
    override = ("--config", "report={name: probe}")
    planned = _planned_ids(repo, *override)
    assert set(planned["methods"]) == {"sre2l", "random"}
    text = _run(repo, sys.executable, "-m", "snakemake", "-n", *override)
    assert "results/mnist/reports/probe/tables/summary.md" in text
