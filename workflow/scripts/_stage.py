"""Shared set-up for the thin adapters: import path, log file, validated runtime knobs."""

import contextlib
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path


@contextlib.contextmanager
def stage(snakemake):
    """Send the job's output to its log and hand back (runtime config, JSON params)."""
    sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))
    from ddflow import gpu_slots, progress
    from ddflow.config import validate_config
    from ddflow.errors import DdflowError

    runtime = validate_config(snakemake.config)["runtime"]
    # all canonical JSON, but for content fingerprints left unrecorded (data/fingerprint.py)
    params = {k: json.loads(v) for k, v in snakemake.params.items() if isinstance(v, str)}
    with (
        open(snakemake.log[0], "w") as log,
        contextlib.redirect_stdout(log),
        contextlib.redirect_stderr(log),
    ):
        logging.basicConfig(
            stream=log,
            level=logging.INFO,
            force=True,
            format="%(asctime)s %(levelname)s %(message)s",
        )
        try:
            progress.configure(snakemake.log[0], runtime["progress_every_s"], runtime["logger"])
            gpu_slots.claim(int(snakemake.resources.get("gpu", 0)))
            logging.info(
                "rule %s on %s, SLURM job %s (array job %s), CUDA_VISIBLE_DEVICES %s",
                snakemake.rule,
                socket.gethostname(),
                os.environ.get("SLURM_JOB_ID", "none"),
                os.environ.get("SLURM_ARRAY_JOB_ID", "none"),
                os.environ.get("CUDA_VISIBLE_DEVICES", "unset"),
            )
            start = time.perf_counter()
            yield runtime, params
            from ddflow.metrics.cost import job_peaks

            peaks = job_peaks()
            gpu = peaks.get("peak_gpu_mb")
            logging.info(  # `ddflow rehearse` reads this line
                "rule %s finished in %.1f s; peak host memory %.0f MB%s",
                snakemake.rule,
                time.perf_counter() - start,
                peaks["peak_rss_mb"],
                "" if gpu is None else f"; peak device memory {gpu:.0f} MB",
            )
        except DdflowError as e:  # the user's input or files: one line, no traceback
            logging.error("ddflow error: %s", e)
            raise SystemExit(f"ddflow error: {e}") from None
        except Exception:
            logging.exception("stage failed")
            raise
        finally:
            progress.close()
