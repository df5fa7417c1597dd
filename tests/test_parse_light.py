"""Planning the workflow stays light: nothing imports torch while Snakefile parses.

Every `snakemake -n` and every cluster job re-parses the workflow; torch there costs seconds and
about 500 MB each time. A import hook (a sitecustomize on PYTHONPATH) records any import of torch
in the planning process, with the stack that asked for it.
"""

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, snakemake_cmd

HOOK = """
import os, sys, traceback
class _Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and os.environ.get("DDFLOW_TORCH_MARK"):
            with open(os.environ["DDFLOW_TORCH_MARK"], "a") as f:
                f.write("".join(traceback.format_stack(limit=25)) + "\\n")
        return None
sys.meta_path.insert(0, _Watch())
"""


def _plan_watched(tmp_path: Path, cfg: dict) -> tuple[subprocess.CompletedProcess, Path]:
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HOOK)
    mark = tmp_path / "torch_imported.txt"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    path_dirs = [str(hook), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "DDFLOW_TORCH_MARK": str(mark), "PYTHONPATH": os.pathsep.join(path_dirs)}
    out = subprocess.run(
        snakemake_cmd(tmp_path, path, "-n", "--quiet", "rules"),
        capture_output=True,
        text=True,
        env=env,
    )
    return out, mark


@pytest.mark.parametrize(
    "config",
    ["config/protocols/label_protocols.full.yaml", "config/delt/table1_imagenet1k.full.yaml"],
)
def test_planning_a_paper_config_never_imports_torch(tmp_path, config):
    """The ImageNet-1K plans (cuda device, stored labels, every method kind) on empty class
    folders: parsing reads the class list and nothing else."""
    cfg = yaml.safe_load((ROOT / config).read_text())
    data = tmp_path / "data"
    for split in ("train", "val"):
        for c in range(1000):  # ImageNet-1K's class count (the label budgets are checked on it)
            (data / split / f"n{c:08d}").mkdir(parents=True)
    cfg["dataset"]["root"] = str(data)
    out, mark = _plan_watched(tmp_path, cfg)
    assert out.returncode == 0, out.stderr[-3000:]
    assert not mark.exists(), f"torch was imported while planning:\n{mark.read_text()[-4000:]}"


def test_the_hook_sees_an_import_of_torch(tmp_path):
    """The guard itself can fail: a config file that imports torch is seen."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HOOK)
    mark = tmp_path / "m.txt"
    env = {**os.environ, "DDFLOW_TORCH_MARK": str(mark), "PYTHONPATH": str(hook)}
    subprocess.run(["python", "-c", "import torch"], env=env, check=True)
    assert "import torch" in mark.read_text() or "<string>" in mark.read_text()
