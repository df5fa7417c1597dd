"""Cost accounting: wall time and peak memory of a stage, and of the job that ran it.

The peak host memory of a stage is the process's resident high-water mark since the stage began:
Linux resets it on request (/proc/self/clear_refs), so a stage that follows a larger one in the
same job reports its own peak, not the earlier one's. The job's peak keeps the largest of all.
Where the reset is not available (macOS) a stage reports the process's peak so far.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import torch

_JOB_PEAK = {"rss_mb": 0.0, "gpu_mb": 0.0}


def _hwm_mb() -> float:
    """The resident high-water mark (MB): VmHWM, which clear_refs resets, else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def _reset_hwm() -> None:
    _JOB_PEAK["rss_mb"] = max(_JOB_PEAK["rss_mb"], _hwm_mb())
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def job_peaks() -> dict:
    """Peak host memory (MB) of the whole job so far, and of every CUDA device when used."""
    out = {"peak_rss_mb": round(max(_JOB_PEAK["rss_mb"], _hwm_mb()), 1)}
    if torch.cuda.is_initialized():
        gpu = max(torch.cuda.max_memory_allocated(d) for d in range(torch.cuda.device_count()))
        out["peak_gpu_mb"] = round(max(_JOB_PEAK["gpu_mb"], gpu / 2**20), 1)
    return out


class CostMeter:
    """Measures one stage; `as_dict()` goes into the stage's manifest."""

    def __init__(self, device: torch.device):
        self.device = device

    def __enter__(self):
        _reset_hwm()
        if self.device.type == "cuda":
            before = torch.cuda.max_memory_allocated(self.device) / 2**20
            _JOB_PEAK["gpu_mb"] = max(_JOB_PEAK["gpu_mb"], before)
            torch.cuda.reset_peak_memory_stats(self.device)
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall_s = time.perf_counter() - self.start
        self.peak_rss_mb = _hwm_mb()

    def as_dict(self) -> dict:
        out = {
            "wall_s": round(self.wall_s, 3),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "device": str(self.device),
        }
        if self.device.type == "cuda":
            out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
        return out
