"""Student speed with stored (FKD) labels against the online teacher, on the same set.

Trains the same student on the same images under `online` (the teacher runs every step) and
`stored` (labels read from a relabel of the same epochs), alternating the two several times so
machine noise hits both, and prints epochs per second, the relabel cost it takes to store the
labels, and label bytes per image at several budgets. Pixels are random: speed does not depend on
them. Last line: `stored/online student speed: <ratio>`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ddflow.compute import configure  # noqa: E402
from ddflow.config import student_protocols, validate_config  # noqa: E402
from ddflow.data.datasets import DatasetBundle  # noqa: E402
from ddflow.data.pixels import Normalizer  # noqa: E402
from ddflow.labels.stored import LabelBudget, StoredLabels, relabel  # noqa: E402
from ddflow.models import build_model  # noqa: E402
from ddflow.train.student import train_student  # noqa: E402

BUDGETS = [{}, {"dtype": "int8"}, {"topk": 10}, {"keep": 0.25}, {"topk": 10, "dtype": "int8"}]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", default="resnet18_lowres")
    ap.add_argument("--student", default="convnet_d3")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    device = configure({"device": args.device, "cpu_heap_alloc": True}, args.threads)
    rng = np.random.default_rng(0)
    n = args.classes * args.ipc
    shape = (n, args.size, args.size, args.channels)
    images = rng.integers(0, 256, shape, dtype=np.uint8)
    targets = np.repeat(np.arange(args.classes), args.ipc)
    test = images[: min(n, 200)]
    bundle = DatasetBundle(
        images, targets, test, targets[: len(test)], [str(c) for c in range(args.classes)],
        [0.5] * args.channels, [0.25] * args.channels,
    )  # fmt: skip
    student = {"arch": args.student, "epochs": args.epochs, "batch_size": args.batch_size,
               "eval_every": 10**6, "labels": ["online", "stored"]}  # fmt: skip
    cfg = validate_config(
        {"dataset": {"name": "b", "source": "mnist-embedded"}, "teacher": {}, "ipc": [args.ipc],
         "methods": {"random": {"kind": "random"}}, "student": student}
    )  # fmt: skip
    recipes = student_protocols(cfg["student"])
    hw = (args.size, args.size)
    teacher = build_model(args.teacher, args.classes, args.channels, hw).to(device).eval()
    norm = Normalizer(bundle.mean, bundle.std, device)
    bs = min(args.batch_size, n)
    t0 = time.perf_counter()
    labels = relabel(images, teacher, norm, recipes["stored"], bs, 42, range(1, args.epochs + 1))
    relabel_s = time.perf_counter() - t0
    times = {"online": [], "stored": []}
    for _ in range(args.repeats):
        for protocol in ("online", "stored"):
            stored = StoredLabels(labels, LabelBudget(), 42) if protocol == "stored" else None
            t0 = time.perf_counter()
            train_student(images, teacher if protocol == "online" else None, bundle,
                          recipes[protocol], 0, device, stored=stored)  # fmt: skip
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times[protocol].append(time.perf_counter() - t0)
    print(f"device {device}, teacher {args.teacher}, student {args.student}, {n} images "
          f"{args.channels}x{args.size}x{args.size}, {args.classes} classes, batch {bs}, "
          f"{args.epochs} epochs, {args.repeats} alternating repeats (median)")  # fmt: skip
    speed = {p: args.epochs / statistics.median(t) for p, t in times.items()}
    for p, v in speed.items():
        print(f"{p} labels: {v:.3f} student epochs/s")
    print(f"relabel: {args.epochs / relabel_s:.3f} epochs/s (once per set; no student)")
    for b in BUDGETS:
        budget = LabelBudget.from_config(b)
        per_image = sum(StoredLabels(labels, budget, 42).bytes.values()) / n / args.epochs
        print(f"label bytes per image per epoch at budget {b or 'fp16, all logits'}: "
              f"{per_image:.1f}")  # fmt: skip
    print(f"stored/online student speed: {speed['stored'] / speed['online']:.2f}")


if __name__ == "__main__":
    main()
