"""The CLI, the conda env file, the config docs and the linters, as a user meets them."""

import re
import shutil
import subprocess
import sys
import tomllib

import pytest
import yaml

from ddflow.cli import main
from ddflow.config import load_schema

from conftest import ROOT


def test_cli_check_and_plan(capsys):
    assert main(["check", str(ROOT / "config" / "config.yaml")]) == 0
    assert "teacher convnet_d3" in capsys.readouterr().out
    assert main(["plan", str(ROOT / "tests" / "data" / "tiny.yaml")]) == 0
    assert capsys.readouterr().out.count("  shard c00000-00010_i") == 2


def test_cli_bad_config_is_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "dataset: {name: x, source: mnist-embedded}\nteacher: {epochs: -1}\n"
        "ipc: [1]\nmethods: {a: {kind: sre2l}}\nstudent: {}\n"
    )
    assert main(["check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ddflow: error: config key 'teacher.epochs'") and "Traceback" not in err


def _names(specs):
    return {re.split(r"[<>=!\[ ]", s, maxsplit=1)[0].lower() for s in specs}


def test_conda_env_lists_the_package_dependencies():
    env = yaml.safe_load((ROOT / "envs" / "ddflow.yaml").read_text())
    conda = _names(d for d in env["dependencies"] if isinstance(d, str)) - {"python", "pip"}
    conda = {"torch" if n == "pytorch" else n for n in conda}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert conda == _names(project["dependencies"])


def _schema_keys(schema, prefix=""):
    for key, sub in schema.get("properties", {}).items():
        yield f"{prefix}{key}"
        yield from _schema_keys(sub, f"{prefix}{key}.")


def test_every_config_key_is_documented():
    schema = load_schema()
    doc = (ROOT / "config" / "README.md").read_text()
    keys = set(_schema_keys(schema))
    for name, sub in schema["$defs"].items():
        prefix = "methods.<name>." if name.endswith("_method") else f"student.{name}."
        keys |= {prefix + k for k in _schema_keys(sub)}
    missing = sorted(k for k in keys if f"`{k}`" not in doc)
    assert not missing, f"config/README.md does not document: {missing}"


@pytest.mark.parametrize(
    "cmd",
    [
        [sys.executable, "-m", "snakemake", "--lint"],
        ["snakefmt", "--check", "Snakefile", "workflow/rules"],
        ["ruff", "check", "src", "tests", "benchmarks", "workflow/scripts"],
        ["ruff", "format", "--check", "src", "tests", "benchmarks", "workflow/scripts"],
    ],
    ids=["snakemake-lint", "snakefmt", "ruff-check", "ruff-format"],
)
def test_linters_are_clean(cmd):
    if shutil.which(cmd[0]) is None:
        pytest.skip(f"{cmd[0]} is not installed (pip install -e '.[test]')")
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


def test_license_and_workflow_catalog_entry():
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert 'license = { text = "MIT" }' in (ROOT / "pyproject.toml").read_text()
    usage = yaml.safe_load((ROOT / ".snakemake-workflow-catalog.yml").read_text())["usage"]
    assert usage["software-stack-deployment"]["conda"] is True and usage["report"] is True
    assert "--configfile" in usage["mandatory-flags"]["flags"]


def test_check_takes_several_configs_and_a_bad_one_does_not_hide_the_rest(capsys, tmp_path):
    good = str(ROOT / "config" / "config.yaml")
    assert main(["check", good, str(tmp_path / "nope.yaml"), good]) == 2
    out = capsys.readouterr().out
    sections = out.split("== ")[1:]
    assert [s.splitlines()[0] for s in sections] == [good, str(tmp_path / "nope.yaml"), good]
    assert "data id" in sections[0] and sections[0] == sections[2]
    assert f"ddflow: error: config file '{tmp_path / 'nope.yaml'}' not found" in sections[1]
    assert main(["check", good]) == 0 and "== " not in capsys.readouterr().out
