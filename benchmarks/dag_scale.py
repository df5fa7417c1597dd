"""Dry runs of DAGs from tiny to paper scale: job counts, seconds and peak memory of
`snakemake -n` (parse and plan; nothing torch-heavy is imported there: tests/test_parse_light.py).

Cases: the embedded default (config/config.yaml, the README's quick start); ImageNet-21K-P
(10,450 classes, CDA): IPC 20 with the default 10 IPC indices per shard (210 shards), IPC 20 with
one per shard (2,100) and IPC 100 with one per shard (10,500 shards); ImageNet-1K at IPC 50 with
SRe2L, CDA and DELT. The dataset is an ImageFolder of empty class folders: parsing may read the
class list and nothing else, so a dry run that touched images would fail here. Each case checks
that Snakemake planned exactly the recovery shards the shard plan predicts. Target: under 60 s
each.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ddflow.config import validate_config  # noqa: E402
from ddflow.recover.shards import method_shards  # noqa: E402

STUDENT = {"arch": "torchvision:resnet18", "epochs": 300, "seeds": [0, 1, 2]}
CASES = {
    "tiny_default": (10, "config/config.yaml"),
    "in21k_ipc20_cda": (
        10450,
        {"ipc": [20], "methods": {"cda": {"kind": "cda", "preset": "cda_imagenet21k"}}},
    ),
    "in21k_ipc20_cda_1ipc_per_shard": (
        10450,
        {
            "ipc": [20],
            "methods": {"cda": {"kind": "cda", "preset": "cda_imagenet21k", "ipc_per_shard": 1}},
        },
    ),
    "in21k_ipc100_cda_1ipc_per_shard": (
        10450,
        {
            "ipc": [100],
            "methods": {"cda": {"kind": "cda", "preset": "cda_imagenet21k", "ipc_per_shard": 1}},
        },
    ),
    "in1k_ipc50_3methods": (
        1000,
        {
            "ipc": [50],
            "methods": {
                "sre2l": {"kind": "sre2l", "preset": "sre2l_imagenet1k"},
                "cda": {"kind": "cda", "preset": "cda_imagenet1k"},
                "delt": {"kind": "delt", "preset": "delt_imagenet1k"},
            },
        },
    ),
}

MEASURE = """
import resource, subprocess, sys, time
t = time.perf_counter()
out = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - t
peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(wall, peak_mb, out.returncode)
sys.stdout.write(out.stdout[-200000:])
sys.stderr.write(out.stderr[-5000:])
"""


def job_counts(text: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> count."""
    table = text.split("Job stats:", 1)[1]
    return {m[0]: int(m[1]) for m in re.findall(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def run_case(name: str, n_classes: int, spec: dict | str, workdir: Path) -> dict:
    if isinstance(spec, str):  # a shipped config as it is
        cfg = yaml.safe_load((ROOT / spec).read_text())
    else:
        data = workdir / "data"
        for i in range(n_classes):
            (data / "train" / f"n{i:08d}").mkdir(parents=True, exist_ok=True)
        (data / "val").mkdir(exist_ok=True)
        cfg = {
            "dataset": {"name": name, "source": "imagefolder", "root": str(data)},
            "teacher": {"arch": "torchvision:resnet18"},
            "student": STUDENT,
            "runtime": {"device": "cuda"},
            **spec,
        }
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    valid = validate_config(cfg)
    expected = sum(
        len(method_shards(m, n_classes, valid["ipc"]))
        for m in valid["methods"].values()
        if m["kind"] in ("sre2l", "cda", "delt")
    )
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        "-n",
        "--quiet",
        "rules",
        "--cores",
        "all",
    ]
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True, check=True
    )
    head, _, body = out.stdout.partition("\n")
    wall, peak_mb, rc = head.split()
    if rc != "0":
        raise RuntimeError(f"{name}: dry run failed:\n{out.stderr[-3000:]}")
    counts = job_counts(body)
    if counts.get("recover_shard", 0) != expected:
        raise RuntimeError(
            f"{name}: planned {counts.get('recover_shard')} shards, expected {expected}"
        )
    return {
        "case": name,
        "classes": n_classes,
        "jobs": counts.get("total", sum(counts.values())),
        "recover_shards": counts.get("recover_shard", 0),
        "dry_run_s": round(float(wall), 1),
        "peak_mem_mb": round(float(peak_mb)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    args = ap.parse_args()
    rows = []
    for name in args.cases:
        n_classes, spec = CASES[name]
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(run_case(name, n_classes, spec, Path(tmp)))
        print(json.dumps(rows[-1]), flush=True)
    print(f"{'case':34} {'jobs':>7} {'shards':>7} {'dry-run s':>10} {'peak MB':>8}")
    for r in rows:
        print(
            f"{r['case']:34} {r['jobs']:>7} {r['recover_shards']:>7} "
            f"{r['dry_run_s']:>10} {r['peak_mem_mb']:>8}"
        )


if __name__ == "__main__":
    main()
