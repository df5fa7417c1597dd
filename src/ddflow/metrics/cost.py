"""Cost accounting: wall time and peak memory of a stage."""

from __future__ import annotations

import resource
import sys
import time

import torch


class CostMeter:
    """Measures one stage; `as_dict()` goes into the stage's manifest."""

    def __init__(self, device: torch.device):
        self.device = device

    def __enter__(self):
        self.start = time.perf_counter()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc):
        self.wall_s = time.perf_counter() - self.start

    def as_dict(self) -> dict:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rss_mb = rss / 2**20 if sys.platform == "darwin" else rss / 1024
        out = {
            "wall_s": round(self.wall_s, 3),
            "peak_rss_mb": round(rss_mb, 1),
            "device": str(self.device),
        }
        if self.device.type == "cuda":
            out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
        return out
