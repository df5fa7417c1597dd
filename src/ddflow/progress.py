"""Progress of a long job: a log line with an ETA at a steady interval, and metrics to watch.

A job's entry point calls `configure` with the metrics file beside its log; the training and
recovery loops create a `Tracker` and update it as they go. Without `configure` (library use,
tests) trackers only log. The metrics file is long-format CSV, one row per value
(`time_s, task, step, total, metric, value`), so teacher, student and recovery rows share it and
`ddflow status` reads a running job's progress from its last row. With `runtime.logger:
tensorboard` the same values also go to TensorBoard event files in `<log stem>.tb/`.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from pathlib import Path

log = logging.getLogger(__name__)

COLUMNS = ["time_s", "task", "step", "total", "metric", "value"]
_SINK: dict = {"csv": None, "interval_s": 30.0, "tensorboard": None, "t0": time.time()}


def metrics_path(log_path: str | Path) -> Path:
    """Where a job's metrics go: beside its log, `<log stem>.metrics.csv`."""
    p = Path(log_path)
    return p.with_name(p.stem + ".metrics.csv")


def configure(log_path: str | Path | None, interval_s: float = 30.0, logger: str = "csv") -> None:
    """Start a job's metrics (a rerun starts the file afresh) and set the progress interval."""
    close()
    _SINK.update(interval_s=interval_s, t0=time.time())
    if log_path is None:
        return
    path = metrics_path(log_path)
    f = open(path, "w", newline="")  # noqa: SIM115 (kept open for the job's life)
    writer = csv.writer(f)
    writer.writerow(COLUMNS)
    f.flush()
    _SINK["csv"] = (f, writer)
    if logger == "tensorboard":
        from torch.utils.tensorboard import SummaryWriter

        _SINK["tensorboard"] = SummaryWriter(str(path.with_name(Path(log_path).stem + ".tb")))


def close() -> None:
    if _SINK["csv"]:
        _SINK["csv"][0].close()
    if _SINK["tensorboard"]:
        _SINK["tensorboard"].close()
    _SINK.update(csv=None, tensorboard=None)


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def counted(items, task: str, unit: str, total: int | None = None):
    """Iterate `items`, reporting progress as a Tracker every 1% (a long file loop: decoding a
    dataset, writing or reading a set's images)."""
    total = len(items) if total is None else total
    if not total:
        yield from items
        return
    tracker, every = Tracker(task, total, unit), max(1, total // 100)
    for done, item in enumerate(items, 1):
        yield item
        if done % every == 0 or done == total:
            tracker.update(done)


class Tracker:
    """One task of `total` units (epochs, recovery steps): rows for every update, and a log line
    with rate and ETA when `interval_s` has passed since the last one (and at the end)."""

    def __init__(self, task: str, total: int, unit: str, done: int = 0):
        self.task, self.total, self.unit = task, total, unit
        self.start_done, self.start = done, time.monotonic()
        self.last_log = self.start

    def eta_s(self, done: int) -> float:
        elapsed = time.monotonic() - self.start
        rate = (done - self.start_done) / elapsed if elapsed > 0 else 0.0
        return (self.total - done) / rate if rate > 0 else math.inf

    def update(self, done: int, **metrics: float) -> None:
        """`done` units finished, with their metrics: a row each, and a line when due."""
        stamp = round(time.time() - _SINK["t0"], 3)
        if _SINK["csv"]:
            f, writer = _SINK["csv"]
            values = metrics or {"progress": done / self.total}
            for name, value in values.items():
                writer.writerow([stamp, self.task, done, self.total, name, float(value)])
            f.flush()
        if _SINK["tensorboard"]:
            for name, value in metrics.items():
                _SINK["tensorboard"].add_scalar(f"{self.task}/{name}", float(value), done)
        self.tick(done, metrics, final=done == self.total)

    def tick(self, done: float, metrics: dict | None = None, final: bool = False) -> None:
        """A line with rate and ETA when the interval has passed (and at the end, from update);
        `done` may be fractional (batches within an epoch), so a long epoch reports steadily."""
        now = time.monotonic()
        if now - self.last_log < _SINK["interval_s"] and not final:
            return
        self.last_log = now
        eta = self.eta_s(done)
        if _SINK["csv"] and not final and math.isfinite(eta):  # `ddflow status` shows it too
            f, writer = _SINK["csv"]
            stamp = round(time.time() - _SINK["t0"], 3)
            writer.writerow([stamp, self.task, int(done), self.total, "eta_s", round(eta, 1)])
            f.flush()
        per = (now - self.start) / max(done - self.start_done, 1e-9)
        shown = ", ".join(f"{k} {v:.4g}" for k, v in (metrics or {}).items())
        log.info(
            "%s: %s %s/%d (%d%%), %.2f s/%s, ETA %s%s",
            self.task,
            self.unit,
            f"{done:g}" if float(done).is_integer() else f"{done:.2f}",
            self.total,
            int(100 * done // self.total),
            per,
            self.unit,
            format_duration(eta),
            f"; {shown}" if shown else "",
        )
