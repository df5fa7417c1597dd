"""`ddflow status`: what a working directory's latest Snakemake run has done, is doing, has left.

Read from Snakemake's own log (`.snakemake/log/`: each job's start block with its log file,
"Finished jobid", "n of m steps", "Error in rule") and from each running job's metrics file
(ddflow/progress.py) for its progress and ETA. Nothing here talks to Snakemake or a scheduler,
so it works the same for a local run and for a SLURM run's submit directory.
"""

from __future__ import annotations

import csv
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from ddflow.progress import format_duration, metrics_path

_START = re.compile(r"^(?:local)?rule (\w+):$")
_FIELD = re.compile(r"^\s+(\w+): (.*)$")
_FINISHED = re.compile(r"^Finished jobid: (\d+)")
_STEPS = re.compile(r"^(\d+) of (\d+) steps \((\d+)%\) done")
_ERROR = re.compile(r"^Error in rule (\w+):$")


@dataclass
class Job:
    rule: str
    jobid: str = ""
    log: str = ""
    wildcards: str = ""
    error: str = ""


@dataclass
class RunLog:
    started: dict[str, Job] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    failed: list[Job] = field(default_factory=list)
    stopped: list[Job] = field(default_factory=list)  # ended by the user (Ctrl-C), not failed
    done: int = 0
    total: int | None = None
    nothing_to_do: bool = False

    @property
    def running(self) -> list[Job]:
        ended = {j.jobid for j in self.failed + self.stopped} | self.finished
        return [j for i, j in self.started.items() if i not in ended]


def parse_log(text: str) -> RunLog:
    """The jobs of one Snakemake log: started (with their log files), finished, failed."""
    run, block, user_stop = RunLog(), None, False
    for line in text.splitlines():
        if m := (_START.match(line) or _ERROR.match(line)):
            block = Job(m.group(1))
            if line.startswith("Error"):
                (run.stopped if user_stop else run.failed).append(block)
            continue
        if block is not None and (m := _FIELD.match(line)):
            key, value = m.groups()
            if key in ("jobid", "wildcards", "message"):
                setattr(block, "error" if key == "message" else key, value.strip())
            elif key == "log":
                block.log = value.split(" (check log")[0].strip()
            if key == "jobid" and block not in run.failed + run.stopped:
                run.started[block.jobid] = block
            continue
        user_stop |= line.startswith("Terminating processes on user request")
        block = None
        if m := _FINISHED.match(line):
            run.finished.add(m.group(1))
        elif m := _STEPS.match(line):
            run.done, run.total = int(m.group(1)), int(m.group(2))
        elif line.startswith("Nothing to be done"):
            run.nothing_to_do = True
    return run


def job_progress(log_file: Path) -> str:
    """'<task>: <step>/<total> (<pct>%), ETA <t>' from a job's metrics file, or ''. A job with
    nested tasks (class-incremental steps, each a student) shows the unfinished outer ones too."""
    path = metrics_path(log_file)
    if not path.is_file():
        return ""
    with open(path, newline="", errors="replace") as f:
        rows = [r for r in csv.DictReader(f) if _complete(r)]
    if not rows:
        return ""
    last: dict[str, dict] = {}
    first: dict[str, dict] = {}
    for r in rows:
        t = r["task"]
        if t not in first or int(r["step"]) < int(last[t]["step"]):
            first[t] = r  # a task that starts again (the next step's fresh student)
        last.pop(t, None)  # keep the order in which tasks last reported
        last[t] = r
    current = rows[-1]["task"]
    shown = [t for t, r in last.items() if int(r["step"]) < int(r["total"]) and t != current]
    age = max(0.0, time.time() - path.stat().st_mtime)  # since the job last wrote a row
    return "; ".join(_task_line(first[t], last[t], age) for t in [*shown, current])


def _complete(row: dict) -> bool:
    """A metrics row written whole: a job killed while appending, a full disk or a read racing
    the writer leaves its last line cut short."""
    try:
        float(row["time_s"]), int(row["step"]), int(row["total"])
    except (KeyError, TypeError, ValueError):
        return False
    return bool(row.get("task")) and int(row["total"]) > 0


def _task_line(first: dict, last: dict, age: float = 0.0) -> str:
    """A task's progress; its ETA as the job last logged it (within an epoch, from the batches
    done) less the time since, else from the rate between its first and last steps."""
    step, total = int(last["step"]), int(last["total"])
    dt, ds = float(last["time_s"]) - float(first["time_s"]), step - int(first["step"])
    if step >= total:
        eta = 0.0
    elif last.get("metric") == "eta_s":
        eta = max(0.0, float(last["value"]) - age)
    else:
        eta = (total - step) * dt / ds if ds > 0 and dt > 0 else math.inf
    return f"{last['task']}: {step}/{total} ({100 * step // total}%), ETA {format_duration(eta)}"


def last_error_line(log_file: Path) -> str:
    if not log_file.is_file():
        return ""
    lines = [x for x in log_file.read_text(errors="replace").splitlines() if x.strip()]
    for line in reversed(lines):
        if "ddflow error:" in line or "Error" in line:
            return line.strip()
    return ""


def status(workdir: str | Path = ".") -> str:
    """The report `ddflow status` prints."""
    root = Path(workdir)
    logs = sorted((root / ".snakemake" / "log").glob("*.snakemake.log"))
    if not logs:
        return f"no Snakemake run in '{root.resolve()}' yet (no .snakemake/log/)"
    run = parse_log(logs[-1].read_text(errors="replace"))
    active = any((root / ".snakemake" / "locks").glob("*.lock"))
    lines = [
        f"latest run: {logs[-1].relative_to(root)} ({'running now' if active else 'not running'})"
    ]
    if run.nothing_to_do:
        lines.append("nothing was left to do: every result is up to date")
        return "\n".join(lines)
    total = run.total if run.total is not None else len(run.started)
    ended = len(run.running) + len(run.failed) + len(run.stopped)
    stopped = run.running and not active  # started, never finished, and no run holds the folder
    counts = [
        f"{run.done} of {total} done",
        f"{len(run.running)} {'interrupted' if stopped else 'running'}",
        f"{len(run.failed)} failed",
        *([f"{len(run.stopped)} stopped by the user"] if run.stopped else []),
        f"{max(total - run.done - ended, 0)} left",
    ]
    lines.append("jobs: " + ", ".join(counts))
    shown = [("interrupted" if stopped else "running", j) for j in run.running]
    shown += [("stopped", j) for j in run.stopped]
    for state, job in shown:
        wildcards = run.started.get(job.jobid, job).wildcards
        progress = job_progress(root / job.log) if job.log else ""
        lines.append(
            f"  {state}: {job.rule} {wildcards}"
            + (f"; {progress}" if progress else "")
            + (f"\n    log: {job.log}" if job.log else "")
        )
    for job in run.failed[-1:]:
        wildcards = run.started.get(job.jobid, job).wildcards
        cause = (last_error_line(root / job.log) if job.log else "") or "see its log"
        lines.append(f"  last error: rule {job.rule} {wildcards}: {cause}")
        if job.log:
            lines.append(f"    log: {job.log}")
    return "\n".join(lines)
