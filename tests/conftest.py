import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "src"))


def with_key(cfg: dict, path: str, value) -> dict:
    """A deep copy of `cfg` with the dotted key `path` set to `value`."""
    import copy

    cfg = copy.deepcopy(cfg)
    *parents, last = path.split(".")
    node = cfg
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    return cfg


def write_set(folder, bundle, ipc: int = 3):
    """A distilled set of the first `ipc` x classes training images (images/, m.json), as the
    student and relabel stages read one; returns those images."""
    import numpy as np

    from ddflow.distilled import write_distilled

    n = len(bundle.classes)
    images = bundle.train_x[: n * ipc]
    write_distilled(
        str(folder / "images"), str(folder / "m.json"), images,
        np.repeat(np.arange(n), ipc), np.tile(np.arange(ipc), n), bundle.classes,
        {"ipc": ipc, "cost": {}},
    )  # fmt: skip
    return images


def snakemake_cmd(workdir, configfile, *extra) -> list[str]:
    """`python -m snakemake` on this repository's Snakefile, in a test working directory."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(configfile),
        *extra,
    ]


def dry_run_plan(workdir, configfile) -> list[str]:
    """The files a run would (re)create, from Snakemake's dry run in a fresh process."""
    import json
    import subprocess

    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests" / "_plan.py"),
            str(ROOT / "Snakefile"),
            str(workdir),
            str(configfile),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(autouse=True)
def _one_thread():
    """Fixed thread count: CPU float results (and so bytes) are compared across runs."""
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def cifar_export(tmp_path_factory):
    """Both on-disk CIFAR-10 layouts, 3 images a class, from the shared CIFAR-10 copy."""
    import subprocess

    script = SHARED_DATA / "export_cifar10.py"
    if not script.exists():
        pytest.skip(f"shared CIFAR-10 exporter not found at {script}")
    out = tmp_path_factory.mktemp("cifar")
    for fmt in ("imagefolder", "cifar-python"):
        subprocess.run(
            [sys.executable, str(script), str(out / fmt), "--format", fmt, "--per-class", "3"],
            check=True,
            capture_output=True,
        )
    return out


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The default run leaves the slow end-to-end tests out: say how many and how to run them."""
    if config.getoption("markexpr") == "not slow":
        deselected = terminalreporter.stats.get("deselected", [])
        left = sum(1 for item in deselected if item.get_closest_marker("slow"))
        if left:
            terminalreporter.write_line(
                f"{left} slow end-to-end tests were left out (-m 'not slow'); run them with: "
                "python -m pytest -m slow"
            )
