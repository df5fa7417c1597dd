"""Student speed with stored (FKD) labels against the online teacher, on the same set.

Trains the same student on the same images under `online` (the teacher runs every step) and
`stored` (labels read from a relabel of the same epochs) at every label budget, alternating them
several times so machine noise hits all, and prints epochs per second, the relabel cost of
storing the labels (every batch, and only a budget's kept batches, as LPLD generates them), and
the bytes of each budget's label file on disk. Pixels are random: speed does not depend on them.
Last line: `stored/online student speed: <ratio>`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ddflow.compute import configure  # noqa: E402
from ddflow.config import student_protocols, validate_config  # noqa: E402
from ddflow.data.datasets import DatasetBundle  # noqa: E402
from ddflow.data.pixels import Normalizer  # noqa: E402
from ddflow.io import save_npz  # noqa: E402
from ddflow.labels.budget import LabelBudget, batches_per_epoch  # noqa: E402
from ddflow.labels.stored import StoredLabels, at_budget, relabel  # noqa: E402
from ddflow.models import build_model  # noqa: E402
from ddflow.train.student import train_student  # noqa: E402

BUDGETS = [
    {}, {"dtype": "int8"}, {"topk": 10}, {"keep": 0.25}, {"topk": 10, "dtype": "int8"},
    {"keep": 0.1, "keep_unit": "batch"},  # LPLD's pool of batches at 10x
]  # fmt: skip


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
    epochs = range(1, args.epochs + 1)
    t0 = time.perf_counter()
    labels = relabel(images, teacher, norm, recipes["stored"], bs, 42, epochs)
    relabel_s = time.perf_counter() - t0
    stored, relabel_kept_s, disk = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, b in enumerate(BUDGETS):
            budget = LabelBudget.from_config(b)
            stored[i] = StoredLabels(at_budget(labels, budget, 42), budget)
            save_npz(Path(tmp) / f"{i}.npz", **stored[i].records)
            disk[i] = (Path(tmp) / f"{i}.npz").stat().st_size
            if not budget.full:  # label only the kept batches (generate: kept)
                kept = budget.kept(args.epochs, batches_per_epoch(n, bs), 42)
                t0 = time.perf_counter()
                relabel(images, teacher, norm, recipes["stored"], bs, 42, epochs, kept)
                relabel_kept_s[i] = time.perf_counter() - t0
    times = {"online": [], **{i: [] for i in stored}}
    for _ in range(args.repeats):
        for key in times:
            t0 = time.perf_counter()
            train_student(images, teacher if key == "online" else None, bundle,
                          recipes["online" if key == "online" else "stored"], 0, device,
                          stored=stored.get(key))  # fmt: skip
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times[key].append(time.perf_counter() - t0)
    print(f"device {device}, teacher {args.teacher}, student {args.student}, {n} images "
          f"{args.channels}x{args.size}x{args.size}, {args.classes} classes, batch {bs}, "
          f"{args.epochs} epochs, {args.repeats} alternating repeats (median)")  # fmt: skip
    speed = {k: args.epochs / statistics.median(t) for k, t in times.items()}
    print(f"online labels: {speed['online']:.3f} student epochs/s")
    print(f"relabel, every batch: {args.epochs / relabel_s:.3f} epochs/s (once per set)")
    full = disk[0]
    for i, b in enumerate(BUDGETS):
        made = (f"; relabel of only its kept batches {relabel_kept_s[i]:.2f} s against "
                f"{relabel_s:.2f} s for all" if i in relabel_kept_s else "")  # fmt: skip
        print(f"budget {b or 'FKD (fp16, every logit)'}: file {disk[i]:,} bytes on disk "
              f"({full / disk[i]:.1f}x fewer than FKD's), "
              f"{disk[i] / n / args.epochs:.1f} per image-epoch; stored-label student "
              f"{speed[i]:.3f} epochs/s{made}")  # fmt: skip
    print(f"stored/online student speed: {speed[0] / speed['online']:.2f}")


if __name__ == "__main__":
    main()
