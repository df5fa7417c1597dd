"""CDA's ImageNet-21K squeeze recipe (Table 21a): start from other weights, Adam, label
smoothing, CutoutPIL and RandAugment on the host; top-5 on the test split (CDA Table 5)."""

import numpy as np
import pytest
import torch

from ddflow.config import ConfigError, StageIds, validate_config
from ddflow.data.datasets import DatasetBundle
from ddflow.models import build_model
from ddflow.models.pretrained import TeacherError, init_from
from ddflow.train.common import cutout, topk_accuracy
from ddflow.train.teacher import squeeze

CFG = {
    "arch": "convnet_d3", "epochs": 2, "batch_size": 16, "lr": 1e-3, "momentum": 0.9,
    "weight_decay": 1e-4, "warmup_epochs": 0, "crop_padding": 0, "hflip": False, "seed": 0,
}  # fmt: skip


def _bundle(classes=4):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (16 * classes, 16, 16, 3), dtype=np.uint8)
    y = np.repeat(np.arange(classes), 16)
    names = [f"c{i}" for i in range(classes)]
    return DatasetBundle(x, y, x[::2], y[::2], names, [0.5] * 3, [0.25] * 3)


def test_cutout_paints_one_clipped_random_colour_rectangle_per_image():
    images = np.zeros((400, 12, 12, 3), np.uint8)
    out = cutout(images, 0.5, np.random.default_rng(0))
    sides = set()
    for img in out:
        painted = (img != 0).any(-1)
        if not painted.any():  # a colour of (0, 0, 0) paints nothing visible
            continue
        rows, cols = np.nonzero(painted)
        box = img[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert (box == box[0, 0]).all()  # one rectangle, one colour
        sides.add((rows.max() - rows.min() + 1, cols.max() - cols.min() + 1))
    # int(0.5 * 12 + 0.5) // 2 = 3 each side of the centre, both ends drawn: 7 inside the image
    assert max(max(s) for s in sides) == 7 and min(min(s) for s in sides) <= 4  # clipped at borders
    assert np.array_equal(out, cutout(images, 0.5, np.random.default_rng(0)))  # seeded
    assert len({tuple(img[img.any(-1)][0]) for img in out if img.any()}) > 100  # colours vary


def test_topk_accuracy_counts_the_class_within_the_first_k():
    class Fixed(torch.nn.Module):
        def forward(self, x):  # scores 3 > 2 > 1 > 0 for classes 0..3, whatever the image
            return torch.tensor([3.0, 2.0, 1.0, 0.0]).expand(len(x), 4)

    from ddflow.data.pixels import Normalizer

    labels = np.array([0, 1, 2, 3, 1])
    images = np.zeros((5, 2, 2, 1), np.uint8)
    acc = topk_accuracy(Fixed(), images, labels, Normalizer([0.0], [1.0]), (1, 2, 5), batch_size=2)
    assert acc == {1: 20.0, 2: 60.0, 5: 100.0}


def test_init_loads_every_fitting_tensor_and_keeps_a_fresh_classifier(tmp_path):
    torch.manual_seed(3)
    source = build_model("convnet_d3", 10, 3, (16, 16))
    torch.save(source.state_dict(), tmp_path / "w.pt")
    torch.manual_seed(4)
    model = build_model("convnet_d3", 4, 3, (16, 16))
    head = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("classifier")}
    record = init_from(model, {"arch": "convnet_d3", "checkpoint": str(tmp_path / "w.pt")},
                       [f"c{i}" for i in range(4)], (3, 16, 16), [0.5] * 3, [0.25] * 3)  # fmt: skip
    own, theirs = model.state_dict(), source.state_dict()
    assert record["fresh"] == sorted(head) and head
    for k, v in own.items():
        assert torch.equal(v, head[k] if k in head else theirs[k]), k
    with pytest.raises(TeacherError, match=r"teacher\.init\.checkpoint|not.*teacher.arch"):
        init_from(model, {"arch": "convnet_d4", "checkpoint": str(tmp_path / "w.pt")},
                  ["a"] * 4, (3, 16, 16), [0.5] * 3, [0.25] * 3)  # fmt: skip


def test_the_cda_squeeze_recipe_trains_from_other_weights_and_reports_top5(tmp_path):
    torch.manual_seed(5)
    torch.save(build_model("convnet_d3", 10, 3, (16, 16)).state_dict(), tmp_path / "w.pt")
    recipe = {
        "optimizer": "adam", "label_smoothing": 0.2, "cutout": 0.5, "no_decay_bn_bias": True,
        "randaugment": "rand-m9-mstd0.5", "init": {"checkpoint": str(tmp_path / "w.pt")},
    }  # fmt: skip
    bundle = _bundle()
    model, metrics = squeeze(bundle, {**CFG, **recipe}, torch.device("cpu"))
    assert 0 <= metrics["test_top1"] <= metrics["test_top5"] <= 100
    assert metrics["test_top5"] == 100.0  # four classes: the top five hold them all
    assert metrics["init"]["sha256"] and metrics["init"]["fresh"]
    assert [p["test_top5"] for p in metrics["curve"]] == [100.0, 100.0]
    _, again = squeeze(bundle, {**CFG, **recipe}, torch.device("cpu"))
    assert again["curve"] == metrics["curve"]  # seeded, host augmentation included
    # every ingredient changes the run
    for key, off in (("label_smoothing", 0.0), ("cutout", 0), ("randaugment", None),
                     ("optimizer", "sgd"), ("init", None)):  # fmt: skip
        _, other = squeeze(bundle, {**CFG, **recipe, key: off}, torch.device("cpu"))
        assert other["curve"][0]["train_loss"] != metrics["curve"][0]["train_loss"], key


def test_squeeze_keys_are_checked_and_unset_ones_leave_the_teacher_id():
    base = {"dataset": {"name": "m", "source": "mnist-embedded"}, "ipc": [2],
            "methods": {"s": {"kind": "sre2l"}}, "student": {}}  # fmt: skip
    plain = StageIds(validate_config({**base, "teacher": {}}))
    adam = StageIds(validate_config({**base, "teacher": {"optimizer": "adam"}}))
    assert adam.teacher != plain.teacher
    assert plain.teacher == StageIds(validate_config({**base, "teacher": {"epochs": 5}})).teacher
    with pytest.raises(ConfigError, match=r"'teacher\.init': set one of"):
        validate_config({**base, "teacher": {"init": {}}})
    with pytest.raises(ConfigError, match=r"'teacher\.init': weights to start training from, but"):
        validate_config({**base, "teacher": {"checkpoint": "t.pt", "init": {"checkpoint": "w.pt"}}})
    with pytest.raises(ConfigError, match="teacher.optimizer"):
        validate_config({**base, "teacher": {"optimizer": "lamb"}})


@pytest.mark.parametrize("key", ["teacher", "student"])
def test_a_randaugment_string_timm_would_half_read_is_refused(key):
    from ddflow.config import RANDAUGMENT_PATTERN, load_schema

    props = load_schema()["properties"]
    assert props[key]["properties"]["randaugment"]["pattern"] == RANDAUGMENT_PATTERN
    base = {"dataset": {"name": "m", "source": "mnist-embedded"}, "ipc": [2], "teacher": {},
            "methods": {"s": {"kind": "sre2l"}}, "student": {}}  # fmt: skip
    for good in ("rand-m9-mstd0.5", "rand-m6-n2-mstd1.0", "rand-m9-mstd101-inc1-tweights"):
        validate_config({**base, key: {"randaugment": good}})
    for bad in ("rand-zz", "rand-mX", "rand-m9.5", "rand_m9"):  # timm skips or crashes on these
        with pytest.raises(ConfigError, match=rf"^config key '{key}\.randaugment': '{bad}' is not"):
            validate_config({**base, key: {"randaugment": bad}})
