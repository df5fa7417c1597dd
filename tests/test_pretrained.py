"""Loaded teachers: local checkpoints (the authors' observers), torchvision's published weights."""

import urllib.error

import pytest
import torch

from ddflow.config import StageIds, validate_config
from ddflow.models import build_model
from ddflow.models.pretrained import TeacherError, load_pretrained

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
CHW = (3, 32, 32)


def _observer(tmp_path, n_out=5):
    """A ConvNet-D3 observer saved as RDED does: {'model': DataParallel state dict}."""
    torch.manual_seed(0)
    model = build_model("convnet_d3", n_out, 3, (32, 32)).eval()
    path = tmp_path / "observer.pth"
    torch.save({"model": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)
    return model, path


def _observer_with_classes(tmp_path):
    """The observer and a config that names its five classes a..e."""
    observer, path = _observer(tmp_path)
    (tmp_path / "classes.txt").write_text("a\nb\nc\nd\ne\n")
    cfg = {
        "arch": "convnet_d3",
        "checkpoint": str(path),
        "classes_file": str(tmp_path / "classes.txt"),
    }
    return observer, cfg


def test_checkpoint_teacher_keeps_the_rows_of_the_dataset_classes(tmp_path):
    observer, cfg = _observer_with_classes(tmp_path)
    teacher, source = load_pretrained(cfg, ["d", "b"], CHW, IMAGENET_MEAN, IMAGENET_STD)
    x = torch.randn(4, *CHW)
    with torch.no_grad():
        assert torch.allclose(teacher(x), observer(x)[:, [3, 1]], atol=1e-6)
    assert source["kind"] == "checkpoint" and source["class_rows"] == [3, 1]
    assert source["outputs"] == 5 and len(source["sha256"]) == 64


def test_checkpoint_teacher_errors_name_the_fix(tmp_path):
    _, path = _observer(tmp_path)
    cfg = {"arch": "convnet_d3", "checkpoint": str(path)}
    with pytest.raises(TeacherError, match="teacher.classes_file"):
        load_pretrained(cfg, ["a", "b"], CHW, IMAGENET_MEAN, IMAGENET_STD)
    (tmp_path / "c.txt").write_text("a\nb\nc\nd\ne\n")
    with pytest.raises(TeacherError, match=r"not in teacher.classes_file.*\['zebra'\]"):
        load_pretrained(
            {**cfg, "classes_file": str(tmp_path / "c.txt")},
            ["a", "zebra"],
            CHW,
            IMAGENET_MEAN,
            IMAGENET_STD,
        )
    with pytest.raises(TeacherError, match="set teacher.arch"):
        load_pretrained(
            {**cfg, "arch": "convnet_d4"}, list("abcde"), CHW, IMAGENET_MEAN, IMAGENET_STD
        )
    with pytest.raises(TeacherError, match="not found"):
        load_pretrained(
            {**cfg, "checkpoint": str(tmp_path / "nope.pth")},
            ["a"],
            CHW,
            IMAGENET_MEAN,
            IMAGENET_STD,
        )


def _cache_resnet18(tmp_path, monkeypatch):
    """torchvision's ResNet-18 weight file, as a download would leave it in the hub cache."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    torch.manual_seed(1)
    ref = build_model("torchvision:resnet18", 1000, 3, (64, 64)).eval()
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(ref.state_dict(), cache / "resnet18-f37072fd.pth")
    return ref


def test_torchvision_weights_load_from_the_hub_cache_and_check_normalization(tmp_path, monkeypatch):
    ref = _cache_resnet18(tmp_path, monkeypatch)
    cfg = {"arch": "torchvision:resnet18", "pretrained": "IMAGENET1K_V1"}
    classes = [f"n{i:08d}" for i in range(1000)]
    teacher, source = load_pretrained(cfg, classes, (3, 64, 64), IMAGENET_MEAN, IMAGENET_STD)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(teacher(x), ref(x))
    assert source["weights"] == "ResNet18_Weights.IMAGENET1K_V1" and source["class_rows"] is None
    with pytest.raises(TeacherError, match="set dataset.mean and dataset.std"):
        load_pretrained(cfg, classes, (3, 64, 64), [0.5] * 3, [0.25] * 3)
    with pytest.raises(TeacherError, match=r"choose from \['IMAGENET1K_V1', 'DEFAULT'\]"):
        load_pretrained(
            {**cfg, "pretrained": "V9"}, classes, (3, 64, 64), IMAGENET_MEAN, IMAGENET_STD
        )
    with pytest.raises(TeacherError, match="arch torchvision:<name>"):
        load_pretrained({**cfg, "arch": "convnet_d3"}, classes, CHW, IMAGENET_MEAN, IMAGENET_STD)


def test_failed_download_says_where_to_put_the_file(tmp_path, monkeypatch):
    import torchvision.models._api as api

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    cfg = {"arch": "torchvision:resnet18", "pretrained": "DEFAULT"}
    cache = tmp_path / "empty" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(TeacherError, match=f"no network.*place it at '{cache}'"):
        load_pretrained(cfg, ["a"] * 1000, (3, 64, 64), IMAGENET_MEAN, IMAGENET_STD)


def test_loaded_teacher_id_ignores_the_unused_training_recipe(tmp_path):
    base = {
        "dataset": {"name": "m", "source": "mnist-embedded"},
        "ipc": [1],
        "methods": {"a": {"kind": "sre2l"}},
        "student": {},
    }

    def teacher_id(**teacher):
        return StageIds(validate_config({**base, "teacher": teacher})).teacher

    loaded = teacher_id(checkpoint="obs.pth")
    assert teacher_id(checkpoint="obs.pth", epochs=90, lr=0.2) == loaded
    assert teacher_id(checkpoint="other.pth") != loaded
    assert teacher_id(checkpoint="obs.pth", classes_file="c.txt") != loaded
    assert teacher_id(epochs=90) != teacher_id()  # a trained teacher: the recipe is its result


def test_ranker_scores_use_its_full_softmax_at_the_dataset_classes(tmp_path):
    from ddflow.data.pixels import Normalizer
    from ddflow.select.ranking import true_class_probs

    observer, cfg = _observer_with_classes(tmp_path)
    ranker, source = load_pretrained(
        cfg, ["d", "b"], CHW, IMAGENET_MEAN, IMAGENET_STD, keep_all_outputs=True
    )
    images = torch.randint(0, 256, (6, 32, 32, 3), dtype=torch.uint8).numpy()
    labels = torch.tensor([0, 1, 0, 1, 1, 0]).numpy()
    norm = Normalizer(IMAGENET_MEAN, IMAGENET_STD)
    scores = true_class_probs(
        ranker, images, labels, norm, batch_size=4, class_rows=source["class_rows"]
    )
    with torch.no_grad():
        probs = observer(norm.to_tensor(images)).softmax(1)  # over all 5 classes
    expected = probs[torch.arange(6), torch.tensor([3, 1])[labels]]
    assert torch.allclose(torch.as_tensor(scores), expected, atol=1e-6)
    with pytest.raises(TeacherError, match="ranker.classes_file"):
        load_pretrained(
            {**cfg, "classes_file": None},
            ["d", "b"],
            CHW,
            IMAGENET_MEAN,
            IMAGENET_STD,
            config_key="ranker",
        )


def test_a_ranker_changes_only_the_real_initialised_methods():
    from ddflow.config import ConfigError

    base = {
        "dataset": {"name": "m", "source": "mnist-embedded"},
        "teacher": {},
        "ipc": [1],
        "methods": {"delt": {"kind": "delt"}, "sre2l": {"kind": "sre2l"}},
        "student": {},
    }
    plain = StageIds(validate_config(base))
    ranked = StageIds(
        validate_config({**base, "ranker": {"arch": "convnet_d3", "checkpoint": "r.pth"}})
    )
    assert ranked.teacher == plain.teacher and ranked.method("sre2l") == plain.method("sre2l")
    assert ranked.method("delt") != plain.method("delt")
    assert ranked.ranking_name().startswith("ranker-") and plain.ranking_name().startswith(
        "teacher-"
    )
    with pytest.raises(ConfigError, match="config key 'ranker'"):
        validate_config({**base, "ranker": {"arch": "convnet_d3"}})
