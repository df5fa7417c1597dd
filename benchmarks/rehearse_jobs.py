"""Wall time of one rehearsal with its jobs one at a time (`--cores 1`) and side by side (all
cores; each stand-in job has one thread and the host's memory bounds how many run at once).

A stand-in job is short and its start (Snakemake, the torch imports) dominates, so side by side
should approach a speed-up of the core count. Both runs are measured in this one call, each in a
fresh scratch directory, so the ratio holds on a noisy shared machine.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rehearse(config: str, workdir: Path, cores: str) -> float:
    cmd = [sys.executable, "-m", "ddflow.cli", "rehearse", "--workdir", str(workdir),
           "--cores", cores, config]  # fmt: skip
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if out.returncode != 0 or not re.search(r": passed in \d+ s", out.stdout):
        sys.exit(f"rehearsal with --cores {cores} failed:\n{out.stdout[-2000:]}{out.stderr[-999:]}")
    return wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="config/protocols/label_budgets.full.yaml")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        one = rehearse(args.config, Path(tmp) / "one", "1")
        side = rehearse(args.config, Path(tmp) / "side", "all")
    print(f"{args.config}: one job at a time {one:.0f} s, side by side {side:.0f} s "
          f"({one / side:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
