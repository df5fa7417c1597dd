"""`ddflow plan --cost`: the forecast's counts against independent references (hand formulas,
the bytes a budget really encodes, a real run's recorded iterations), and it prints for every
shipped full config."""

import glob
import math
import subprocess

import numpy as np
import pytest
import torch

from ddflow.config import load_config, student_protocols, validate_config
from ddflow.forecast import (
    Stage,
    _image_iterations,
    count_model,
    forecast,
    hours,
    label_bytes,
    render,
)
from ddflow.models import build_model

from conftest import ROOT


def test_a_models_flops_and_parameters_are_counted_exactly():
    """ConvNet-D3 on 32 px: three 3x3 convolutions of 128 channels (32, 16, 8 px) and a Linear
    over 128 x 4 x 4 features, 2 FLOPs a multiply-add."""
    m = count_model("convnet_d3", 10, (3, 32, 32))
    by_hand = 2 * (9 * 3 * 128 * 32**2 + 9 * 128 * 128 * 16**2 + 9 * 128 * 128 * 8**2 + 2048 * 10)
    assert m.flops == by_hand
    assert m.params == sum(
        p.numel() for p in build_model("convnet_d3", 10, 3, (32, 32)).parameters()
    )
    regnet = count_model(
        "torchvision:regnet_y_8gf", 1000, (3, 224, 224)
    )  # built off the meta device
    assert 15e9 < regnet.flops < 18e9  # torchvision: 8.47 GMACs


@pytest.mark.parametrize(
    "budget",
    [{}, {"topk": 3}, {"dtype": "int8"}, {"topk": 4, "dtype": "int8", "keep": 0.5},
     {"keep": 0.3, "keep_unit": "batch"}, {"keep": 0.3, "keep_unit": "batch",
                                           "pool_skip_last": False}],
)  # fmt: skip
def test_label_bytes_at_a_budget_are_what_the_student_reads(budget):
    from ddflow.data.pixels import Normalizer
    from ddflow.labels.budget import LabelBudget
    from ddflow.labels.stored import StoredLabels, at_budget, relabel

    student = {"labels": "stored", "epochs": 4, "batch_size": 8}
    cfg = validate_config({"dataset": {"name": "d", "source": "mnist-embedded"}, "ipc": [3],
                           "teacher": {}, "methods": {"r": {"kind": "random"}},
                           "student": student})  # fmt: skip
    recipe = student_protocols(cfg["student"])["stored"]
    images = np.random.default_rng(0).integers(0, 255, (30, 8, 8, 1), dtype=np.uint8)
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
    stored = relabel(images, teacher, Normalizer([0.5], [0.2]), recipe, 8, 0, range(1, 5))
    b = LabelBudget.from_config(budget)
    read = StoredLabels(at_budget(stored, b, recipe["relabel_seed"]), b)
    assert label_bytes(budget, recipe, 30, 8, 10) == read.bytes["logits"] + read.bytes["views"]


def test_delt_image_iterations_are_the_rounds_by_hand_and_a_runs_record():
    """IPC 3, MI 4, RI 2: two rounds; groups of 2 and 1 images optimised 4 and 2 steps."""
    from ddflow.data.pixels import Normalizer
    from ddflow.recover.delt import recover_delt_shard
    from ddflow.recover.init import gaussian_init
    from ddflow.recover.shards import Shard

    cfg = validate_config({"dataset": {"name": "d", "source": "mnist-embedded"}, "ipc": [3],
                           "teacher": {}, "student": {},
                           "methods": {"d": {"kind": "delt", "iterations": 4,
                                             "round_iterations": 2, "init": "gaussian",
                                             "jitter": 0, "batch_images": 6}}})  # fmt: skip
    m = cfg["methods"]["d"]
    assert _image_iterations(m, 2, 3) == 2 * (4 + 4 + 2)
    sre2l = {**m, "kind": "sre2l"}
    assert _image_iterations(sre2l, 2, 3) == 2 * 3 * 4
    teacher = build_model("convnet_d3", 10, 1, (8, 8)).eval()
    norm = Normalizer([0.5], [0.2])
    out = recover_delt_shard(teacher, norm, gaussian_init(6, (1, 8, 8), 0), m, "x",
                             Shard(0, 2, 0, 3), torch.device("cpu"), 100, None)  # fmt: skip
    assert int(out["iterations"].sum()) == _image_iterations(m, 2, 3)


def test_hours_are_flops_over_the_measured_rate_or_the_median_one():
    profile = {"device": "d", "rates": {"train": {"a@32": 2e12, "b@32": 4e12, "c@32": 9e12}}}
    exact = Stage("s", 1, "w", flops=3.6e15, kind="train", arch="a", size=32)
    assert hours(exact, profile) == (3.6e15 / 2e12 / 3600, False)
    other = Stage("s", 1, "w", flops=3.6e15, kind="train", arch="z", size=32)
    assert hours(other, profile) == (3.6e15 / 4e12 / 3600, True)  # median of 2, 4, 9
    assert hours(Stage("s", 1, "w", flops=1.0, kind="recover"), profile) is None


def test_a_stage_at_its_batch_fits_what_a_real_step_takes():
    """The recovery forecast's device figure is the activations at its batch (x STEP_MEMORY) and
    the weights: a measured ResNet-18 224-px recovery step at batch 100 stays below it."""
    cfg = load_config(str(ROOT / "config/cda/table4_imagenet1k.full.yaml"))
    rows = {r.stage: r for r in forecast(cfg)}
    rec = rows["recover cda"]
    r18 = count_model("torchvision:resnet18", 1000, (3, 224, 224))
    assert rec.device > 100 * r18.activations and rec.largest == 100 * r18.largest
    assert rec.flops == 1000 * 200 * 4000 * 2 * r18.flops  # forward + backward to the input
    assert rec.work == f"{1000 * 200 * 4000:,} image-iterations"  # 1,000 classes x IPC 200


def test_the_applications_are_costed_by_hand():
    """Figure 8: 100 steps of 10 classes, every 10th trained (steps 10..100 see 10%..100% of the
    set, 5.5 sets in all), SRe2L-CL's 100 epochs, 3 sets x 3 seeds. Table 6: the slimmed VGG-11
    retrained under the student's 300 epochs on 4 sets x 2 IPCs x 3 seeds, each set tested with
    the unpruned and the slimmed network."""
    cfg = load_config(str(ROOT / "config/delt/figure8_incremental_imagenet1k.full.yaml"))
    rows = {r.stage: r for r in forecast(cfg)}
    inc, r18 = rows["incremental"], count_model("torchvision:resnet18", 1000, (3, 224, 224))
    assert inc.jobs == 3 * 3
    image_epochs = 5.5 * 1000 * 10 * 100 * 9
    assert inc.work.startswith(f"{int(image_epochs):,} image-epochs")
    tests = 1 * 50_000 * 5.5 * r18.flops * 9  # one evaluation (eval_every 100) of the seen classes
    assert inc.flops == pytest.approx(image_epochs * 4 * r18.flops + tests)  # + online teacher
    assert inc.device > 256 * r18.activations  # SRe2L-CL's batch of 256

    cfg = load_config(str(ROOT / "config/delt/table6_pruning_imagenet1k.full.yaml"))
    rows = {r.stage: r for r in forecast(cfg)}
    pr, vgg = rows["pruning"], count_model("torchvision:vgg11_bn", 1000, (3, 224, 224))
    assert pr.jobs == 4 * 2 * 3 and pr.arch == "torchvision:vgg11_bn"
    image_epochs = (10 + 50) * 1000 * 300 * 4 * 3
    assert pr.work.startswith(f"{image_epochs:,} image-epochs")
    evals = math.ceil(300 / cfg["student"]["eval_every"]) * 50_000 * vgg.flops
    tested = 2 * 50_000 * vgg.flops
    expect = image_epochs * 4 * vgg.flops + (evals + tested) * 4 * 2 * 3
    assert pr.flops == pytest.approx(expect)


FULL = sorted(glob.glob(str(ROOT / "config/*/*.full.yaml")))


def test_every_full_config_has_a_forecast():
    for path in FULL:
        cfg = load_config(path)
        text = render(cfg, forecast(cfg))
        assert "| total |" in text, path
        assert math.isfinite(sum(r.flops for r in forecast(cfg))), path


def test_ddflow_plan_cost_prints_beside_the_papers_hours():
    out = subprocess.run(["ddflow", "plan", "--cost", "config/delt/table1_imagenet1k.full.yaml"],
                         capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "not checked against its data" in out.stdout  # the data is not on this machine
    assert "| recover delt | 1600 | 370,000,000 image-iterations |" in out.stdout
    assert "'Ours (RI = 500)' / 'Dataset (hours) / ImageNet-1K': 17.6 h" in out.stdout
