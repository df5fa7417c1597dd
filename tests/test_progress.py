"""Progress lines with ETA, metrics.csv, TensorBoard, `ddflow status`, `ddflow run`, --version."""

import csv
import logging
import subprocess
import sys
import time
from importlib.metadata import version

import pytest

from ddflow import progress
from ddflow.progress import Tracker, configure, metrics_path
from ddflow.status import parse_log, status

from conftest import ROOT


@pytest.fixture(autouse=True)
def _closed():
    yield
    progress.close()


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_tracker_writes_every_value_and_logs_rate_and_eta(tmp_path, caplog):
    log = tmp_path / "seed0.log"
    configure(log, interval_s=3600)
    t = Tracker("student seed 0", 4, "epoch")
    with caplog.at_level(logging.INFO, logger="ddflow.progress"):
        t.update(1, train_loss=2.5)
        t.update(2, train_loss=2.0, test_top1=40.0)
        assert not caplog.records  # the interval has not passed
        t.update(4, train_loss=1.0)  # the end is always logged
    rows = _rows(tmp_path / "seed0.metrics.csv")
    assert metrics_path(log) == tmp_path / "seed0.metrics.csv"
    assert [(r["step"], r["metric"], float(r["value"])) for r in rows] == [
        ("1", "train_loss", 2.5), ("2", "train_loss", 2.0), ("2", "test_top1", 40.0),
        ("4", "train_loss", 1.0)]  # fmt: skip
    assert {r["task"] for r in rows} == {"student seed 0"} and {r["total"] for r in rows} == {"4"}
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("student seed 0: epoch 4/4 (100%), ") and "ETA 0m00s" in line
    assert line.endswith("; train_loss 1")
    configure(log)  # a rerun starts the file afresh
    assert _rows(tmp_path / "seed0.metrics.csv") == []


def test_progress_lines_come_at_the_interval_with_an_eta(caplog):
    configure(None, interval_s=0.05)
    t = Tracker("shard c00000-00010_i0000-0005", 100, "step")
    with caplog.at_level(logging.INFO, logger="ddflow.progress"):
        time.sleep(0.06)
        t.update(10, loss=3.0)
    [line] = [r.getMessage() for r in caplog.records]
    assert "step 10/100 (10%)" in line and "s/step" in line and "ETA 0m0" in line


def test_tensorboard_logger_writes_event_files(tmp_path):
    pytest.importorskip("tensorboard", reason="pip install -e '.[test]' installs tensorboard")
    configure(tmp_path / "teacher.log", logger="tensorboard")
    Tracker("teacher", 2, "epoch").update(1, train_loss=1.5)
    progress.close()
    assert list((tmp_path / "teacher.tb").glob("events.out.tfevents.*"))


SNAKEMAKE_LOG = """\
Building DAG of jobs...
localrule teacher:
    input: results/t/data-1/dataset.npz
    output: results/t/teacher/c-2/teacher.pt
    log: results/t/teacher/c-2/teacher.log
    jobid: 3
    reason: Missing output files
    wildcards: ds=t
    resources: tmpdir=/tmp

Finished jobid: 3 (Rule: teacher)
1 of 4 steps (25%) done

localrule student:
    output: results/t/students/a/seed0.json
    log: results/t/students/a/seed0.log
    jobid: 7
    wildcards: ds=t, method=sre2l, seed=0

localrule student:
    output: results/t/students/a/seed1.json
    log: results/t/students/a/seed1.log
    jobid: 8
    wildcards: ds=t, method=sre2l, seed=1

Error in rule student:
    message: None
    jobid: 8
    output: results/t/students/a/seed1.json
    log: results/t/students/a/seed1.log (check log file(s) for error details)
Logfile results/t/students/a/seed1.log:
================================================================================
"""


def test_the_snakemake_log_gives_jobs_started_finished_and_failed():
    run = parse_log(SNAKEMAKE_LOG)
    assert (run.done, run.total) == (1, 4) and run.finished == {"3"}
    assert [j.jobid for j in run.running] == ["7"]
    assert run.running[0].log == "results/t/students/a/seed0.log"
    assert [(j.rule, j.jobid, j.log) for j in run.failed] == [
        ("student", "8", "results/t/students/a/seed1.log")]  # fmt: skip


def _workdir(tmp_path, locked):
    (tmp_path / ".snakemake/log").mkdir(parents=True)
    (tmp_path / ".snakemake/log/2026-01-01T000000.snakemake.log").write_text(SNAKEMAKE_LOG)
    (tmp_path / ".snakemake/locks").mkdir()
    if locked:
        (tmp_path / ".snakemake/locks/0.input.lock").write_text("x")
    students = tmp_path / "results/t/students/a"
    students.mkdir(parents=True)
    (students / "seed1.log").write_text("INFO start\nERROR ddflow error: teacher diverged\n")
    with open(students / "seed0.metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(progress.COLUMNS)
        w.writerows([[10.0, "student seed 0", 10, 100, "train_loss", 1.0],
                     [20.0, "student seed 0", 20, 100, "train_loss", 0.9]])  # fmt: skip
    return tmp_path


def test_status_of_a_half_finished_run_shows_progress_eta_and_the_error(tmp_path):
    text = status(_workdir(tmp_path, locked=True))
    assert "(running now)" in text
    assert "jobs: 1 of 4 done, 1 running, 1 failed, 1 left" in text
    # 10 epochs in 10 s, 80 to go
    assert (
        "running: student ds=t, method=sre2l, seed=0; student seed 0: 20/100 (20%), ETA 1m20s"
        in text
    )
    assert "log: results/t/students/a/seed0.log" in text
    assert (
        "last error: rule student ds=t, method=sre2l, seed=1: ERROR ddflow error: teacher diverged"
        in text
    )


def test_status_without_a_lock_calls_unfinished_jobs_interrupted(tmp_path):
    text = status(_workdir(tmp_path, locked=False))
    assert "(not running)" in text and "1 interrupted" in text and "interrupted: student" in text
    assert "no Snakemake run" in status(tmp_path / "elsewhere")


def test_version_and_run_from_the_command_line(tmp_path):
    out = subprocess.run(["ddflow", "--version"], capture_output=True, text=True)
    assert out.stdout.strip() == f"ddflow {version('ddflow')}"
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "dataset: {name: m, source: mnist-embedded}\nipc: [1]\nstudent: {}\nteacher: {epoch: 1}\n"
    )
    out = subprocess.run(["ddflow", "run", str(bad)], capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "config key 'teacher'" in out.stderr
    plan = subprocess.run([sys.executable, "-m", "ddflow.cli", "run", "config/config.yaml", "-n"],
                          capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert "ddflow: snakemake --configfile config/config.yaml --cores all -n" in plan.stdout
    assert "This was a dry-run" in plan.stdout + plan.stderr


def test_a_long_epoch_reports_between_epochs_and_status_shows_its_eta(tmp_path, caplog):
    from ddflow.status import job_progress

    configure(tmp_path / "t.log", interval_s=0)
    t = Tracker("teacher", 4, "epoch")
    time.sleep(0.2)
    with caplog.at_level(logging.INFO, logger="ddflow.progress"):
        t.tick(1.5)
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("teacher: epoch 1.50/4 (37%), ") and "ETA" in line
    # no metric row before the epoch ends, only the ETA the log line gave, for `ddflow status`
    [row] = _rows(tmp_path / "t.metrics.csv")
    assert (row["step"], row["metric"]) == ("1", "eta_s") and float(row["value"]) > 0
    shown = job_progress(tmp_path / "t.log")
    assert shown.startswith("teacher: 1/4 (25%), ETA ") and "ETA ?" not in shown


def test_status_shows_an_unfinished_outer_task_beside_the_current_one(tmp_path):
    from ddflow.status import job_progress

    with open(tmp_path / "cl.metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(progress.COLUMNS)
        w.writerows([[0.0, "student seed 0", 0, 10, "train_loss", 1.0],
                     [50.0, "student seed 0", 10, 10, "train_loss", 0.5],
                     [50.0, "incremental", 1, 5, "top1", 30.0],
                     [60.0, "student seed 0", 2, 10, "train_loss", 1.0],
                     [80.0, "student seed 0", 6, 10, "train_loss", 0.9]])  # fmt: skip
    line = job_progress(tmp_path / "cl.log")
    assert line.startswith("incremental: 1/5 (20%), ETA ")
    assert line.endswith("; student seed 0: 6/10 (60%), ETA 0m20s")  # 4 epochs in 20 s, 4 to go
