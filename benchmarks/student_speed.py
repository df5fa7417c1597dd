"""Student and recovery steps at scale: operator calls per step, the student's cost against its
floor, and data feeding (decoding ahead of compute).

On a GPU every operator call is a kernel launch, so a step whose calls grow with the batch is
launch-bound; the counts come from the torch profiler on CPU (leaf aten calls, views and
allocations excluded: ddflow.compute.operator_calls) and do not depend on the device.

Prints, in this order:
- operator calls per student step (ConvNet-D3 student and online teacher, 32 px, RandomResizedCrop
  + flip + CutMix) at batch 25, 50, 100, 200;
- operator calls per recovery step (ResNet-18), with the BN-statistics op before
  (benchmarks/_before_bn_loss.py) and after it was fused, and after at batch 25 and 100;
- the loader's images/s on a folder of JPEGs with 1, 2 and 4 decoding threads;
- RandAugment (timm `rand-m6-n2-mstd1.0`, DELT's) images/s at 224 px: it runs per image through
  PIL in the prefetch thread, off the training step's critical path;
- a teacher epoch on file storage: decode alone, compute alone, and both overlapped by the
  prefetcher (target: overlapped <= 1.15 x max(decode, compute));
- student step / floor (student forward + backward + teacher forward on a ready batch),
  medians of alternating runs (target <= 1.1).
The last three lines are exactly `student calls per step, batch 25 and 200: <a> <b>`,
`recover calls per step, before and after: <c> <d>` and `student/floor ratio: <r>`.

    python benchmarks/student_speed.py [--images 600] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # the profiler's start/stop lines on stderr

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

import _before_bn_loss  # noqa: E402
from file_storage import write_photos  # noqa: E402

from ddflow.compute import configure, operator_calls  # noqa: E402
from ddflow.data.files import ImageFiles  # noqa: E402
from ddflow.data.pixels import Normalizer  # noqa: E402
from ddflow.data.prefetch import host_batch, prefetch  # noqa: E402
from ddflow.labels.protocols import make_protocol  # noqa: E402
from ddflow.models import build_model  # noqa: E402
from ddflow.recover.augment import RecoverAugment  # noqa: E402
from ddflow.recover.bn_loss import BNStatLoss  # noqa: E402
from ddflow.recover.loop import freeze, recover_batch  # noqa: E402
from ddflow.train.common import Precision, param_groups, rand_augment  # noqa: E402
from ddflow.train.student import student_step  # noqa: E402

RECIPE = {  # the RDED/DELT validation recipe's view and label keys (config defaults)
    "min_scale": 0.08, "max_scale": 1.0, "hflip": True, "cutmix": 1.0, "labels": "online",
    "temperature": 20, "t2_factor": False, "epochs": 300,
}  # fmt: skip
CPU = torch.device("cpu")


def trained_bn(arch: str, classes: int, size: int, batch: int) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(arch, classes, 3, (size, size)).train()
    with torch.no_grad():  # non-trivial running statistics
        model(torch.randn(batch, 3, size, size))
    return model.eval()


class StudentBench:
    """One student step as train_student runs it, on a prepared (decoded) host batch."""

    def __init__(
        self,
        batch: int,
        size: int = 32,
        classes: int = 10,
        arch: str = "convnet_d3",
        device: torch.device = CPU,
        precision: str = "fp32",
    ):
        self.norm = Normalizer([0.5] * 3, [0.25] * 3, device)
        self.teacher = freeze(trained_bn(arch, classes, size, min(batch, 50)).to(device))
        self.model = build_model(arch, classes, 3, (size, size)).to(device)
        self.opt = torch.optim.AdamW(param_groups(self.model, 0.01, True), lr=1e-3)
        self.protocol = make_protocol(RECIPE, 0, batch, batch, (size, size), teacher=self.teacher)
        (self.view,), _ = self.protocol.epoch(1)
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
        self.batch = host_batch(images[self.view.idx], device)
        self.labels = torch.as_tensor(rng.integers(0, classes, batch), device=device)
        self.fast = Precision(precision, device)
        self.fast.prepare(self.model), self.fast.prepare(self.teacher)

    def step(self) -> torch.Tensor:
        step = (self.batch, self.labels, self.view, None)
        return student_step(self.model, self.protocol, self.opt, self.norm, self.fast, step)

    def floor(self) -> torch.Tensor:
        """Student forward + backward and teacher forward on a ready (rendered) batch."""
        x = self.fast.layout(self.ready)
        with self.fast.autocast():
            with torch.no_grad():
                target = self.teacher(x)
            out = self.model(x)
        loss = F.kl_div(
            F.log_softmax(out.float() / 20, 1), F.softmax(target.float() / 20, 1),
            reduction="batchmean",
        )  # fmt: skip
        loss.backward()
        return loss.detach()

    @property
    def ready(self) -> torch.Tensor:
        if not hasattr(self, "_ready"):
            self._ready = self.norm.to_tensor(self.batch).contiguous()
        return self._ready


def recover_calls(bn_loss_cls, batch: int = 8) -> int:
    """Operator calls of one recovery step (ResNet-18, 32 px, crop + flip + jitter): the
    difference between 3 steps and 1, halved, so set-up calls cancel."""
    teacher = freeze(trained_bn("torchvision:resnet18", 10, 32, 8))
    x0, labels = torch.randn(batch, 3, 32, 32), torch.arange(batch) % 10
    lo = torch.full((1, 3, 1, 1), -3.0)

    def steps(n):
        bn = bn_loss_cls(teacher, 10.0)
        try:
            recover_batch(
                teacher, bn, x0, labels, iterations=n, lr=0.25, r_bn=0.01,
                augment=RecoverAugment(crop=True, flip=True, jitter=4), bounds=(lo, -lo),
                rng=random.Random(0), log_every=10**9,
            )  # fmt: skip
        finally:
            bn.remove()

    steps(1)  # warm-up
    return (operator_calls(lambda: steps(3)) - operator_calls(lambda: steps(1))) // 2


def median_time(fn, repeats: int, inner: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t) / inner)
    return statistics.median(times)


def loader_rates(root: Path, paths: np.ndarray, size: int, batch: int) -> dict[int, float]:
    rates = {}
    for workers in (1, 2, 4):
        files = ImageFiles(root, paths, size, workers)
        t = time.perf_counter()
        for s in range(0, len(paths), batch):
            files[np.arange(s, min(s + batch, len(paths)))]
        rates[workers] = len(paths) / (time.perf_counter() - t)
    return rates


def teacher_epoch(
    root: Path, paths: np.ndarray, size: int, batch: int, repeats: int
) -> tuple[float, ...]:
    """Median (decode, compute, overlapped) seconds of a teacher epoch on file storage: one
    decoding thread and one compute thread, so the two can overlap on two cores."""
    torch.set_num_threads(1)
    files = ImageFiles(root, paths, size, workers=1)
    norm = Normalizer([0.5] * 3, [0.25] * 3, CPU)
    model = build_model("convnet_d3", 10, 3, (size, size))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    chunks = [np.arange(s, min(s + batch, len(paths))) for s in range(0, len(paths), batch)]
    labels = torch.as_tensor(np.arange(len(paths)) % 10)

    def load(rows):
        return host_batch(files[rows], CPU), labels[rows]

    def step(item):
        x, y = item
        loss = F.cross_entropy(model(norm.to_tensor(x)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def decode_only():
        return [load(rows) for rows in chunks]

    ready = decode_only()

    def compute_only():
        for item in ready:
            step(item)

    def overlapped():
        for item in prefetch(chunks, load):
            step(item)

    times = {f: [] for f in (decode_only, compute_only, overlapped)}
    for _ in range(repeats):  # alternating, medians: machine noise hits all three
        for f, ts in times.items():
            t = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t)
    return tuple(statistics.median(ts) for ts in times.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=600, help="JPEGs in the loader folder")
    ap.add_argument("--jpeg-size", type=int, default=32, help="decoded (resized) size")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    configure({"device": "cpu", "threads": args.threads, "cpu_heap_alloc": True})
    print(f"setup: torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")

    calls = {}
    for batch in (25, 50, 100, 200):
        bench = StudentBench(batch)
        bench.step()  # warm-up (lazy initialisation, optimizer state)
        calls[batch] = operator_calls(bench.step)
        print(f"student step, batch {batch}: {calls[batch]} operator calls")
    before, after = recover_calls(_before_bn_loss.BNStatLoss), recover_calls(BNStatLoss)
    print(f"recover step, batch 25 / 100: {recover_calls(BNStatLoss, 25)} / "
          f"{recover_calls(BNStatLoss, 100)} operator calls")  # fmt: skip
    print(f"recover step (ResNet-18, 20 BN layers): {before} operator calls before, {after} after")

    with tempfile.TemporaryDirectory() as tmp:
        classes = 10
        write_photos(Path(tmp), classes, args.images // classes)
        root = Path(tmp) / "train"
        paths = np.array(sorted(str(p.relative_to(root)) for p in root.rglob("*.JPEG")))
        rates = loader_rates(root, paths, args.jpeg_size, 100)
        print(
            "loader images/s, 1 / 2 / 4 decoding threads: "
            + " / ".join(f"{rates[w]:.0f}" for w in (1, 2, 4))
        )
        ra = rand_augment("rand-m6-n2-mstd1.0", 224, [0.485, 0.456, 0.406])
        photos = ImageFiles(root, paths[:64], 224)[np.arange(64)]
        t = time.perf_counter()
        ra(photos)
        print(f"RandAugment images/s at 224 px, one thread: {64 / (time.perf_counter() - t):.0f}")
        decode, compute, both = teacher_epoch(root, paths, args.jpeg_size, 100, args.repeats)
        torch.set_num_threads(args.threads)
    print(
        f"teacher epoch on files ({len(paths)} JPEGs, {args.jpeg_size} px): decode {decode:.2f} s, "
        f"compute {compute:.2f} s, overlapped {both:.2f} s = "
        f"{both / max(decode, compute):.2f} x max(decode, compute)"
    )

    bench = StudentBench(100)
    bench.step(), bench.floor()  # warm-up
    steps, floors = [], []
    for _ in range(args.repeats):
        floors.append(median_time(bench.floor, 1, 10))
        steps.append(median_time(bench.step, 1, 10))
    step, floor = statistics.median(steps), statistics.median(floors)
    print(f"student step (batch 100): {step * 1e3:.2f} ms; floor {floor * 1e3:.2f} ms")
    print(f"student calls per step, batch 25 and 200: {calls[25]} {calls[200]}")
    print(f"recover calls per step, before and after: {before} {after}")
    print(f"student/floor ratio: {step / floor:.3f}")


if __name__ == "__main__":
    main()
