"""One GPU check, ready to run on one GPU in under eight minutes; prints the table the README
quotes and writes the device profile `ddflow plan --cost` reads.

1. The CUDA tests (tests/test_cuda.py: skipped on machines without a GPU).
2. Recovery and student steps of ResNet-18 at 224 px against their floors, fp32 and bf16,
   recovery also with two batches packed in one launch (benchmarks/recover_speed.py, and the
   student step of benchmarks/student_speed.py), with the operator calls of each step.
3. A rehearsal of one ImageNet-1K full config on the GPU, at the real 1,000 classes
   (ddflow rehearse, config/delt/table1_imagenet1k.full.yaml).
4. The device profile (benchmarks/cost_profile.py): src/ddflow/profiles/<device>.json.

    python benchmarks/gpu_check.py                  # on the GPU machine, from the repository root
    python benchmarks/gpu_check.py --allow-cpu --quick   # a smoke test of the script on a CPU

Results also go to results/gpu_check/gpu_check.md.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

REHEARSED = "config/delt/table1_imagenet1k.full.yaml"


def run(cmd: list[str], timeout: int) -> tuple[int, str, float]:
    start = time.time()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=timeout)
        return out.returncode, out.stdout + out.stderr, time.time() - start
    except subprocess.TimeoutExpired as e:
        return 124, f"timed out after {timeout} s\n{e.stdout or ''}", time.time() - start


def cuda_tests(timeout: int) -> list[str]:
    rc, text, wall = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/test_cuda.py"], timeout)  # fmt: skip
    summary = (re.findall(r"^.*(?:passed|failed|skipped|error).*$", text, re.M) or ["?"])[-1]
    return [f"| CUDA tests (tests/test_cuda.py) | {summary.strip('= ')} | {wall:.0f} s |"]


def recovery(device: str, quick: bool, timeout: int) -> list[str]:
    rows = []
    batch, size = (8, 64) if quick else (100, 224)
    for precision in ("fp32", "bf16"):
        for pack in (1, 2):
            cmd = [sys.executable, "benchmarks/recover_speed.py", "--arch", "torchvision:resnet18",
                   "--size", str(size), "--classes", "1000", "--batch", str(batch), "--device",
                   device, "--precision", precision, "--pack", str(pack), "--steps",
                   "2" if quick else "10", "--repeats", "2" if quick else "5"]  # fmt: skip
            rc, text, wall = run(cmd, timeout)
            ratio = re.search(r"recover/floor ratio: ([\d.]+)", text)
            step = re.search(r"recover step \(augment.*?\): ([\d.]+) ms/step", text)
            got = f"{ratio[1]} (step {step[1]} ms)" if ratio and step else f"failed: {text[-200:]}"
            rows.append(f"| recovery/floor, ResNet-18 {size} px, batch {batch} x{pack}, "
                        f"{precision} | {got} | {wall:.0f} s |")  # fmt: skip
    rows.append(f"| recovery step operator calls (ResNet-18) | {recover_calls()} | |")
    return rows


def recover_calls() -> int:
    from student_speed import recover_calls as calls

    from ddflow.recover.bn_loss import BNStatLoss

    return calls(BNStatLoss)


def students(device: str, quick: bool) -> list[str]:
    from student_speed import StudentBench

    from ddflow.compute import operator_calls

    rows = []
    batch, size = (8, 64) if quick else (100, 224)
    dev = torch.device(device)
    for precision in ("fp32", "bf16"):
        start = time.time()
        bench = StudentBench(batch, size, 1000, "torchvision:resnet18", dev, precision)
        bench.step(), bench.floor()
        steps, floors = [], []
        for _ in range(2 if quick else 5):
            floors.append(_timed(bench.floor, dev, 2 if quick else 10))
            steps.append(_timed(bench.step, dev, 2 if quick else 10))
        step, floor = statistics.median(steps), statistics.median(floors)
        calls = operator_calls(bench.step)
        rows.append(f"| student/floor, ResNet-18 {size} px, batch {batch}, {precision} | "
                    f"{step / floor:.3f} (step {step * 1e3:.1f} ms, {calls} operator calls) | "
                    f"{time.time() - start:.0f} s |")  # fmt: skip
    return rows


def _timed(fn, device, inner: int) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t = time.perf_counter()
    for _ in range(inner):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - t) / inner


def rehearsal(quick: bool, timeout: int) -> list[str]:
    args = ["--classes", "4" if quick else "1000", "--images-per-class", "4",
            "--workdir", "results/gpu_check/rehearsal"]  # fmt: skip
    rc, text, wall = run([sys.executable, "-m", "ddflow.cli", "rehearse", REHEARSED, *args],
                         timeout)  # fmt: skip
    line = next((x for x in text.splitlines() if x.startswith(f"ddflow rehearse: {REHEARSED}:")),
                text.strip().splitlines()[-1] if text.strip() else "no output")  # fmt: skip
    return [f"| rehearsal of {REHEARSED} ({'4' if quick else '1,000'} classes) | "
            f"{line.split(': ', 2)[-1]} | {wall:.0f} s |"]  # fmt: skip


def profile(quick: bool, timeout: int) -> list[str]:
    smoke = ["--quick", "--out", "results/gpu_check/profile-quick.json"] if quick else []
    rc, text, wall = run([sys.executable, "benchmarks/cost_profile.py", *smoke], timeout)
    where = re.search(r"^profile: (.+)$", text, re.M)
    table = [x for x in text.splitlines() if "@" in x]
    return [f"| device profile | {where[1] if where else 'failed: ' + text[-200:]} | "
            f"{wall:.0f} s |"] + [f"| profile: {x.strip()} | | |" for x in table]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--allow-cpu", action="store_true", help="run without a GPU (smoke test)")
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    args = ap.parse_args()
    if not torch.cuda.is_available() and not args.allow_cpu:
        sys.exit("gpu_check: no CUDA device here; run it on the GPU machine (or --allow-cpu)")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU"
    start = time.time()
    lines = [f"GPU check on {name}, torch {torch.__version__}", "",
             "| check | result | wall |", "|---|---|---|"]  # fmt: skip
    for part in (
        lambda: cuda_tests(150),
        lambda: recovery(device, args.quick, 120),
        lambda: students(device, args.quick),
        lambda: rehearsal(args.quick, 240),
        lambda: profile(args.quick, 120),
    ):
        try:
            rows = part()
        except Exception as e:  # one check's failure is its row; the others still run
            rows = [f"| {part} | failed: {type(e).__name__}: {e} | |"]
        lines += rows
        print("\n".join(rows), flush=True)
    lines.append(f"\nTotal: {time.time() - start:.0f} s.")
    out = ROOT / "results" / "gpu_check" / "gpu_check.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"\n{out}")


if __name__ == "__main__":
    main()
