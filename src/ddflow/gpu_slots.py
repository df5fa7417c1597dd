"""Give each GPU job its own device on a workstation.

Snakemake only counts the `gpu` resource (`--resources gpu=N` caps how many GPU jobs run at
once) and never sets CUDA_VISIBLE_DEVICES, so without this every job would land on GPU 0. A job
takes a non-blocking lock on one slot file per device and keeps it for its lifetime; the OS drops
the lock when the process ends, even on a crash, so no slot leaks. Where a device was already
chosen (CUDA_VISIBLE_DEVICES set, or a SLURM allocation), nothing is changed.

Must run before torch initialises CUDA: `claim` only touches the environment.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)
_held = []  # open lock files: the claim lasts as long as the process


def _device_ids() -> list[str]:
    ids = os.environ.get("DDFLOW_GPU_IDS")
    if ids:
        return [i.strip() for i in ids.split(",") if i.strip()]
    if shutil.which("nvidia-smi") is None:
        return []
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]


def lock_dir() -> Path:
    return Path(os.environ.get("DDFLOW_GPU_LOCK_DIR", f"/tmp/ddflow-gpu-slots-{os.getuid()}"))


def claim(gpus: int, timeout_s: float = 600.0) -> str | None:
    """Set CUDA_VISIBLE_DEVICES to a free device for a job that asked for `gpus` (0 or 1)."""
    if gpus <= 0:
        return None
    if "CUDA_VISIBLE_DEVICES" in os.environ or "SLURM_JOB_ID" in os.environ:
        return os.environ.get("CUDA_VISIBLE_DEVICES")
    if gpus > 1:
        raise ValueError("ddflow jobs use one GPU each; request gpu=1")
    ids = _device_ids()
    if not ids:
        raise RuntimeError(
            "this job asked for a GPU but none was found (nvidia-smi lists none); set "
            "runtime.device to cpu, or DDFLOW_GPU_IDS to the device ids to use (e.g. 0,1)"
        )
    folder = lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    while True:
        for dev in ids:
            f = open(folder / f"gpu{dev}.lock", "w")  # noqa: SIM115 - held for the job's life
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                continue
            _held.append(f)
            os.environ["CUDA_VISIBLE_DEVICES"] = dev
            log.info("GPU slot: device %s (of %s)", dev, ",".join(ids))
            return dev
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"no free GPU among {ids} after {timeout_s:.0f}s: run Snakemake with "
                f"--resources gpu={len(ids)} (at most one job per device)"
            )
        time.sleep(0.5)
