"""The measured cost every stage records (time, peak host memory) against a known allocation and
a known duration: the cost tables, the paper's hours tables and the cost forecast rest on it."""

import json
import subprocess
import sys

import pytest

PROBE = """
import json, time
from pathlib import Path
import numpy as np, torch
from ddflow.metrics.cost import CostMeter, job_peaks

def rss_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

big = np.ones(600 << 20, np.uint8)  # 600 MB, touched, then given back before the stage
del big
with CostMeter(torch.device("cpu")) as cost:
    base = rss_mb()
    a = np.ones(200 << 20, np.uint8)  # the stage's own 200 MB
    time.sleep(0.5)
print(json.dumps({**cost.as_dict(), "base_mb": base, "job_mb": job_peaks()["peak_rss_mb"]}))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="per-stage peaks need Linux's clear_refs")
def test_a_stage_reports_its_own_peak_memory_and_time():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    m = json.loads(out.stdout.strip().splitlines()[-1])
    own = m["peak_rss_mb"] - m["base_mb"]
    assert 195 <= own <= 260, m  # the stage's 200 MB, not the 600 MB before it
    assert m["job_mb"] >= m["base_mb"] + 595, m  # the job's peak keeps the 600 MB
    assert 0.5 <= m["wall_s"] < 1.5, m
