"""Class-incremental learning (SRe2L-CL protocol): order, memory, seen-class evaluation."""

import numpy as np
import pytest
import torch

from ddflow.applications.incremental import (
    class_order,
    due_steps,
    memory,
    run_incremental,
    seen_classes,
)
from ddflow.config import (
    ConfigError,
    StageIds,
    application_methods,
    check_incremental_steps,
    validate_config,
)
from ddflow.data.datasets import DatasetBundle


def test_the_class_order_is_the_seeded_permutation_sre2l_cl_printed():
    order = class_order(200, 0)
    assert order[:4].tolist() == [18, 170, 107, 98]  # SRe2L-CL's log, numpy seed 0
    assert sorted(order.tolist()) == list(range(200))
    assert not np.array_equal(order, class_order(200, 1))


def test_each_step_adds_a_group_and_its_memory_holds_every_image_of_the_seen_classes():
    labels = np.repeat(np.arange(10), 3)  # a set at IPC 3
    groups = seen_classes(class_order(10, 0), 5)
    assert [len(g) for g in groups] == [2, 4, 6, 8, 10]
    assert all(set(a) < set(b) for a, b in zip(groups, groups[1:]))
    assert [len(memory(labels, g)) for g in groups] == [6, 12, 18, 24, 30]
    assert due_steps(10, 3) == [3, 6, 9, 10] and due_steps(5, 1) == [1, 2, 3, 4, 5]


def test_each_step_trains_a_fresh_student_on_the_seen_classes_and_tests_on_them_only():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 4, 4, 1), dtype=np.uint8)
    y = np.repeat(np.arange(4), 10)
    bundle = DatasetBundle(x, y, x, y, list("abcd"), [0.5], [0.25])
    images, labels = x[::5], y[::5]  # 2 images a class
    calls = []

    def train(imgs, teacher, b, recipe, seed, device, targets):
        calls.append((len(imgs), sorted(set(targets.tolist())), sorted(set(b.test_y.tolist())),
                      len(b.test_y), b.num_classes))  # fmt: skip
        return {"top1_last": 10.0 * len(calls), "curve": []}

    out = run_incremental(images, labels, bundle, None, {}, 0, "cpu",
                          {"steps": 2, "order_seed": 0, "every": 1}, train)  # fmt: skip
    first = sorted(class_order(4, 0)[:2].tolist())
    assert calls[0] == (4, first, first, 20, 4)  # the model keeps all 4 outputs
    assert calls[1] == (8, [0, 1, 2, 3], [0, 1, 2, 3], 40, 4)
    assert [(s["step"], s["classes_seen"], s["n_images"], s["top1"]) for s in out["steps"]] == [
        (1, 2, 4, 10.0), (2, 4, 8, 20.0)]  # fmt: skip


def _cfg(**extra):
    return {"dataset": {"name": "m", "source": "mnist-embedded"}, "teacher": {}, "ipc": [2],
            "student": {}, "methods": {"s": {"kind": "sre2l", "seeds": [0, 1]},
                                       "c": {"kind": "cda"}}, **extra}  # fmt: skip


def test_incremental_config_checks_and_its_own_id():
    cfg = validate_config(_cfg(incremental={"steps": 5, "methods": ["s"]}))
    assert cfg["incremental"] == {
        "steps": 5, "methods": ["s"], "order_seed": 0, "every": 1, "recipe": "sre2l_cl",
        "student": None,
    }  # fmt: skip
    assert application_methods(cfg, "incremental") == ["s", "s__seed1", "random"]  # random always
    ids = StageIds(cfg)
    moved = StageIds(validate_config(_cfg(incremental={"steps": 2, "methods": ["s"]})))
    assert ids.application("incremental", "online") != moved.application("incremental", "online")
    assert ids.students == moved.students  # the students' own ids do not move
    assert validate_config(_cfg())["incremental"] is None
    with pytest.raises(ConfigError, match="incremental.steps': 10 classes do not split into 3"):
        check_incremental_steps({"steps": 3}, 10)
    with pytest.raises(ConfigError, match=r"incremental.methods': \['x'\] are not methods"):
        validate_config(_cfg(incremental={"methods": ["x"]}))
    with pytest.raises(ConfigError, match="stored labels are relabelled for the whole set"):
        validate_config(_cfg(incremental={}, student={"labels": "stored"}))


def test_the_incremental_runs_can_take_sre2l_cls_own_recipe(monkeypatch):
    """incremental.student: keys over the student block, in the incremental id only; checked."""
    import ddflow.stages as stages

    cl = {"optimizer": "sgd", "lr": 0.5, "batch_size": 256, "augment": "dsa", "t2_factor": True}
    cfg = validate_config(_cfg(incremental={"steps": 2, "student": cl}))
    plain = validate_config(_cfg(incremental={"steps": 2}))
    ids, plain_ids = StageIds(cfg), StageIds(plain)
    assert ids.students == plain_ids.students  # the ordinary students do not move
    assert ids.application("incremental", "online") != plain_ids.application(
        "incremental", "online"
    )
    with pytest.raises(ConfigError, match="'incremental.student.optimizer'"):
        validate_config(_cfg(incremental={"student": {"optimizer": "lion"}}))
    with pytest.raises(ConfigError, match=r"incremental.student': \['seeds'\] choose which runs"):
        validate_config(_cfg(incremental={"student": {"seeds": [1]}}))
    with pytest.raises(ConfigError, match="student.augment': stored labels replay"):
        validate_config(_cfg(student={"augment": "dsa", "labels": ["online", "stored"]}))
    recipes = []
    cpu = torch.device("cpu")
    monkeypatch.setattr(stages, "_load_set", lambda *a: (cpu, None, None, None, {"ipc": 2}))
    monkeypatch.setattr(stages, "_write_run", lambda *a, **k: None)
    monkeypatch.setattr(
        "ddflow.applications.incremental.run_incremental",
        lambda images, targets, bundle, teacher, recipe, *a: recipes.append(recipe),
    )
    recipe = {**cfg["student"], "labels": "hard"}
    stages.run_incremental("i", "m", "n", "d", None, recipe, cfg["incremental"], 0, {}, {}, "o")
    assert {k: recipes[0][k] for k in cl} == cl
    assert recipes[0]["epochs"] == 100 and recipes[0]["arch"] == recipe["arch"]  # SRe2L-CL's
    own = validate_config(_cfg(incremental={"steps": 2, "recipe": "student"}))
    stages.run_incremental("i", "m", "n", "d", None, recipe, own["incremental"], 0, {}, {}, "o")
    assert recipes[1] == {**recipe, "batch_size": recipe["batch_size"]}  # the block as is
    assert StageIds(own).application("incremental", "online") != plain_ids.application(
        "incremental", "online"
    )
