"""Time one recovery step against its floor, measured in the same run.

Floor = the frozen teacher's forward plus the input-gradient backward on the same batch (what
any pixel optimiser must pay). A step adds augmentation, BN-statistics hooks, Adam and clamp.
Runs alternate (floor, step, floor, step, ...) and the medians are compared, so machine noise
hits both. Last line: `recover/floor ratio: <number>`.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ddflow.compute import configure  # noqa: E402
from ddflow.models import build_model  # noqa: E402
from ddflow.recover.augment import RecoverAugment  # noqa: E402
from ddflow.recover.bn_loss import BNStatLoss  # noqa: E402
from ddflow.recover.loop import freeze, recover_batch  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="convnet_d3")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--steps", type=int, default=10, help="steps per timed run")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--pack", type=int, default=1, help="batches packed in one launch")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-heap-alloc", action="store_true", help="leave glibc's mmap default")
    args = ap.parse_args()
    device = configure(
        {"device": args.device, "threads": args.threads, "cpu_heap_alloc": not args.no_heap_alloc}
    )
    torch.manual_seed(0)
    teacher = build_model(args.arch, args.classes, args.channels, (args.size, args.size))
    teacher.to(device).train()
    with torch.no_grad():  # non-trivial running statistics
        for _ in range(2):
            teacher(torch.randn(args.batch, args.channels, args.size, args.size, device=device))
    freeze(teacher)
    labels = (torch.arange(args.batch, device=device) % args.classes).repeat(args.pack)
    x0 = torch.randn(args.pack * args.batch, args.channels, args.size, args.size, device=device)
    if device.type == "cuda":  # as the recovery loop lays out pixels and teacher on CUDA
        x0 = x0.contiguous(memory_format=torch.channels_last)
    bf16 = args.precision == "bf16"
    lo = torch.full((1, args.channels, 1, 1), -3.0, device=device)
    bounds = (lo, -lo)
    augment = RecoverAugment(crop=True, flip=True, jitter=4)

    def floor_run():
        x = x0.clone().requires_grad_(True)
        for _ in range(args.steps):
            with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
                logits = teacher(x)
            loss = F.cross_entropy(logits.float(), labels)
            (grad,) = torch.autograd.grad(loss, x)
        return grad

    def step_run():
        bn = BNStatLoss(teacher, 10.0)
        try:
            return recover_batch(
                teacher,
                bn,
                x0,
                labels,
                iterations=args.steps,
                lr=0.25,
                r_bn=0.01,
                augment=augment,
                bounds=bounds,
                rng=[random.Random(i) for i in range(args.pack)],
                log_every=10**9,
                precision=args.precision,
            )
        finally:
            bn.remove()

    def timed(fn):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        return (time.perf_counter() - t) / args.steps

    floor_run(), step_run()  # warm-up
    floors, steps = [], []
    for _ in range(args.repeats):
        floors.append(timed(floor_run))
        steps.append(timed(step_run))
    f, s = statistics.median(floors), statistics.median(steps)
    print(
        f"setup: {args.arch} {args.size}px batch {args.batch} x{args.pack} {args.precision} on "
        f"{torch.cuda.get_device_name(device) if device.type == 'cuda' else device}, "
        f"{torch.get_num_threads()} threads, heap alloc {not args.no_heap_alloc}, "
        f"torch {torch.__version__}"
    )
    if args.pack > 1:
        print(f"{args.pack} batches packed: recover step {s / args.pack * 1e3:.2f} ms per batch")
    print(f"floor (forward + input-grad backward): {f * 1e3:.1f} ms/step")
    print(f"recover step (augment + BN hooks + Adam + clamp): {s * 1e3:.1f} ms/step")
    print(f"recover/floor ratio: {s / f:.3f}")


if __name__ == "__main__":
    main()
