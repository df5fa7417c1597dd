"""A small Python API for notebooks: run an experiment, or evaluate a folder of images.

Both run the same Snakemake workflow as the command line (so results are cached and shared with
it by stage id) in a working directory, and return the experiment's summary table.

    import ddflow.api as dd
    table = dd.distil("config/config.yaml")
    table = dd.evaluate_folder("released/sre2l_ipc10", "my_experiment.yaml")
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from ddflow.checks import check_experiment
from ddflow.config import load_yaml, report_dir, short_hash, validate_config
from ddflow.errors import DdflowError

SNAKEFILE = Path(__file__).resolve().parents[2] / "Snakefile"


def _config(config: str | Path | dict) -> dict:
    return dict(config) if isinstance(config, dict) else load_yaml(str(config))


def _run(cfg: dict, workdir: Path, cores: str | int, extra: tuple[str, ...]) -> pd.DataFrame:
    validated = validate_config(cfg)  # a bad config fails here, naming the key
    check_experiment(validated, list_folders=True)  # and one that does not fit its data
    if not SNAKEFILE.is_file():
        raise DdflowError(
            f"the workflow is not beside this ddflow ({SNAKEFILE}): install it from a clone "
            "with pip install -e ."
        )
    workdir.mkdir(parents=True, exist_ok=True)
    # the config file the run reads, kept under results/ with everything the workflow writes
    path = workdir / "results" / ".configs" / f"config-{short_hash(cfg)}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory",
           str(workdir), "--configfile", str(path), "--cores", str(cores), *extra]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        log, text = path.with_suffix(".log"), out.stdout + out.stderr
        log.write_text(text)
        raise DdflowError(f"{failure(text, workdir)} (the workflow's output: {log})")
    return pd.read_csv(workdir / report_dir(validated) / "tables" / "summary.csv")


def failure(output: str, workdir: Path) -> str:
    """The line that says why a run failed: the failed job's own error, else Snakemake's."""
    from ddflow.status import last_error_line, parse_log

    run = parse_log(output)
    for job in run.failed[-1:]:
        cause = last_error_line(workdir / job.log) if job.log else ""
        where = f" (log: {workdir / job.log})" if job.log else ""
        return f"rule {job.rule} failed: {cause or 'see its log'}{where}"
    lines = [x.strip() for x in output.splitlines() if x.strip()]
    errors = [x for x in lines if "ddflow error" in x or "Error" in x]
    cause = (errors or lines or [""])[0]
    return f"the workflow failed: {cause}"


def distil(
    config: str | Path | dict, workdir: str | Path = ".", cores: str | int = "all", *extra: str
) -> pd.DataFrame:
    """Run an experiment (a config file or dict) to its tables; the summary rows."""
    return _run(_config(config), Path(workdir), cores, extra)


def evaluate_folder(
    folder: str | Path,
    config: str | Path | dict,
    name: str = "external",
    class_folders: str = "names",
    workdir: str | Path = ".",
    cores: str | int = "all",
) -> pd.DataFrame:
    """Someone's distilled set (`<class folder>/<image>` files) under an experiment's data,
    teacher, students and label protocols, beside the random subset: the summary rows."""
    cfg = _config(config)
    external = {"kind": "external", "path": str(Path(folder).resolve())}
    cfg["methods"] = {name: {**external, "class_folders": class_folders}}
    report = dict(cfg.get("report") or {})
    report.pop("paper", None)  # the folder is not one of a paper's methods
    report["name"] = report.get("name") or f"evaluate-{name}"
    cfg["report"] = report
    return _run(cfg, Path(workdir), cores, ())
