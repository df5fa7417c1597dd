"""What G-VBSM's and EDC's terms cost: the teacher-statistics pass (images/s) and a recovery step
with the new terms against the BN-only step (SRe2L's) on the same teacher and batch, alternating
in one run (medians), with each step's operator calls (on a GPU, kernel launches).

Steps: bn = SRe2L's BN term (the fused BNStatLoss); +conv = BN and convolution-input channel and
patch statistics (StatMatch); +ema = that in the EMA form with drops (G-VBSM); +class = EDC's
per-class targets; +dd = G-VBSM's eigen-spectrum term on top. Last lines:
`<step>/bn step ratio: <number>`.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ddflow.compute import configure, operator_calls  # noqa: E402
from ddflow.data.pixels import Normalizer  # noqa: E402
from ddflow.models import build_model  # noqa: E402
from ddflow.recover.bn_loss import BNStatLoss  # noqa: E402
from ddflow.recover.loop import freeze  # noqa: E402
from ddflow.recover.stats import finish, teacher_statistics  # noqa: E402
from ddflow.recover.terms import StatMatch, dd_spectrum  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="resnet18_lowres")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--images", type=int, default=640, help="images in the statistics pass")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = configure({"device": args.device, "threads": args.threads, "cpu_heap_alloc": True})
    torch.manual_seed(0)
    teacher = build_model(args.arch, args.classes, 3, (args.size, args.size)).to(device).train()
    with torch.no_grad():
        teacher(torch.randn(64, 3, args.size, args.size, device=device))
    freeze(teacher)
    norm = Normalizer([0.5] * 3, [0.25] * 3, device)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images, args.size, args.size, 3), dtype=np.uint8)
    labels = np.arange(args.images) % args.classes
    patch = 4 if args.size <= 64 else 16
    rates = {}
    for per_class in (False, True):
        spec = {"batch_size": 64, "patch": patch, "seed": 0, "crop_padding": 4, "hflip": True,
                "per_class": per_class}  # fmt: skip
        t = time.perf_counter()
        stats = finish(teacher_statistics(teacher, images, labels, norm, spec, args.classes))
        rates[per_class] = args.images / (time.perf_counter() - t)
    y = torch.arange(args.batch, device=device) % args.classes
    x0 = torch.randn(args.batch, 3, args.size, args.size, device=device)
    variants = {
        "bn": dict(kind="bn"),
        "+conv": dict(conv=True),
        "+ema": dict(conv=True, ema_alpha=0.4, drop_rate=0.4),
        "+class": dict(conv=True, ema_alpha=0.8, class_weight=0.5),
        "+dd": dict(conv=True, ema_alpha=0.4, drop_rate=0.4, dd=True),
    }

    def make(v: dict):
        """The variant's loss (its hooks on the teacher) and one step; remove the loss after."""
        if v.get("kind") == "bn":
            loss = BNStatLoss(teacher, 10.0)
        else:
            loss = StatMatch(
                teacher, conv=v.get("conv", False), targets=stats, patch=patch,
                ema_alpha=v.get("ema_alpha"), drop_rate=v.get("drop_rate", 0.0),
                class_weight=v.get("class_weight", 0.0), rng=random.Random(0),
            )  # fmt: skip
        x = x0.clone().requires_grad_(True)
        opt = torch.optim.Adam([x], lr=0.05, betas=(0.5, 0.9))

        def step():
            if hasattr(loss, "set_labels"):
                loss.set_labels(y)
            logits = teacher(x)
            total = F.cross_entropy(logits, y) + 0.01 * loss.value()
            if v.get("dd"):
                total = total + dd_spectrum(x, y)
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()

        return loss, step

    calls, times = {}, {name: [] for name in variants}
    for name, v in variants.items():  # one variant's hooks on the teacher at a time
        loss, step = make(v)
        step()  # warm-up
        calls[name] = operator_calls(step)
        loss.remove()
    for _ in range(args.repeats):  # alternating, so machine noise hits every variant alike
        for name, v in variants.items():
            loss, step = make(v)
            step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t = time.perf_counter()
            for _ in range(3):
                step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times[name].append((time.perf_counter() - t) / 3)
            loss.remove()
    print(f"setup: {args.arch} {args.size}px, batch {args.batch}, {args.classes} classes, "
          f"{torch.get_num_threads()} threads on {device}, torch {torch.__version__}")  # fmt: skip
    print(f"statistics pass: {rates[False]:.0f} images/s global, {rates[True]:.0f} with per-class")
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in teacher.modules())
    n_conv = sum(isinstance(m, torch.nn.Conv2d) for m in teacher.modules())
    print(f"hooked layers: {n_bn} BatchNorm, {n_conv} convolutions")
    bn = statistics.median(times["bn"])
    for name in variants:
        m = statistics.median(times[name])
        print(f"{name:7} step {m * 1e3:7.1f} ms, {calls[name]:5d} operator calls")
    for name in list(variants)[1:]:
        print(f"{name}/bn step ratio: {statistics.median(times[name]) / bn:.3f}")


if __name__ == "__main__":
    main()
