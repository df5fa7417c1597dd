"""Workstation GPU slots, with fake device ids on CPU: each concurrent job gets its own device."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT

CLAIM = f"""
import os, sys
sys.path.insert(0, {str(ROOT / "src")!r})
from ddflow import gpu_slots
dev = gpu_slots.claim(1, timeout_s=float(sys.argv[1]))
print(dev, os.environ.get("CUDA_VISIBLE_DEVICES"), flush=True)
sys.stdin.readline()  # hold the slot until told to finish
"""


def _job(env, timeout_s=30):
    return subprocess.Popen(
        [sys.executable, "-c", CLAIM, str(timeout_s)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def env(tmp_path):
    base = {
        k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID")
    }
    return {**base, "DDFLOW_GPU_IDS": "0,1", "DDFLOW_GPU_LOCK_DIR": str(tmp_path)}


def test_concurrent_jobs_get_distinct_devices_and_a_freed_one_is_reused(env):
    a, b = _job(env), _job(env)
    got = {a.stdout.readline().split()[0], b.stdout.readline().split()[0]}
    assert got == {"0", "1"}
    c = _job(env)  # both slots held: waits
    a.stdin.write("\n")
    a.stdin.flush()
    a.wait(timeout=30)
    dev_c, visible_c = c.stdout.readline().split()
    assert dev_c == visible_c and dev_c in {"0", "1"}
    for p in (b, c):
        p.communicate("\n", timeout=30)
        assert p.returncode == 0, p.stderr


def test_a_killed_job_frees_its_slot(env):
    a = _job(env)
    dev = a.stdout.readline().split()[0]
    a.kill()
    a.wait()
    b, c = _job(env), _job(env)
    got = {b.stdout.readline().split()[0], c.stdout.readline().split()[0]}
    assert dev in got and got == {"0", "1"}
    for p in (b, c):
        p.communicate("\n", timeout=30)


def test_no_free_slot_is_a_clear_error(env):
    env = {**env, "DDFLOW_GPU_IDS": "0"}
    a = _job(env)
    a.stdout.readline()
    b = _job(env, timeout_s=1)
    _, err = b.communicate("\n", timeout=30)
    assert b.returncode != 0 and "--resources gpu=1" in err
    a.communicate("\n", timeout=30)


@pytest.mark.parametrize("preset", [{"SLURM_JOB_ID": "42"}, {"CUDA_VISIBLE_DEVICES": "3"}])
def test_an_existing_allocation_is_left_alone(env, preset):
    job = _job({**env, **preset})
    out, err = job.communicate("\n", timeout=30)
    assert job.returncode == 0, err
    assert out.split() == (
        [preset["CUDA_VISIBLE_DEVICES"]] * 2
        if "CUDA_VISIBLE_DEVICES" in preset
        else ["None", "None"]
    )


def test_cpu_jobs_claim_nothing(env):
    from ddflow import gpu_slots

    assert gpu_slots.claim(0) is None
