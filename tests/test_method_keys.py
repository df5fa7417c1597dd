"""Every recovery key reaches the recovery loop: changing it changes the recovered bytes.

A key that silently stops reaching the code (a typo in a lookup, a default that wins over the
config) would leave the images unchanged; each case here flips one key on a tiny shard.
"""

import numpy as np
import pytest

from ddflow.config import DERIVED_KEYS, validate_config
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
    cfg = validate_config({**{k: v for k, v in base.items() if k not in DERIVED_KEYS},
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


@pytest.mark.parametrize(
    "kind, init", [("delt", "real"), ("delt", "mosaic"), ("delt", "gaussian"), ("sre2l", "real")]
)
def test_a_shard_past_class_zero_recovers_its_own_classes_reproducibly(inputs, kind, init):
    """Through the kind's recover: a shard of classes 3-4 holds exactly those classes' images
    at IPC indices 0-1, and the same shard twice gives the same bytes (its draws are seeded)."""
    d, npz, meta, ckpt, ranking, base = inputs
    cfg = validate_config({**{k: v for k, v in base.items() if k not in DERIVED_KEYS},
                           "methods": {"m": {"kind": kind, **BASE, "init": init}}})  # fmt: skip
    outs = []
    for rep in range(2):
        out = d / f"past-{kind}-{init}-{rep}.npz"
        run_recover_shard(npz, meta, ckpt, ranking, cfg["methods"]["m"], "fixed",
                          "c00003-00005_i0000-0002", cfg["runtime"], str(out), 1)  # fmt: skip
        with np.load(out) as z:
            outs.append({k: z[k] for k in ("images", "labels", "ipc_index")})
    assert sorted(zip(outs[0]["labels"], outs[0]["ipc_index"])) == [(3, 0), (3, 1), (4, 0), (4, 1)]
    assert np.array_equal(outs[0]["images"], outs[1]["images"])


def test_delt_seeds_its_shard_from_the_stage_id_its_first_class_and_the_method_seed(inputs):
    """The documented seed of a DELT shard (results are reproduced from it):
    batch_seed(stage id, first class, 0) XOR methods.<name>.seed, drawn once for the shard."""
    import torch

    from ddflow.data.pixels import Normalizer
    from ddflow.io import read_json
    from ddflow.recover.delt import recover_delt_shard
    from ddflow.recover.init import gaussian_init
    from ddflow.recover.shards import Shard, batch_seed
    from ddflow.stages import load_teacher

    d, npz, meta, ckpt, ranking, base = inputs
    cfg = validate_config({**{k: v for k, v in base.items() if k not in DERIVED_KEYS},
                           "methods": {"m": {"kind": "delt", **BASE, "init": "gaussian",
                                             "seed": 5}}})  # fmt: skip
    m, name = cfg["methods"]["m"], "c00002-00004_i0000-0002"
    out = d / "delt-seed.npz"
    run_recover_shard(npz, meta, ckpt, None, m, "sid", name, cfg["runtime"], str(out), 1)
    info = read_json(meta)
    teacher, _ = load_teacher(ckpt, info["classes"])
    cpu = torch.device("cpu")
    init = gaussian_init(4, tuple(info["image_shape_chw"]), batch_seed("sid", 2, 0) ^ 5)
    ref = recover_delt_shard(teacher, Normalizer(info["mean"], info["std"], cpu), init, m,
                             "sid", Shard.parse(name), cpu, 100, None)  # fmt: skip
    with np.load(out) as z:
        assert np.array_equal(z["images"], ref["images"])
