"""Scheduler resources from the stage and the dataset, as Snakemake sees them."""

import re
import subprocess

import yaml

from ddflow.resources import (
    data_mem_mb,
    distilled_mem_mb,
    recover_runtime_min,
    training_runtime_min,
)

from conftest import ROOT, snakemake_cmd

TINY = yaml.safe_load((ROOT / "tests" / "data" / "tiny.yaml").read_text())


def test_estimates_follow_the_work_and_grow_with_each_retry():
    in1k = {"source": "imagefolder", "max_train_per_class": None}
    cifar = {"source": "cifar10", "max_train_per_class": None}
    # ImageNet shard: 100 classes x 10 IPC x 4000 iterations at 224 px on one GPU
    gpu = recover_runtime_min(in1k, "cuda", 1000, 4000)
    assert 30 <= gpu <= 300
    assert recover_runtime_min(in1k, "cuda", 1000, 4000, attempt=2) == 2 * gpu
    assert recover_runtime_min(cifar, "cuda", 100, 1000) == 10  # floor of 10 minutes
    assert recover_runtime_min(cifar, "cpu", 1000, 1000) > recover_runtime_min(
        cifar, "cuda", 1000, 1000
    )
    assert training_runtime_min(cifar, "cpu", 50000, 200) > training_runtime_min(
        cifar, "cpu", 5000, 200
    )
    assert data_mem_mb(in1k, 1000) > 100_000 > data_mem_mb(cifar, 10) > 2000


def test_file_storage_memory_follows_the_distilled_set_not_the_dataset():
    files = {"source": "imagefolder", "image_size": 224, "storage": "files"}
    assert data_mem_mb(files, 1000) == data_mem_mb(files, 10) < 10_000
    # ImageNet-1K IPC 100 at 224 px: 15 GB of uint8 pixels, held three times
    assert 3 * 14_355 < distilled_mem_mb(files, 1000, 100) - data_mem_mb(files, 1000) < 3 * 14_360
    assert distilled_mem_mb(files, 1000, 10) < distilled_mem_mb(files, 1000, 50)


def _dry_run_resources(tmp_path, device):
    cfg = {**TINY, "runtime": {**TINY["runtime"], "device": device}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    out = subprocess.run(
        snakemake_cmd(tmp_path, tmp_path / "c.yaml", "-n"), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    blocks = re.split(r"\n(?=(?:local)?rule \w+:)", out.stdout)
    return {
        re.match(r"(?:local)?rule (\w+):", b).group(1): b
        for b in blocks
        if re.match(r"(?:local)?rule \w+:", b)
    }


def test_gpu_rules_ask_for_a_gpu_only_on_cuda(tmp_path):
    cuda = _dry_run_resources(tmp_path, "cuda")
    for rule in ("teacher", "recover_shard", "student", "diversity"):
        assert "gpu=1" in cuda[rule] and "runtime=" in cuda[rule], rule
    assert "gpu=" not in cuda["data"] and "gpu=" not in cuda["tables"]
    cpu = _dry_run_resources(tmp_path, "auto")
    assert all("gpu=1" not in b for b in cpu.values())
