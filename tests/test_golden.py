"""Golden numbers: a tiny CPU pipeline's outputs pinned in one place (tests/data/golden.json).

Data (embedded MNIST, capped), a one-epoch teacher, one CDA shard, one student: their numbers
must not move unless someone moves them on purpose. After a deliberate change, rerun with
`python tests/test_golden.py --record` and say why in the commit message. Bytes are compared on
the CPU kind that recorded them (float kernels differ across instruction sets); elsewhere the
summary numbers must agree within float noise. The CPU kind is torch's vector capability with the
CPU's AVX-512/AMX extensions (`cpu_kernels`).
"""

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ddflow.config import StageIds, student_protocols, validate_config  # noqa: E402
from ddflow.io import load_checkpoint, read_json  # noqa: E402
from ddflow.stages import run_data, run_recover_shard, run_teacher  # noqa: E402

GOLDEN = ROOT / "tests" / "data" / "golden.json"
CONFIG = {
    "dataset": {
        "name": "g",
        "source": "mnist-embedded",
        "max_train_per_class": 20,
        "max_test_per_class": 10,
    },
    "teacher": {"epochs": 1, "batch_size": 32},
    "ipc": [2],
    "methods": {"cda": {"kind": "cda", "iterations": 20, "batch_classes": 10, "jitter": 2}},
    "student": {"epochs": 3, "batch_size": 10, "eval_every": 1, "seeds": [0]},
    "runtime": {"threads": 1},
}


def measure(workdir: Path) -> dict:
    from ddflow.data.datasets import load_bundle
    from ddflow.stages import load_teacher
    from ddflow.train.student import train_student

    torch.set_num_threads(1)
    cfg = validate_config(CONFIG)
    ids = StageIds(cfg)
    npz, meta = str(workdir / "d.npz"), str(workdir / "m.json")
    run_data(cfg["dataset"], npz, meta)
    ckpt, tmetrics = str(workdir / "t.pt"), str(workdir / "t.json")
    run_teacher(npz, meta, cfg["teacher"], ids.teacher, cfg["runtime"], ckpt, tmetrics)
    shard = workdir / "s.npz"
    run_recover_shard(
        npz, meta, ckpt, None, cfg["methods"]["cda"], ids.method("cda"),
        "c00000-00010_i0000-0002", cfg["runtime"], str(shard), threads=1,
    )  # fmt: skip
    with np.load(shard) as z:
        images = z["images"]
    bundle = load_bundle(npz, meta)
    teacher, _ = load_teacher(ckpt, bundle.classes)
    recipe = student_protocols(cfg["student"])["online"]
    student = train_student(images, teacher, bundle, recipe, 0, torch.device("cpu"))
    weights, _ = load_checkpoint(ckpt)
    return {
        "cpu_capability": cpu_kernels(),
        "teacher_top1": read_json(tmetrics)["test_top1"],
        "teacher_weight_sum": round(float(sum(v.double().sum() for v in weights.values())), 6),
        "shard_sha256": hashlib.sha256(images.tobytes()).hexdigest(),
        "shard_mean": round(float(images.mean()), 4),
        "shard_std": round(float(images.std()), 4),
        "student_top1_last": student["top1_last"],
        "student_curve_loss": [round(p["train_loss"], 6) for p in student["curve"]],
    }


def cpu_kernels() -> str:
    """What picks the float kernels: torch's vector capability and the CPU's wide-vector and
    matrix extensions (AVX-512 machines with AMX run other oneDNN kernels than those without)."""
    flags = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    wide = sorted(f for f in flags if f.startswith(("avx512", "amx", "avx_vnni")))
    return " ".join([torch.backends.cpu.get_cpu_capability(), *wide])


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    return measure(tmp_path_factory.mktemp("golden"))


def test_the_pipeline_still_gives_its_pinned_numbers(measured):
    golden = json.loads(GOLDEN.read_text())
    same_cpu = measured["cpu_capability"] == golden["cpu_capability"]
    if same_cpu:
        assert measured == golden, "golden numbers moved: see tests/test_golden.py"
    else:  # other float kernels: the same algorithm gives the same numbers up to noise
        assert measured["shard_mean"] == pytest.approx(golden["shard_mean"], abs=0.5)
        assert measured["shard_std"] == pytest.approx(golden["shard_std"], abs=0.5)
        assert measured["teacher_top1"] == pytest.approx(golden["teacher_top1"], abs=5)
        assert measured["student_curve_loss"] == pytest.approx(
            golden["student_curve_loss"], rel=0.05
        )


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        GOLDEN.write_text(json.dumps(measure(Path(d)), indent=2, sort_keys=True) + "\n")
    print(f"recorded {GOLDEN}")
