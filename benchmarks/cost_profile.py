"""A device profile for `ddflow plan --cost`: measured FLOP/s of the three kinds of step.

For each model and image size: a recovery step (forward, backward to the input, frozen
eval-mode model: the floor the recovery loop runs within ~1.1x of, benchmarks/recover_speed.py),
a training step (forward, backward, AdamW: the student and teacher floor, within ~1.01x,
benchmarks/student_speed.py) and a no-grad forward (teacher passes). FLOPs are the forward's as
ddflow.forecast counts them (2 per multiply-add, on the meta device) times 2 / 3 / 1. Writes the
profile JSON the forecast reads (default: src/ddflow/profiles/<device>.json) and prints a table.

    python benchmarks/cost_profile.py                 # this machine's CPU or GPU, default cases
    python benchmarks/cost_profile.py --quick         # one small case a kind (CI, a smoke test)
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from datetime import date
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ddflow.forecast import RECOVER_FORWARDS, TRAIN_FORWARDS, count_model  # noqa: E402
from ddflow.models import build_model  # noqa: E402

CPU_CASES = [("convnet_d3", 32, 64), ("resnet18_lowres", 32, 32), ("resnet18_lowres", 64, 16),
             ("torchvision:resnet18", 224, 8)]  # fmt: skip
GPU_CASES = [("convnet_d3", 32, 256), ("resnet18_lowres", 32, 256), ("resnet18_lowres", 64, 128),
             ("torchvision:resnet18", 224, 100), ("torchvision:resnet50", 224, 64),
             ("torchvision:densenet121", 224, 64), ("convnet_d4", 224, 64)]  # fmt: skip


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda {torch.cuda.get_device_name(device)}"
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M)
        model = found[1].strip() if found else model
    return f"cpu {model} ({torch.get_num_threads()} threads)"


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step, device, repeats: int) -> float:
    """Median seconds of `step()` over `repeats`, after two warm-up calls."""
    for _ in range(2):
        step()
    _sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def measure(arch: str, size: int, batch: int, device: torch.device, repeats: int) -> dict:
    chw = (3, size, size)
    fwd = count_model(arch, 1000, chw).flops * batch
    model = build_model(arch, 1000, 3, (size, size)).to(device)
    x = torch.randn(batch, *chw, device=device)
    y = torch.randint(0, 1000, (batch,), device=device)

    def recover():
        xi = x.detach().requires_grad_(True)
        model(xi).logsumexp(1).sum().backward()

    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def train():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    def infer():
        with torch.no_grad():
            model(x)

    model.eval().requires_grad_(False)
    t_rec = timed(recover, device, repeats)
    model.requires_grad_(True).train()
    t_train = timed(train, device, repeats)
    model.eval()
    t_inf = timed(infer, device, repeats)
    return {
        "recover": RECOVER_FORWARDS * fwd / t_rec,
        "train": TRAIN_FORWARDS * fwd / t_train,
        "inference": fwd / t_inf,
        "batch": batch,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="one small case (a smoke test)")
    ap.add_argument("--out", help="profile path (default: src/ddflow/profiles/<device>.json)")
    args = ap.parse_args()
    device = torch.device(args.device)
    cases = GPU_CASES if device.type == "cuda" else CPU_CASES
    if args.quick:
        cases = cases[:1]
    name = device_name(device)
    rates = {"recover": {}, "train": {}, "inference": {}}
    print(f"{'model @ size':32} {'batch':>5} {'recover TF/s':>13} {'train TF/s':>11} "
          f"{'infer TF/s':>11}")  # fmt: skip
    for arch, size, batch in cases:
        r = measure(arch, size, batch, device, args.repeats)
        for kind in rates:
            rates[kind][f"{arch}@{size}"] = r[kind]
        print(f"{arch + ' @ ' + str(size):32} {batch:>5} {r['recover'] / 1e12:>13.3f} "
              f"{r['train'] / 1e12:>11.3f} {r['inference'] / 1e12:>11.3f}", flush=True)  # fmt: skip
    profile = {
        "device": name,
        "measured": str(date.today()),
        "by": f"benchmarks/cost_profile.py (torch {torch.__version__})",
        "rates": rates,
    }
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    out = Path(args.out) if args.out else ROOT / "src" / "ddflow" / "profiles" / f"{slug}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(profile, indent=1, sort_keys=True) + "\n")
    print(f"profile: {out}")


if __name__ == "__main__":
    main()
