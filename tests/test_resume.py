"""A recovery shard killed mid-way resumes from its last save and ends with identical bytes."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from ddflow.config import StageIds, validate_config
from ddflow.recover.resume import state_path
from ddflow.stages import run_data, run_teacher

from conftest import ROOT

RUNNER = """
import json, sys
sys.path.insert(0, {src!r})
import logging; logging.basicConfig(level=logging.INFO, stream=sys.stderr)
from ddflow.stages import run_recover_shard
a = json.loads(sys.argv[1])
run_recover_shard(a["npz"], a["meta"], a["teacher"], None, a["method"], a["stage_id"],
                  a["shard"], a["runtime"], a["out"], threads=1, teachers=a["teachers"])
"""


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    cfg = validate_config(
        {
            "dataset": {
                "name": "r",
                "source": "mnist-embedded",
                "max_train_per_class": 10,
                "max_test_per_class": 5,
            },
            "teacher": {"epochs": 1, "batch_size": 32},
            "ipc": [2],
            "methods": {
                "cda": {
                    "kind": "cda",
                    "iterations": 40,
                    "batch_classes": 10,
                    "ipc_per_shard": 2,
                    "jitter": 2,
                },
                "delt": {
                    "kind": "delt",
                    "init": "gaussian",
                    "iterations": 40,
                    "round_iterations": 20,
                    "batch_images": 30,
                },
                "fadrm": {  # stages, a fresh Adam each, the residual mix and a loss scale to resume
                    "kind": "fadrm",
                    "init": "gaussian",
                    "stage_sizes": [28, 28],  # the ConvNet teacher takes 28 px only
                    "stage_iterations": [5, 5],
                    "precision": "bf16",  # autocast as fp16's, fast on CPU (no loss scale)
                    "batch_classes": 10,
                    "ipc_per_shard": 2,
                    "jitter": 2,
                },
            },
            "student": {},
            "runtime": {"threads": 1},
        }
    )
    npz, meta = str(root / "d.npz"), str(root / "meta.json")
    run_data(cfg["dataset"], npz, meta)
    ckpt = str(root / "teacher.pt")
    ids = StageIds(cfg)
    run_teacher(npz, meta, cfg["teacher"], ids.teacher, cfg["runtime"], ckpt, str(root / "m.json"))
    return root, cfg, ids, npz, meta, ckpt


def _args(inputs, method, shard, out, every, pack=1):
    root, cfg, ids, npz, meta, ckpt = inputs
    runtime = {**cfg["runtime"], "checkpoint_every": every, "pack_batches": pack}
    return json.dumps(
        {
            "npz": npz,
            "meta": meta,
            "teacher": ckpt,
            "teachers": [ckpt] if method == "fadrm" else None,
            "method": cfg["methods"][method],
            "stage_id": ids.method(method),
            "shard": shard,
            "runtime": runtime,
            "out": str(out),
        }
    )


def _start(args):
    code = RUNNER.format(src=str(ROOT / "src"))
    return subprocess.Popen(
        [sys.executable, "-c", code, args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(
    ("method", "shard", "pack"),
    [
        ("cda", "c00000-00010_i0000-0002", 1),
        ("cda", "c00000-00010_i0000-0002", 2),  # both batches packed in one launch
        ("delt", "c00000-00010_i0000-0003", 1),
        ("fadrm", "c00000-00010_i0000-0002", 1),
    ],
)
def test_killed_shard_resumes_to_identical_bytes(inputs, tmp_path, method, shard, pack):
    uninterrupted = tmp_path / "a.npz"
    done = _start(_args(inputs, method, shard, uninterrupted, 0, pack))
    assert done.wait() == 0, done.stderr.read()[-3000:]

    out = tmp_path / "b.npz"
    saved = state_path(out)
    job = _start(_args(inputs, method, shard, out, 3, pack))
    end = time.time() + 120
    while not saved.exists() and job.poll() is None and time.time() < end:
        time.sleep(0.01)
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    assert saved.exists() and not out.exists(), "the job was not killed mid-way"

    resumed = _start(_args(inputs, method, shard, out, 3, pack))
    _, log = resumed.communicate()
    assert resumed.returncode == 0, log[-3000:]
    assert "resuming" in log
    assert not saved.exists(), "the resume state outlived the finished shard"
    with np.load(uninterrupted) as a, np.load(out) as b:
        for key in ("images", "labels", "ipc_index", "iterations"):
            assert np.array_equal(a[key], b[key]), key


def test_stale_resume_state_is_ignored(inputs, tmp_path):
    from ddflow.recover.resume import ShardResume

    path = tmp_path / ".x.resume.pt"
    first = ShardResume(path, "stage-a/shard", every=5)
    first.finish(0, np.zeros((2, 3, 3, 1), np.uint8))
    assert ShardResume(path, "stage-a/shard", every=5).finished(0) is not None
    assert ShardResume(path, "stage-b/shard", every=5).finished(0) is None


def test_a_two_thread_shard_is_reproducible(inputs, tmp_path):
    """Users run several threads (tests elsewhere pin one): two threads, same bytes twice."""
    from ddflow.stages import run_recover_shard

    root, cfg, ids, npz, meta, ckpt = inputs
    outs = []
    for k in range(2):
        out = tmp_path / f"{k}.npz"
        run_recover_shard(
            npz, meta, ckpt, None, cfg["methods"]["cda"], ids.method("cda"),
            "c00000-00010_i0000-0002", {**cfg["runtime"], "threads": 2}, str(out), threads=2,
        )  # fmt: skip
        outs.append(out)
    import torch

    assert torch.get_num_threads() == 2
    with np.load(outs[0]) as a, np.load(outs[1]) as b:
        assert a["images"].shape == (20, 28, 28, 1)
        for key in ("images", "labels", "ipc_index"):
            assert np.array_equal(a[key], b[key]), key
