"""Bad inputs and faults: each ends in one message that names the file or key and the fix.

Each case builds its bad input in a temporary folder, runs the ddflow code that reads it, and
checks the message (not only that something raised). Malicious pickles must not run.
"""

import json
import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from ddflow.config import ConfigError, load_config, validate_config
from ddflow.data.datasets import DataError, load_bundle, prepare
from ddflow.errors import DdflowError
from ddflow.io import (
    CorruptArtifactError,
    load_checkpoint,
    load_npz,
    save_checkpoint,
    save_npz,
    write_json,
)

from conftest import ROOT, snakemake_cmd, with_key

BASE = {
    "dataset": {"name": "digits", "source": "mnist-embedded"},
    "teacher": {"arch": "convnet_d3"},
    "student": {"arch": "convnet_d3"},
    "ipc": [1],
    "methods": {"random": {"kind": "random"}},
}


def _with(path: str, value):
    return with_key(BASE, path, value)


CONFIG_CASES = [
    ("dataset.name", "..", "config key 'dataset.name': '..' becomes part of an output path"),
    ("dataset.name", "a/b", "config key 'dataset.name': 'a/b' becomes part of an output path"),
    ("report.name", "..", "config key 'report.name': '..' becomes part of an output path"),
    ("report.name", ".hidden", "config key 'report.name': '.hidden' becomes part of"),
    ("teacher.arch", "../evil", "config key 'teacher.arch': '../evil' becomes part of"),
    ("student.arch", "torchvision:../x", "config key 'student.arch'"),
    ("ranker", {"arch": "a/b", "pretrained": "X"}, "config key 'ranker.arch': 'a/b' becomes"),
    ("teacher.arch", "resnet_18", "config key 'teacher.arch': unknown model 'resnet_18'"),
    ("student.arch", "timm", "config key 'student.arch': unknown model 'timm'"),
    ("methods", {"a/b": {"kind": "random"}}, "config key 'methods'"),
    ("report.paper", {"tables": ["cda/table99"], "scale": "mini"}, "no published numbers for"),
    ("report.paper", {"tables": ["cda/table4"]}, "'scale' is a required property"),
    ("student.lr", -1, "config key 'student.lr'"),
    ("ipc", [0], "config key 'ipc.0'"),
    ("dataset.source", "cifar10", "config key 'dataset.root': source 'cifar10' needs a data root"),
]


@pytest.mark.parametrize(("key", "value", "message"), CONFIG_CASES)
def test_bad_config_value_names_the_key(key, value, message):
    with pytest.raises(ConfigError, match=None) as e:
        validate_config(_with(key, value))
    assert message in str(e.value)


def test_library_model_names_are_resolved_by_ddflow_check(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(_with("teacher.arch", "torchvision:resnet_18")))
    out = subprocess.run(["ddflow", "check", str(cfg)], capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "config key 'teacher.arch': torchvision has no model 'resnet_18'" in out.stderr
    assert "'resnet18'" in out.stderr  # the closest names


YAML_CASES = [
    ("dataset:\n  name: a\n  name: b\n", "line 3, column 3: key 'name' is given twice"),
    ("dataset: {name: a\n  x: [\n", "line 2, column 4: not valid YAML"),
    ("- a\n- b\n", "a config is a mapping of keys, not a list"),
    ("methods:\n  random: {kind: random}\n  random: {kind: random}\n", "key 'random' is given"),
]


@pytest.mark.parametrize(("text", "message"), YAML_CASES)
def test_config_files_are_read_strictly(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(str(path))
    assert str(path) in str(e.value) and message in str(e.value)


def test_yaml_merge_keys_may_be_overridden(tmp_path):
    path = tmp_path / "merge.yaml"
    cfg = {**BASE, "methods": {"random": {"kind": "random", "seed": 1}}}
    text = yaml.safe_dump(cfg).replace("  random:\n", "  base: &b {kind: random}\n  random:\n")
    path.write_text(text.replace("    kind: random\n    seed: 1", "    <<: *b\n    seed: 1", 1))
    assert load_config(str(path))["methods"]["random"]["seed"] == 1


def test_snakemake_refuses_a_repeated_key(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text(yaml.safe_dump(BASE) + "ipc: [2]\n")
    out = subprocess.run(snakemake_cmd(tmp_path, path, "-n"), capture_output=True, text=True)
    assert out.returncode != 0
    assert "key 'ipc' is given twice in one block" in out.stdout + out.stderr


# ---- data: pickles, images, folders -------------------------------------------------------


class _Exploit:
    marker = None

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_pickle(path, marker, payload_key):
    _Exploit.marker = marker
    obj = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], payload_key: _Exploit()}
    path.write_bytes(pickle.dumps(obj))


@pytest.fixture
def cifar_root(tmp_path):
    """A CIFAR-10 python layout (2 images a class) written with plain pickle."""
    base = tmp_path / "cifar" / "cifar-10-batches-py"
    base.mkdir(parents=True)
    names = [f"c{i}" for i in range(10)]
    (base / "batches.meta").write_bytes(pickle.dumps({b"label_names": [n.encode() for n in names]}))
    rng = np.random.default_rng(0)
    for f in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        data = rng.integers(0, 255, (20, 3072), dtype=np.uint8)
        (base / f).write_bytes(pickle.dumps({b"data": data, b"labels": list(range(10)) * 2}))
    return tmp_path / "cifar"


def _prepare(tmp_path, ds):
    ds = validate_config({**BASE, "dataset": ds})["dataset"]
    return prepare(ds, str(tmp_path / "out" / "dataset.npz"), str(tmp_path / "out" / "meta.json"))


@pytest.mark.parametrize("target", ["data_batch_3", "test_batch", "batches.meta"])
def test_a_malicious_cifar_pickle_never_runs(cifar_root, tmp_path, target):
    marker = tmp_path / "pwned"
    _evil_pickle(cifar_root / "cifar-10-batches-py" / target, marker, b"extra")
    with pytest.raises(DataError) as e:
        _prepare(tmp_path, {"name": "c", "source": "cifar10", "root": str(cifar_root)})
    assert not marker.exists(), "the pickle's code ran"
    assert f"refusing to load '{cifar_root / 'cifar-10-batches-py' / target}'" in str(e.value)
    assert "asks to import posix.system" in str(e.value)


def test_a_truncated_cifar_batch_names_the_file(cifar_root, tmp_path):
    batch = cifar_root / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(batch.read_bytes()[:500])
    with pytest.raises(DataError) as e:
        _prepare(tmp_path, {"name": "c", "source": "cifar10", "root": str(cifar_root)})
    assert f"'{batch}' is not a readable CIFAR python batch" in str(e.value)
    assert "extract it again" in str(e.value)


def test_the_plain_cifar_layout_still_loads(cifar_root, tmp_path):
    bundle = _prepare(tmp_path, {"name": "c", "source": "cifar10", "root": str(cifar_root)})
    assert bundle.train_x.shape == (100, 32, 32, 3) and bundle.classes[3] == "c3"


def _folder(root, classes, n=2, size=(12, 10)):
    for split in ("train", "test"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                arr = np.full((*size, 3), 40 * i, np.uint8)
                Image.fromarray(arr).save(root / split / c / f"{i}.png")
    return root


@pytest.mark.parametrize("storage", ["array", "files"])
def test_unicode_and_spaces_in_class_names_are_valid(tmp_path, storage):
    classes = ["dog with space", "kätze-猫"]
    root = _folder(tmp_path / "imgs", classes)
    ds = {"name": "u", "source": "imagefolder", "root": str(root)}
    if storage == "files":
        ds.update(storage="files", image_size=8)
    _prepare(tmp_path, ds)
    bundle = load_bundle(str(tmp_path / "out/dataset.npz"), str(tmp_path / "out/meta.json"))
    assert bundle.classes == sorted(classes)
    assert np.asarray(bundle.train_x[:]).shape[0] == 4


@pytest.mark.parametrize("storage", ["array", "files"])
@pytest.mark.parametrize("damage", ["truncated", "not an image"])
def test_a_damaged_image_names_the_file(tmp_path, storage, damage):
    root = _folder(tmp_path / "imgs", ["a", "b"])
    bad = root / "train" / "b" / "1.png"
    if damage == "truncated":
        bad.write_bytes(bad.read_bytes()[:40])
    else:
        bad.write_text("<html>not found</html>")
    ds = {"name": "d", "source": "imagefolder", "root": str(root)}
    if storage == "files":
        ds.update(storage="files", image_size=8, mean=[0.5] * 3, std=[0.2] * 3)
    with pytest.raises(DataError) as e:
        _prepare(tmp_path, ds)
        load_bundle(str(tmp_path / "out/dataset.npz"), str(tmp_path / "out/meta.json"))
        bundle = load_bundle(str(tmp_path / "out/dataset.npz"), str(tmp_path / "out/meta.json"))
        bundle.train_x[:]
    assert f"cannot read image '{bad}'" in str(e.value)
    assert "truncated or not an image" in str(e.value)


def test_an_empty_class_folder_is_refused(tmp_path):
    root = _folder(tmp_path / "imgs", ["a", "b"])
    for f in (root / "test" / "b").iterdir():
        f.unlink()
    with pytest.raises(DataError) as e:
        _prepare(tmp_path, {"name": "e", "source": "imagefolder", "root": str(root)})
    assert f"class folder '{root / 'test' / 'b'}' holds no images" in str(e.value)


def test_a_dead_link_class_folder_is_refused(tmp_path):
    root = _folder(tmp_path / "imgs", ["a", "b"])
    (root / "train" / "c").symlink_to(tmp_path / "gone")
    with pytest.raises(DataError) as e:
        _prepare(tmp_path, {"name": "e", "source": "imagefolder", "root": str(root)})
    assert "holds links to nothing: ['c']" in str(e.value)


# ---- checkpoints ----------------------------------------------------------------------------


def _teacher_cfg(path):
    return {"arch": "convnet_d3", "checkpoint": str(path)}


def _load_teacher(path):
    from ddflow.models.pretrained import load_pretrained

    return load_pretrained(
        _teacher_cfg(path), [str(i) for i in range(10)], (1, 28, 28), [0.1], [0.3]
    )


def _state():
    from ddflow.models.registry import build_model

    return build_model("convnet_d3", 10, 1, (28, 28)).state_dict()


CHECKPOINT_CASES = {
    "truncated": (lambda p: p.write_bytes(_saved(p)[:300]), "cannot be read as a weights file"),
    "text file": (lambda p: p.write_text("not torch"), "cannot be read as a weights file"),
    "a list": (lambda p: torch.save([1, 2], p), "holds a list, not a state dict"),
    "non-finite": (lambda p: torch.save(_nan_state(), p), "hold non-finite values"),
}


def _saved(p):
    torch.save(_state(), p)
    return p.read_bytes()


def _nan_state():
    state = _state()
    next(v for v in state.values() if v.is_floating_point()).fill_(float("nan"))
    return state


@pytest.mark.parametrize("case", sorted(CHECKPOINT_CASES))
def test_a_bad_teacher_checkpoint_names_the_file(tmp_path, case):
    path = tmp_path / "observer.pth"
    write, message = CHECKPOINT_CASES[case]
    write(path)
    with pytest.raises(DdflowError) as e:
        _load_teacher(path)
    assert message in str(e.value)
    if "weights file" in message:
        assert f"'{path}'" in str(e.value)


def test_a_malicious_checkpoint_never_runs(tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / "observer.pth"
    _Exploit.marker = marker
    torch.save({"model": _state(), "extra": _Exploit()}, path)
    with pytest.raises(DdflowError) as e:
        _load_teacher(path)
    assert not marker.exists()
    assert "holds Python objects beyond tensors (refused" in str(e.value)


# ---- intermediates written by ddflow --------------------------------------------------------


def _truncate(path, keep=200):
    path.write_bytes(path.read_bytes()[:keep])


def test_a_damaged_intermediate_npz_says_delete_and_rerun(tmp_path):
    path = tmp_path / "shard.npz"
    save_npz(path, images=np.zeros((4, 8, 8, 3), np.uint8))
    _truncate(path)
    with pytest.raises(CorruptArtifactError) as e:
        load_npz(path, "images")
    assert f"'{path}' cannot be read" in str(e.value) and "Delete it and rerun" in str(e.value)


def test_a_damaged_dataset_npz_says_delete_and_rerun(tmp_path):
    root = _folder(tmp_path / "imgs", ["a", "b"])
    _prepare(tmp_path, {"name": "x", "source": "imagefolder", "root": str(root)})
    npz = tmp_path / "out/dataset.npz"
    _truncate(npz, 1000)
    with pytest.raises(CorruptArtifactError) as e:
        load_bundle(str(npz), str(tmp_path / "out/meta.json"))
    assert f"'{npz}' cannot be read" in str(e.value)


def test_a_damaged_teacher_checkpoint_says_delete_and_rerun(tmp_path):
    path = tmp_path / "teacher.pt"
    save_checkpoint(path, _state(), {"arch": "convnet_d3"})
    _truncate(path, 500)
    with pytest.raises(CorruptArtifactError) as e:
        load_checkpoint(path)
    assert f"'{path}' cannot be read" in str(e.value)


def test_a_malicious_teacher_pt_in_results_never_runs(tmp_path):
    """results/ may be shared or copied: its teacher.pt is loaded with weights_only too."""
    marker, path = tmp_path / "pwned", tmp_path / "teacher.pt"
    _Exploit.marker = marker
    torch.save({"state_dict": _state(), "meta_json": "{}", "x": _Exploit()}, path)
    with pytest.raises(CorruptArtifactError) as e:
        load_checkpoint(path)
    assert not marker.exists()
    assert f"'{path}' cannot be read (UnpicklingError" in str(e.value)


def test_a_damaged_distilled_image_says_delete_and_rerun(tmp_path):
    from ddflow.distilled import read_distilled

    images = tmp_path / "images"
    (images / "0").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(images / "0" / "0.png")
    _truncate(images / "0" / "0.png", 30)
    manifest = {"classes": ["0"], "files": [{"file": "0/0.png", "label": 0}]}
    write_json(tmp_path / "manifest.json", manifest)
    with pytest.raises(CorruptArtifactError) as e:
        read_distilled(str(images), str(tmp_path / "manifest.json"), ["0"])
    assert "0.png' cannot be read" in str(e.value)
    # an image changed but still readable: its manifest checksum catches it
    Image.fromarray(np.ones((8, 8, 3), np.uint8)).save(images / "0" / "0.png")
    write_json(
        tmp_path / "manifest.json",
        {**manifest, "files": [{**manifest["files"][0], "sha256": "0" * 64}]},
    )
    with pytest.raises(CorruptArtifactError) as e:
        read_distilled(str(images), str(tmp_path / "manifest.json"), ["0"])
    assert "does not match the sha256 in" in str(e.value)


def test_a_silently_changed_intermediate_fails_its_checksum(tmp_path):
    path = tmp_path / "shard.npz"
    save_npz(path, images=np.zeros((4, 8, 8, 3), np.uint8), labels=np.arange(4))
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["images"][0, 0, 0, 0] = 1  # one flipped pixel, a valid file
    np.savez(path, **arrays)
    with pytest.raises(CorruptArtifactError) as e:
        load_npz(path, "images")
    assert "does not match the checksum recorded when it was written" in str(e.value)
    ckpt = tmp_path / "teacher.pt"
    save_checkpoint(ckpt, _state(), {})
    blob = torch.load(ckpt, weights_only=True)
    next(iter(blob["state_dict"].values())).add_(1.0)
    torch.save(blob, ckpt)
    with pytest.raises(CorruptArtifactError) as e:
        load_checkpoint(ckpt)
    assert "do not match their checksum" in str(e.value)


# ---- training and writing -----------------------------------------------------------------


def _digits_bundle(tmp_path):
    return _prepare(
        tmp_path,
        {
            "name": "m",
            "source": "mnist-embedded",
            "max_train_per_class": 6,
            "max_test_per_class": 2,
        },
    )


def test_a_diverging_teacher_stops_before_writing(tmp_path):
    from ddflow.train.common import TrainingDiverged
    from ddflow.train.teacher import train_teacher

    cfg = validate_config({**BASE, "teacher": {"arch": "convnet_d3", "lr": 1e12, "epochs": 2}})
    with pytest.raises(TrainingDiverged) as e:
        train_teacher(_digits_bundle(tmp_path), cfg["teacher"], torch.device("cpu"))
    assert re.search(r"^teacher training diverged at epoch [12] \(", str(e.value))
    assert "Lower teacher.lr" in str(e.value)


def test_a_diverging_student_stops_before_writing(tmp_path):
    from ddflow.config import student_protocols
    from ddflow.train.common import TrainingDiverged
    from ddflow.train.student import train_student

    bundle = _digits_bundle(tmp_path)
    cfg = validate_config({**BASE, "student": {"arch": "convnet_d3", "lr": 1e12, "epochs": 2}})
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10)).eval()
    with pytest.raises(TrainingDiverged) as e:
        recipe = student_protocols(cfg["student"])["online"]
        train_student(bundle.train_x[:10], teacher, bundle, recipe, 0, torch.device("cpu"))
    assert re.search(r"^student \(seed 0\) training diverged at epoch [12] \(", str(e.value))
    assert "Lower student.lr" in str(e.value)


def test_nan_never_reaches_a_json_result(tmp_path):
    with pytest.raises(ValueError) as e:
        write_json(tmp_path / "r.json", {"top1": float("nan")})
    assert "refusing to write a non-finite number" in str(e.value)
    assert not (tmp_path / "r.json").exists()


def test_results_get_the_umask_permissions(tmp_path):
    from ddflow.io import atomic_path

    mask = os.umask(0o022)
    os.umask(mask)
    write_json(tmp_path / "r.json", {"a": 1})
    with atomic_path(tmp_path / "images", is_dir=True) as d:
        (d / "x").write_text("x")
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o666 & ~mask
    assert (tmp_path / "images").stat().st_mode & 0o777 == 0o777 & ~mask


def test_a_full_disk_is_named(tmp_path):
    if os.geteuid() != 0 or sys.platform != "linux":
        pytest.skip("needs root to mount a small tmpfs")
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)]).returncode:
        pytest.skip("mount -t tmpfs is not permitted here")
    try:
        with pytest.raises(OSError) as e:
            save_npz(mnt / "big.npz", x=np.ones(1 << 20, np.uint8))
        assert f"no space left on device while writing '{mnt / 'big.npz'}'" in str(e.value)
        assert not list(mnt.iterdir()), "a partial file was left"
        with pytest.raises(OSError) as e:
            save_checkpoint(mnt / "teacher.pt", {"w": torch.ones(1 << 18)}, {})
        assert "no space left on device while writing" in str(e.value)
    finally:
        subprocess.run(["umount", "--lazy", str(mnt)])  # a traceback may still hold a handle


def test_a_job_prints_a_user_error_in_one_line(tmp_path):
    """Through Snakemake: a damaged image ends the data job with the message, no traceback."""
    root = _folder(tmp_path / "imgs", ["a", "b"])
    (root / "train" / "a" / "0.png").write_text("oops")
    cfg = {**BASE, "dataset": {"name": "bad", "source": "imagefolder", "root": str(root)}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = subprocess.run(
        snakemake_cmd(tmp_path, path, "--cores", "1", "--until", "data"),
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert f"ddflow error: cannot read image '{root / 'train' / 'a' / '0.png'}'" in text
    [log] = tmp_path.glob("results/bad/data-*/data.log")
    assert "Traceback" not in log.read_text()


# ---- caught before a job runs ---------------------------------------------------------------


def test_ipc_larger_than_a_class_is_caught_at_parse_time(tmp_path):
    cfg = {**BASE, "ipc": [30], "dataset": {**BASE["dataset"], "max_train_per_class": 20}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = subprocess.run(snakemake_cmd(tmp_path, path, "-n"), capture_output=True, text=True)
    assert out.returncode != 0
    assert "config key 'ipc': 30 images a class, but every class has only 20" in out.stdout


def test_ddflow_check_counts_folder_classes_for_ipc(tmp_path):
    root = _folder(tmp_path / "imgs", ["a", "b"], n=3)
    (root / "train" / "b" / "2.png").unlink()
    cfg = {**BASE, "ipc": [3], "dataset": {"name": "f", "source": "imagefolder", "root": str(root)}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = subprocess.run(["ddflow", "check", str(path)], capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "config key 'ipc': 3 images a class, but class 'b' has only 2" in out.stderr


def test_the_random_subset_names_the_ipc_key():
    from ddflow.baselines import random_subset

    with pytest.raises(DataError) as e:
        random_subset(np.array([0, 0, 1]), 2, 0, 2)
    assert "config key 'ipc': class 1 has 1 training images, fewer than IPC 2" in str(e.value)


def test_cuda_on_a_machine_without_it_names_the_key():
    from ddflow.compute import resolve_device

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError) as e:
        resolve_device("cuda")
    assert "config key 'runtime.device': 'cuda' but this machine has no CUDA device" in str(e.value)


@pytest.mark.parametrize("damage", ["truncated", "malicious"])
def test_an_unreadable_resume_state_only_restarts_the_shard(tmp_path, damage):
    from ddflow.recover.resume import ShardResume

    path = tmp_path / ".shard.npz.resume.pt"
    ShardResume(path, "stage/shard", every=5).finish(0, np.zeros((2, 3, 3, 1), np.uint8))
    marker = tmp_path / "pwned"
    if damage == "truncated":
        _truncate(path, 100)
    else:
        _Exploit.marker = marker
        torch.save({"identity": "stage/shard", "x": _Exploit()}, path)
    resumed = ShardResume(path, "stage/shard", every=5)
    assert resumed.finished(0) is None and not path.exists() and not marker.exists()


def test_cuda_without_it_stops_a_local_run_before_any_job(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**BASE, "runtime": {"device": "cuda"}}))
    plan = subprocess.run(snakemake_cmd(tmp_path, path, "-n"), capture_output=True, text=True)
    assert plan.returncode == 0  # a plan (say, on a cluster's login node) only warns
    assert "ddflow: warning: config key 'runtime.device': 'cuda'" in plan.stderr
    run = subprocess.run(
        snakemake_cmd(tmp_path, path, "--cores", "1"), capture_output=True, text=True
    )
    assert run.returncode != 0 and not (tmp_path / "results").exists()
    assert "config key 'runtime.device': 'cuda' but this machine has no CUDA" in run.stderr
    check = subprocess.run(["ddflow", "check", str(path)], capture_output=True, text=True)
    assert check.returncode == 0 and "warning (fine on a cluster" in check.stdout


@pytest.mark.workflow
def test_killing_snakemake_mid_teacher_and_mid_student_loses_nothing(tmp_path):
    """SIGKILL the whole run while the teacher trains, rerun, kill it while students train, rerun:
    no half-written file is ever left, and the finished teacher is not retrained."""
    import signal
    import time

    tiny = yaml.safe_load((ROOT / "tests" / "data" / "tiny.yaml").read_text())
    tiny["teacher"]["epochs"] = 15  # long enough to be killed mid-way
    tiny["student"]["epochs"] = 20
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny))

    def run_until(log_glob):
        unlock = snakemake_cmd(tmp_path, path, "--unlock")  # a killed run leaves its lock
        subprocess.run(unlock, capture_output=True, check=True)
        job = subprocess.Popen(
            snakemake_cmd(tmp_path, path, "--cores", "1"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        end = time.time() + 300
        while not list(tmp_path.glob(log_glob)) and job.poll() is None and time.time() < end:
            time.sleep(0.2)
        time.sleep(1.0)  # into the job's work
        assert job.poll() is None, "the run ended before the stage to kill"
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()

    def half_written():
        files = [p for p in tmp_path.glob("results/**/*") if p.is_file()]

        def empty_ok(p):  # a log, or Snakemake's marker in a directory output
            return p.suffix == ".log" or p.name == ".snakemake_timestamp"

        return [p for p in files if ".tmp" in p.name or (p.stat().st_size == 0 and not empty_ok(p))]

    run_until("results/tiny/teacher/*/teacher.log")
    assert not list(tmp_path.glob("results/tiny/teacher/*/teacher.pt"))
    assert not half_written()
    run_until("results/tiny/students/*/ipc2/student-*/seed0.log")
    [teacher] = tmp_path.glob("results/tiny/teacher/*/teacher.pt")
    trained = teacher.stat().st_mtime
    assert not list(tmp_path.glob("results/tiny/students/*/ipc2/student-*/seed0.json"))
    assert not half_written()
    subprocess.run(snakemake_cmd(tmp_path, path, "--unlock"), capture_output=True, check=True)
    out = subprocess.run(
        snakemake_cmd(tmp_path, path, "--cores", "1"), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert teacher.stat().st_mtime == trained  # finished work is kept
    assert len(list(tmp_path.glob("results/tiny/students/*/ipc2/student-*/seed0.json"))) == 2
    assert not half_written()


# ---- second round: nothing of the user's is deleted ------------------------------------------


def _a_set(tmp_path):
    """A distilled set as the workflow lays it out: results/<ds>/distilled/<m>-<id>/ipc1."""
    from ddflow.distilled import write_distilled

    set_dir = tmp_path / "results" / "digits" / "distilled" / "random-0123456789" / "ipc1"
    manifest = {"dataset": "digits", "method": "random", "method_id": "0123456789", "ipc": 1,
                "stage": {"method": {"kind": "random"}, "data": "d"}, "cost": {}}  # fmt: skip
    images = np.random.default_rng(0).integers(0, 255, (2, 8, 8, 3), dtype=np.uint8)
    write_distilled(str(set_dir / "images"), str(set_dir / "manifest.json"), images,
                    np.arange(2), np.zeros(2, int), ["a", "b"], manifest)  # fmt: skip
    return set_dir


def _export_cli(*args):
    return subprocess.run(["ddflow", "export", *map(str, args)], capture_output=True, text=True)


def _one_line_error(out, message):
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and message in out.stderr, out.stderr


def test_export_into_a_users_folder_refuses_and_the_file_survives(tmp_path):
    set_dir = _a_set(tmp_path)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    _one_line_error(_export_cli(set_dir, out), f"output '{out}' already exists and is not empty")
    assert (out / "thesis.tex").read_text() == "years of work"
    # --overwrite replaces only an earlier export: this folder was never one
    _one_line_error(_export_cli(set_dir, out, "--overwrite"), "was not written by ddflow export")
    assert (out / "thesis.tex").read_text() == "years of work"


@pytest.mark.parametrize(
    ("where", "message"),
    [("..", "contains the set"), (".", "is the set"), ("images/out", "lies inside the set")],
)
def test_export_around_or_inside_the_set_is_refused(tmp_path, where, message):
    set_dir = _a_set(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    from ddflow.export import export

    with pytest.raises(DdflowError) as e:
        export(str(set_dir), str(set_dir / where), overwrite=True)
    assert message in str(e.value) and "Choose a folder outside it" in str(e.value)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_export_over_an_earlier_export_needs_overwrite(tmp_path):
    from ddflow.export import export

    set_dir, out = _a_set(tmp_path), tmp_path / "exported"
    export(str(set_dir), str(out))
    assert (out / ".ddflow-made").is_file() and (out / "dataset").is_dir()
    with pytest.raises(DdflowError, match="pass --overwrite to replace an earlier ddflow export"):
        export(str(set_dir), str(out))
    (out / "README.md").write_text("stale card")
    export(str(set_dir), str(out), overwrite=True)
    assert "stale card" not in (out / "README.md").read_text()


def test_export_to_a_file_or_an_empty_folder(tmp_path):
    from ddflow.export import export

    set_dir = _a_set(tmp_path)
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    with pytest.raises(DdflowError, match="already exists and is not empty"):
        export(str(set_dir), str(target))
    with pytest.raises(DdflowError, match="was not written by ddflow export"):
        export(str(set_dir), str(target), overwrite=True)
    assert target.read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert export(str(set_dir), str(empty)) == empty and (empty / "manifest.json").is_file()


def test_export_of_a_folder_that_is_no_set_names_it(tmp_path):
    _one_line_error(_export_cli(tmp_path, tmp_path / "o"), f"'{tmp_path}' is not a distilled set")


def test_the_shared_folder_writer_never_replaces_a_users_folder(tmp_path):
    from ddflow.io import NotOursError, atomic_path

    target = tmp_path / "images"
    target.mkdir()
    (target / "photo.jpg").write_text("the user's")
    ran = []
    with pytest.raises(NotOursError, match="folder with files ddflow did not write"):
        with atomic_path(target, is_dir=True) as tmp:
            ran.append(tmp)
    assert not ran, "the block ran although its result could never be moved into place"
    assert (target / "photo.jpg").read_text() == "the user's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]  # no temp left


def test_a_folder_ddflow_wrote_is_replaced_whole(tmp_path):
    from ddflow.io import atomic_path

    target = tmp_path / "images"
    with atomic_path(target, is_dir=True) as tmp:
        (tmp / "old.png").write_text("old")
    with atomic_path(target, is_dir=True) as tmp:
        (tmp / "new.png").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == [".ddflow-made", "new.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]


# ---- every artifact knows what it belongs to ------------------------------------------------


def _label_student(tmp_path, monkeypatch, *, metrics=None, recipe_change=None, shard=None):
    """A stored-label student on a hand-built set and relabel shard. Returns (run, set folder,
    label file); each case changes one thing the labels were made for."""
    import ddflow.stages as stages
    from ddflow.config import VIEW_KEYS, student_protocols
    from ddflow.data.pixels import Normalizer
    from ddflow.distilled import write_distilled
    from ddflow.labels.budget import LabelBudget
    from ddflow.labels.stored import label_identity, relabel

    bundle = _digits_bundle(tmp_path)
    monkeypatch.setattr(stages, "load_bundle", lambda *a: bundle)  # no data-stage files needed
    set_dir = tmp_path / "set"

    def make_set(images):
        write_distilled(str(set_dir / "images"), str(set_dir / "m.json"), images,
                        np.repeat(np.arange(10), 2), np.tile([0, 1], 10), bundle.classes,
                        {"ipc": 2, "cost": {}})  # fmt: skip

    make_set(bundle.train_x[:20])
    cfg = validate_config({**BASE, "student": {"arch": "convnet_d3", "epochs": 2,
                                               "labels": "stored", "batch_size": 10}})  # fmt: skip
    recipe = student_protocols(cfg["student"])["stored"]
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10)).eval()
    norm = Normalizer(bundle.mean, bundle.std, "cpu")
    made = relabel(bundle.train_x[:20], teacher, norm, recipe, 10, recipe["relabel_seed"],
                   range(1, 3))  # fmt: skip
    views = {k: recipe[k] for k in VIEW_KEYS}
    identity = label_identity(str(set_dir / "m.json"), {"teacher": "t1"}, views,
                              recipe["relabel_seed"], 10, LabelBudget().slice())  # fmt: skip
    (tmp_path / "t.json").write_text(json.dumps(metrics or {"test_top1": 50.0, "stage_id": "t1"}))
    label_file = tmp_path / "epochs0001-0002.npz"
    (shard or save_npz)(label_file, **made, wall_s=np.asarray(1.0),
                        identity_json=np.array(json.dumps(identity)))  # fmt: skip
    recipe = {**recipe, **(recipe_change or {})}

    def run():
        stages.run_student(
            str(set_dir / "images"), str(set_dir / "m.json"), "x", "x", None,
            str(tmp_path / "t.json"), recipe, 0, {}, {"device": "cpu"},
            str(tmp_path / "s.json"), threads=1, label_shards=[str(label_file)],
        )  # fmt: skip

    return run, make_set, label_file


def test_stored_labels_of_another_set_are_refused(tmp_path, monkeypatch):
    from ddflow.labels.stored import LabelError

    run, make_set, label_file = _label_student(tmp_path, monkeypatch)
    run()  # they fit: a student result is written
    (tmp_path / "s.json").unlink()
    make_set(np.zeros((20, 28, 28, 1), np.uint8))  # the set remade: the same shapes, new images
    with pytest.raises(LabelError) as e:
        run()
    assert f"stored labels '{label_file}' were made for set" in str(e.value)
    assert "Delete the file and rerun" in str(e.value) and not (tmp_path / "s.json").exists()


def test_stored_labels_of_another_teacher_are_refused(tmp_path, monkeypatch):
    from ddflow.labels.stored import LabelError

    run, _, _ = _label_student(tmp_path, monkeypatch, metrics={"test_top1": 50.0, "stage_id": "t2"})
    with pytest.raises(LabelError) as e:
        run()
    assert 'were made for labeled by {"teacher": "t1"}' in str(e.value)
    assert 'the student trains with labeled by {"teacher": "t2"}' in str(e.value)


def test_stored_labels_of_another_recipe_are_refused(tmp_path, monkeypatch):
    from ddflow.labels.stored import LabelError

    run, _, _ = _label_student(tmp_path, monkeypatch, recipe_change={"cutmix": 0.5})
    with pytest.raises(LabelError, match="were made for views recipe"):
        run()


def test_stored_labels_without_a_checksum_are_refused(tmp_path, monkeypatch):
    def unchecked(path, **arrays):
        np.savez(path, **arrays)

    run, _, label_file = _label_student(tmp_path, monkeypatch, shard=unchecked)
    with pytest.raises(CorruptArtifactError) as e:
        run()
    assert f"'{label_file}' carries no checksum" in str(e.value)


def test_stored_labels_with_nan_name_the_file_not_the_lr(tmp_path, monkeypatch):
    def with_nan(path, **arrays):
        arrays["values"] = arrays["values"].copy()
        arrays["values"][3, 1] = np.nan
        from ddflow.io import NPZ_CHECKSUM, _arrays_sha256

        np.savez(path, **arrays, **{NPZ_CHECKSUM: np.array(_arrays_sha256(arrays))})

    run, _, label_file = _label_student(tmp_path, monkeypatch, shard=with_nan)
    with pytest.raises(CorruptArtifactError) as e:
        run()
    assert f"'{label_file}' holds 1 non-finite value(s) in 'values'" in str(e.value)
    assert "student.lr" not in str(e.value)


def test_stored_labels_without_an_identity_are_refused(tmp_path, monkeypatch):
    from ddflow.labels.stored import LabelError

    def anonymous(path, **arrays):
        save_npz(path, **{k: v for k, v in arrays.items() if k != "identity_json"})

    run, _, label_file = _label_student(tmp_path, monkeypatch, shard=anonymous)
    with pytest.raises(LabelError, match=f"stored labels '{label_file}' record no identity"):
        run()


def test_stored_labels_over_another_class_count_are_refused(tmp_path, monkeypatch):
    from ddflow.labels.stored import LabelError

    def nine_classes(path, **arrays):
        save_npz(path, **{**arrays, "values": arrays["values"][:, :9],
                          "num_classes": np.asarray(9, np.int32)})  # fmt: skip

    run, _, label_file = _label_student(tmp_path, monkeypatch, shard=nine_classes)
    with pytest.raises(LabelError, match="hold logits over 9 classes, the data has 10"):
        run()


def test_a_checkpoint_without_a_checksum_is_refused(tmp_path):
    path = tmp_path / "teacher.pt"
    torch.save({"state_dict": _state(), "meta_json": "{}"}, path)
    with pytest.raises(CorruptArtifactError, match=f"'{path}' carries no checksum of its weights"):
        load_checkpoint(path)


def test_a_checkpoint_with_nan_weights_names_the_file(tmp_path):
    from ddflow.io import tensors_sha256

    path, state = tmp_path / "teacher.pt", _nan_state()
    blob = {"state_dict": state, "meta_json": "{}", "sha256": tensors_sha256(state)}
    torch.save(blob, path)  # a valid checksum over the NaN: only the values are wrong
    with pytest.raises(CorruptArtifactError, match=f"'{path}' holds .* non-finite value"):
        load_checkpoint(path)


def test_nothing_non_finite_is_written_to_an_npz_or_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="refusing to write 1 non-finite value"):
        save_npz(tmp_path / "x.npz", x=np.array([1.0, np.inf]))
    with pytest.raises(ValueError, match="refusing to write .* non-finite value"):
        save_checkpoint(tmp_path / "t.pt", _nan_state(), {})
    assert not list(tmp_path.iterdir())


def test_a_tampered_resume_state_only_restarts_the_shard(tmp_path):
    from ddflow.recover.resume import ShardResume

    path = tmp_path / ".shard.npz.resume.pt"
    ShardResume(path, "stage/shard", every=5).finish(0, np.zeros((2, 3, 3, 1), np.uint8))
    blob = torch.load(path, weights_only=True)
    blob["done"]["0"][0, 0, 0, 0] = 7  # still a valid file, with other pixels
    torch.save(blob, path)
    resumed = ShardResume(path, "stage/shard", every=5)
    assert resumed.finished(0) is None and not path.exists()


# ---- inputs are content, not folders --------------------------------------------------------


def _external_set(root, classes=("0", "1"), n=2):
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((28, 28), 30 * i + 5, np.uint8)).save(root / c / f"{i}.png")
    return root


def _external_cfg(tmp_path, root, **extra):
    ds = {"name": "digits", "source": "mnist-embedded", "max_train_per_class": 5,
          "max_test_per_class": 2}  # fmt: skip
    cfg = {**BASE, "dataset": ds, "classes": None, **extra}
    cfg.pop("classes")
    cfg["methods"] = {"theirs": {"kind": "external", "path": str(root)}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.workflow
def test_a_replaced_image_in_an_external_set_reruns_it(tmp_path):
    root = _external_set(tmp_path / "released", classes=[str(i) for i in range(10)])
    path = _external_cfg(tmp_path, root)
    cfg = validate_config(yaml.safe_load(path.read_text()))
    from ddflow.config import StageIds

    manifest = (f"results/digits/distilled/theirs-{StageIds(cfg).method('theirs')}/ipc1/"
                "manifest.json")  # fmt: skip
    built = subprocess.run(snakemake_cmd(tmp_path, path, "--cores", "1", manifest),
                           capture_output=True, text=True)  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    recorded = json.loads((tmp_path / manifest).read_text())
    assert recorded["content"]["files"] == 20 and recorded["source"]["files"][0]["sha256"]

    def planned():
        out = subprocess.run(snakemake_cmd(tmp_path, path, "-n", manifest),
                             capture_output=True, text=True)  # fmt: skip
        assert out.returncode == 0, out.stderr[-3000:]
        return "rule select_set" in out.stdout

    assert not planned()  # unchanged: nothing to do
    img = root / "3" / "0.png"
    stamp = img.stat().st_mtime_ns
    Image.fromarray(np.full((28, 28), 200, np.uint8)).save(img)
    os.utime(img, ns=(stamp, stamp))  # even with its old time stamp (cp -p)
    assert planned()


def test_a_link_out_of_an_external_folder_is_refused(tmp_path):
    root = _external_set(tmp_path / "released")
    elsewhere = tmp_path / "elsewhere.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(elsewhere)
    (root / "1" / "2.png").symlink_to(elsewhere)
    out = subprocess.run(["ddflow", "check", str(_external_cfg(tmp_path, root, ipc=[1]))],
                         capture_output=True, text=True)  # fmt: skip
    _one_line_error(out, f"'{root / '1' / '2.png'}' is a link to '{elsewhere}', outside")


def test_a_link_inside_an_external_folder_is_read(tmp_path):
    from ddflow.data.fingerprint import fingerprint

    root = _external_set(tmp_path / "released")
    (root / "1" / "9.png").symlink_to(root / "0" / "0.png")
    fp = fingerprint(root, {".png"}, with_files=True)
    assert fp["files"] == 5 and {e["file"] for e in fp["entries"]} >= {"1/9.png"}


def test_a_missing_external_class_folder_names_the_class(tmp_path):
    from ddflow.checks import check_experiment

    root = _external_set(tmp_path / "released", classes=[str(i) for i in range(10) if i != 7])
    cfg = validate_config(yaml.safe_load(_external_cfg(tmp_path, root).read_text()))
    with pytest.raises(DataError) as e:
        check_experiment(cfg)
    assert "10 classes expected, 9 found; missing ['7']" in str(e.value)


def test_a_16_bit_png_is_scaled_not_clipped(tmp_path):
    from ddflow.data.files import decode_image

    ramp = (np.arange(32 * 32).reshape(32, 32) * 64).astype(np.uint16)  # 0 .. 65472
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    x = decode_image(tmp_path / "deep.png", None)
    assert x.shape == (32, 32, 3)
    assert np.abs(x[..., 0].astype(float) - ramp / 257).max() <= 0.5  # not ~all 255
    assert x.mean() == pytest.approx(ramp.mean() / 257, abs=0.5)


@pytest.mark.parametrize(
    ("pixels", "message"),
    [(np.full((8, 8), 3.5, np.float32), "floating-point pixels in [3.5, 3.5], not [0, 1]"),
     (np.full((8, 8), 1 << 20, np.int32), "integer pixels in [1.04858e+06, 1.04858e+06], beyond")],
)  # fmt: skip
def test_an_image_of_unknown_scale_is_refused(tmp_path, pixels, message):
    from ddflow.data.files import decode_image

    path = tmp_path / "wide.tif"
    Image.fromarray(pixels).save(path)
    with pytest.raises(DataError) as e:
        decode_image(path, None)
    assert f"image '{path}' holds {message}" in str(e.value)


def test_a_float_tiff_in_unit_range_is_scaled(tmp_path):
    from ddflow.data.files import decode_image

    Image.fromarray(np.full((4, 4), 0.5, np.float32)).save(tmp_path / "f.tif")
    assert decode_image(tmp_path / "f.tif", None)[0, 0, 0] == 128


def test_an_indexed_image_changed_later_is_refused(tmp_path):
    root = _folder(tmp_path / "imgs", ["a", "b"])
    ds = {"name": "f", "source": "imagefolder", "root": str(root), "storage": "files",
          "image_size": 8, "mean": [0.5] * 3, "std": [0.2] * 3}  # fmt: skip
    _prepare(tmp_path, ds)
    bundle = load_bundle(str(tmp_path / "out/dataset.npz"), str(tmp_path / "out/meta.json"))
    bundle.train_x[:]  # as indexed: fine
    changed = root / "train" / "b" / "1.png"
    Image.fromarray(np.full((12, 10, 3), 255, np.uint8)).save(changed)
    with pytest.raises(DataError) as e:
        bundle.train_x[:]
    assert f"image '{changed}' changed after the data stage indexed it" in str(e.value)


def test_a_data_folder_change_changes_the_data_rules_content(tmp_path, monkeypatch):
    from ddflow.data.catalog import content
    from ddflow.data.fingerprint import UNRECORDED, content_param

    monkeypatch.chdir(tmp_path)
    root = _folder(tmp_path / "imgs", ["a", "b"])
    ds = validate_config({**BASE, "dataset": {"name": "f", "source": "imagefolder",
                                              "root": str(root)}})["dataset"]  # fmt: skip
    prepare(ds, "out/dataset.npz", "out/meta.json")
    recorded = json.loads((tmp_path / "out/meta.json").read_text())["content"]
    assert recorded == content(ds) and content_param("out/meta.json", content(ds)) != UNRECORDED
    before = content_param("out/meta.json", content(ds))
    Image.fromarray(np.full((12, 10, 3), 9, np.uint8)).save(root / "test" / "a" / "0.png")
    assert content_param("out/meta.json", content(ds)) != before
    # a data stage made before fingerprints existed is not rerun for them
    meta = json.loads((tmp_path / "out/meta.json").read_text())
    del meta["content"]
    (tmp_path / "out/meta.json").write_text(json.dumps(meta))
    assert content_param("out/meta.json", content(ds)) is UNRECORDED


# ---- one check, everywhere ------------------------------------------------------------------


def test_ddflow_check_applies_the_incremental_step_rule(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**BASE, "incremental": {"steps": 3}}))
    message = "config key 'incremental.steps': 10 classes do not split into 3 equal steps"
    _one_line_error(subprocess.run(["ddflow", "check", str(path)], capture_output=True,
                                   text=True), message)  # fmt: skip
    plan = subprocess.run(snakemake_cmd(tmp_path, path, "-n"), capture_output=True, text=True)
    assert plan.returncode != 0 and message in plan.stdout + plan.stderr


def test_a_topk_budget_at_or_above_the_class_count_is_refused(tmp_path):
    from ddflow.checks import check_experiment

    cfg = validate_config(_with("student", {"labels": "stored", "label_budget": {"topk": 10}}))
    with pytest.raises(ConfigError) as e:
        check_experiment(cfg)
    assert "config key 'student.label_budget.topk': 10 of 10 classes keeps every logit" in str(
        e.value
    )


def test_snapshot_classes_beyond_the_data_are_refused():
    from ddflow.checks import check_experiment

    cfg = {**BASE, "methods": {"s": {"kind": "sre2l"}},
           "report": {"snapshots": {"methods": ["s"], "classes": [12], "steps": [1]}}}  # fmt: skip
    with pytest.raises(ConfigError, match="class 12 does not exist; the data has 10 classes"):
        check_experiment(validate_config(cfg))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("student.labels", ["online", "online"],
      "config key 'student.labels': ['online', 'online'] repeats \"online\"; each may appear once"),
     ("student.batch_size", 0, "config key 'student.batch_size': 0 is less than the minimum of 1."
      " Allowed: an integer >= 1 or a mapping of keys matching ^[0-9]+$ to an integer >= 1"),
     ("student.labels", "onlin", "'onlin' is not one of ['hard', 'online', 'stored', 'hybrid']")],
)  # fmt: skip
def test_one_of_errors_say_the_rule_broken_and_what_is_allowed(key, value, message):
    with pytest.raises(ConfigError) as e:
        validate_config(_with(key, value))
    assert message in str(e.value)


def test_a_folder_that_is_not_a_saved_hf_dataset_names_the_key(tmp_path):
    from ddflow.data.catalog import num_classes

    (tmp_path / "hf" / "train").mkdir(parents=True)
    with pytest.raises(DataError) as e:
        num_classes({"source": "huggingface", "root": str(tmp_path / "hf")})
    assert f"config key 'dataset.root': '{tmp_path / 'hf'}' is a folder but not a dataset" in str(
        e.value
    )
    assert "save_to_disk" in str(e.value)


def test_evaluate_folder_checks_the_folder_before_any_job(tmp_path):
    import ddflow.api as dd

    empty = tmp_path / "released"
    empty.mkdir()
    with pytest.raises(DataError, match="missing \\['0', '1'"):
        dd.evaluate_folder(empty, {**BASE}, workdir=tmp_path / "w")
    assert not (tmp_path / "w" / "results").exists()  # no data or teacher stage ran


@pytest.mark.workflow
def test_evaluate_folder_leads_with_the_failed_jobs_error(tmp_path):
    import ddflow.api as dd

    root = _external_set(tmp_path / "released", classes=[str(i) for i in range(10)], n=1)
    bad = root / "4" / "0.png"
    bad.write_text("not a png")
    cfg = yaml.safe_load(_external_cfg(tmp_path, root).read_text())
    with pytest.raises(DdflowError) as e:
        dd.evaluate_folder(root, cfg, workdir=tmp_path / "w", cores=1)
    first = str(e.value).splitlines()[0]
    assert first.startswith("rule select_set failed: ") and f"cannot read image '{bad}'" in first


# ---- readers of live files ------------------------------------------------------------------


def test_status_reads_a_metrics_file_cut_mid_row(tmp_path):
    from ddflow.status import status

    log = "results/x/teacher.log"
    (tmp_path / ".snakemake" / "log").mkdir(parents=True)
    (tmp_path / ".snakemake" / "log" / "2026.snakemake.log").write_text(
        f"rule teacher:\n    jobid: 1\n    log: {log}\n\n1 of 3 steps (33%) done\n"
    )
    (tmp_path / "results" / "x").mkdir(parents=True)
    (tmp_path / "results" / "x" / "teacher.metrics.csv").write_text(
        "time_s,task,step,total,metric,value\n0.0,teacher,1,10,loss,2.0\n"
        "30.0,teacher,4,10,loss,1.5\n31.0,teacher,5"  # the writer was killed mid-row
    )
    text = status(tmp_path)
    assert "teacher: 4/10 (40%), ETA 1m00s" in text, text
