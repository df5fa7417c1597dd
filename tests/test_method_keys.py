"""Every recovery key reaches the recovery loop: changing it changes the recovered bytes.

A key that silently stops reaching the code (a typo in a lookup, a default that wins over the
config) would leave the images unchanged; each case here flips one key on a tiny shard.
"""

import numpy as np
import pytest

from ddflow.config import validate_config
from ddflow.stages import run_data, run_rank, run_recover_shard, run_teacher

BASE = {
    "iterations": 6, "lr": 0.25, "r_bn": 0.01, "batch_classes": 10, "ipc_per_shard": 2,
    "jitter": 2, "min_scale": 0.3, "round_iterations": 2, "batch_images": 20,
}  # fmt: skip
# (kind, key, value, extra keys the change needs to matter)
CHANGES = [
    ("sre2l", "iterations", 7, {}),
    ("sre2l", "lr", 0.1, {}),
    ("sre2l", "r_bn", 1.0, {}),
    ("sre2l", "first_bn_multiplier", 1.0, {}),
    ("sre2l", "crop", False, {}),
    ("sre2l", "min_scale", 0.6, {}),
    ("sre2l", "max_scale", 0.6, {}),
    ("sre2l", "crop_schedule", "linear", {"milestone": 1.0}),
    ("cda", "milestone", 0.5, {}),
    ("sre2l", "crop_per_image", True, {}),
    ("sre2l", "precision", "bf16", {}),
    ("sre2l", "flip", False, {}),
    ("sre2l", "jitter", 0, {}),
    ("sre2l", "jitter_mode", "symmetric", {}),
    ("sre2l", "init", "real", {}),
    ("sre2l", "selection", "highest", {"init": "real"}),
    ("sre2l", "seed", 1, {}),
    ("delt", "round_iterations", 3, {}),
    ("delt", "early_late", False, {}),
    ("delt", "selection", "lowest", {}),
    ("delt", "init", "gaussian", {}),
    ("delt", "seed", 1, {}),
    ("delt", "init", "mosaic", {}),
    ("delt", "mosaic_factor", 2, {"init": "mosaic"}),
    ("delt", "mosaic_crops", 2, {"init": "mosaic"}),
    ("delt", "mosaic_candidates", 10, {"init": "mosaic", "mosaic_factor": 2}),
]
SHARD = "c00000-00010_i0000-0002"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    cfg = validate_config(
        {
            "dataset": {"name": "k", "source": "mnist-embedded", "max_train_per_class": 20,
                        "max_test_per_class": 5},
            "teacher": {"epochs": 1, "batch_size": 50},
            "ipc": [2],
            "methods": {"random": {"kind": "random"}},
            "student": {},
            "runtime": {"threads": 1},
        }
    )  # fmt: skip
    npz, meta, ckpt, ranking = (str(d / f) for f in ("d.npz", "m.json", "t.pt", "r.npz"))
    run_data(cfg["dataset"], npz, meta)
    run_teacher(npz, meta, cfg["teacher"], "t", cfg["runtime"], ckpt, str(d / "t.json"))
    run_rank(npz, meta, ckpt, None, cfg["runtime"], ranking)
    return d, npz, meta, ckpt, ranking, cfg


def _recover(inputs, method: dict, name: str) -> np.ndarray:
    d, npz, meta, ckpt, ranking, base = inputs
    cfg = validate_config({**{k: v for k, v in base.items() if k != "sweep_members"},
                           "methods": {"m": method}})  # fmt: skip
    m = cfg["methods"]["m"]
    out = d / f"{name}.npz"
    # one stage id for both sides: a new id alone would reseed the shard and change the bytes
    run_recover_shard(npz, meta, ckpt, ranking, m, "fixed", SHARD, cfg["runtime"], str(out), 1)
    with np.load(out) as z:
        return z["images"]


@pytest.mark.parametrize(("kind", "key", "value", "extra"), CHANGES, ids=[
    f"{k}.{key}" for k, key, _, _ in CHANGES])  # fmt: skip
def test_every_recovery_key_changes_the_recovered_images(inputs, kind, key, value, extra):
    base = {**BASE, "kind": kind, **extra}
    changed = {**base, key: value}
    a = _recover(inputs, base, f"{kind}-{key}-a")
    b = _recover(inputs, changed, f"{kind}-{key}-b")
    assert a.shape == b.shape
    assert not np.array_equal(a, b), f"methods.{key}: {value} did not change the images"


def test_antialias_is_a_no_op_in_recovery_because_crops_are_only_upsampled(inputs):
    """Recovery resizes a crop of the image back to the image's size: never a downscale, so
    antialiasing (torchvision >= 0.17's tensor default) cannot change a recovered pixel. The key
    stays for records of the authors' torchvision; this pins that it is result-neutral."""
    base = {**BASE, "kind": "sre2l"}
    a = _recover(inputs, base, "aa-a")
    b = _recover(inputs, {**base, "antialias": True}, "aa-b")
    assert np.array_equal(a, b)
