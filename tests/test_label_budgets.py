"""Label budgets stored at their size (labels/budget.py, labels/stored.py): a budget's files made
from every batch's labels equal those made by labelling only the kept batches; LPLD's pool of
batches against an independent reading of its sampler; a student on a budget's files equals one
reading the full labels through the same budget; the config's names, ids and refusals."""

import collections
import json

import numpy as np
import pytest
import torch

from ddflow.config import ConfigError, StageIds, student_protocols, validate_config
from ddflow.data.datasets import DatasetBundle
from ddflow.data.pixels import Normalizer
from ddflow.labels.budget import LabelBudget
from ddflow.labels.stored import StoredLabels, at_budget, merge_shards, relabel
from ddflow.models import build_model
from ddflow.train.student import train_student

from conftest import write_set

CPU = torch.device("cpu")
BUDGETS = [
    {"topk": 2},
    {"dtype": "int8", "keep": 0.5},
    {"topk": 3, "dtype": "int8", "keep": 0.25},
    {"keep": 0.3, "keep_unit": "batch"},
    {"keep": 0.3, "keep_unit": "batch", "pool_skip_last": False},
    {"keep": 1.0, "keep_unit": "batch", "topk": 2},
]


def _bundle():
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, (40, 12, 12, 3), dtype=np.uint8)
    y = np.repeat(np.arange(4), 10)
    return DatasetBundle(x, y, x[:16], y[:16], list("abcd"), [0.5] * 3, [0.25] * 3)


def _cfg(**student):
    return validate_config(
        {
            "dataset": {"name": "d", "source": "mnist-embedded"},
            "teacher": {"arch": "convnet_d3"},
            "ipc": [3],
            "methods": {"random": {"kind": "random"}},
            "student": {"arch": "convnet_d3", "epochs": 4, "batch_size": 5, "eval_every": 2,
                        "min_scale": 0.4, "cutmix": 1.0, "labels": "stored", **student},
        }
    )  # fmt: skip


def _recipe(budget=None):
    return student_protocols(_cfg(label_budget=budget or {})["student"])


class _Counting(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(11)
        self.inner, self.images = build_model("convnet_d3", 4, 3, (12, 12)).eval(), 0

    def forward(self, x):
        self.images += len(x)
        return self.inner(x)


@pytest.mark.parametrize("budget", BUDGETS, ids=lambda b: json.dumps(b))
def test_a_budget_from_every_batch_equals_labelling_only_its_kept_batches(budget):
    """Byte for byte, in two epoch ranges as two jobs would; the direct way runs the teacher on
    the kept batches' images only."""
    images = _bundle().train_x[:12]  # 12 images, batches of 5: 5, 5, 2
    [recipe] = _recipe().values()
    b, seed = LabelBudget.from_config(budget), recipe["relabel_seed"]
    norm = Normalizer([0.5] * 3, [0.25] * 3)
    every, direct = _Counting(), _Counting()
    kept = b.kept(4, 3, seed)
    for first, last in ((1, 2), (3, 4)):
        epochs = range(first, last + 1)
        if not any(e in kept for e in epochs):
            continue
        a = at_budget(relabel(images, every, norm, recipe, 5, seed, epochs), b, seed)
        d = at_budget(relabel(images, direct, norm, recipe, 5, seed, epochs, kept), b, seed)
        assert sorted(a) == sorted(d)
        for k in a:
            assert np.array_equal(a[k], d[k]), k
    sizes = [5, 5, 2]
    assert direct.images == sum(sizes[i] for bb in kept.values() for i in bb)
    prunes = b.keep < 1 or (b.keep_unit == "batch" and b.pool_skip_last)
    assert direct.images < every.images if prunes else direct.images == every.images


def _lpld_pool(keep: float, epochs: int, batches: int, draws: int, rng) -> list[int]:
    """LPLD's student-side sampler as reference-frontier.md §3.3 states it, written apart:
    global indices of a prefix pool int(keep E B), drawn with replacement, an epoch's last
    batch replaced by the one before."""
    pool = int(keep * epochs * batches)
    out = []
    for _ in range(draws):
        i = int(rng.integers(0, pool))
        out.append(i - 1 if (i + 1) % batches == 0 else i)
    return out


def test_the_batch_pool_is_lpld_prefix_drawn_with_replacement():
    """E = 300 epochs of B = 10 batches at 40x (keep 0.025): a pool of the first 75 batches;
    no draw is an epoch's last, the one before it is drawn twice as often, and the draws'
    frequencies match the reference sampler's."""
    b = LabelBudget(keep=0.025, keep_unit="batch")
    assert b.pool_size(300, 10) == 75
    kept = b.kept(300, 10, 42)
    assert sorted(kept) == list(range(1, 9))  # epochs 1-8 hold the pool: only they are labelled
    assert kept[8] == [0, 1, 2, 3, 4] and kept[1] == list(range(9))  # 75 = 7 x 10 + 5; no 9th
    ours = collections.Counter(
        (e - 1) * 10 + i for epoch in range(1, 601) for e, i in b.draws(300, 10, 0, epoch)
    )
    ref = collections.Counter(_lpld_pool(0.025, 300, 10, 6000, np.random.default_rng(0)))
    assert set(ours) == set(ref) == {g for g in range(75) if g % 10 != 9}
    for g in ref:  # the same distribution: 6000 draws, so within about 4 standard errors
        p = (2 if g % 10 == 8 else 1) / 75
        assert abs(ours[g] - 6000 * p) < 4 * (6000 * p) ** 0.5 + 5
    a, again, other = (b.draws(300, 10, s, 3) for s in (0, 0, 1))
    assert a == again and a != other and len(a) == 10  # B draws, seeded by the student seed
    everything = LabelBudget(keep=1.0, keep_unit="batch", pool_skip_last=False)
    assert everything.pool_size(300, 10) == 3000  # 1x still draws with replacement (quirk)
    draws = [everything.draws(2, 10, 0, e) for e in range(1, 51)]
    assert any(len(set(d)) < 10 for d in draws)  # with replacement: repeats within an epoch
    with pytest.raises(ValueError, match="set pool_skip_last: false"):
        LabelBudget(keep_unit="batch").kept(10, 1, 0)


def _student(stored, recipe, bundle, images):
    return train_student(images, None, bundle, recipe, 0, CPU, stored=stored)["curve"]


@pytest.mark.parametrize("budget", [BUDGETS[1], BUDGETS[3]], ids=["epochs", "batches"])
def test_a_student_on_a_budget_file_equals_one_reading_the_full_labels_through_it(
    tmp_path, monkeypatch, budget
):
    """Through the stages: the relabel stage's files of two ranges, the budget's files made
    from them and made by labelling only the kept batches, and the students on each."""
    import ddflow.stages as stages

    bundle = _bundle()
    images = write_set(tmp_path, bundle)
    (tmp_path / "meta.json").write_text(json.dumps({"classes": bundle.classes}))
    (tmp_path / "t.json").write_text(json.dumps({"test_top1": 50.0, "stage_id": "t1"}))
    monkeypatch.setattr(stages, "load_bundle", lambda *a: bundle)
    monkeypatch.setattr(stages, "load_labeler", lambda *a, **k: _Counting().inner)
    recipes = _recipe([{}, budget])
    [full_name, name] = recipes
    recipe = recipes[name]
    views = {k: recipe[k] for k in ("epochs", "batch_size", "min_scale", "max_scale", "hflip",
                                    "cutmix")}  # fmt: skip
    params = {"views": views, "seed": recipe["relabel_seed"]}

    def made(folder, rng, source=None, budget=None):
        out = tmp_path / folder / f"epochs{rng[0]:04d}-{rng[1]:04d}.npz"
        out.parent.mkdir(exist_ok=True)
        extra = {"budget": budget} if budget else {}
        stages.run_relabel(
            str(tmp_path / "images"), str(tmp_path / "m.json"), "x", str(tmp_path / "meta.json"),
            "t.pt", str(tmp_path / "t.json"), {**params, "epochs": list(rng), **extra},
            {"device": "cpu"}, str(out), threads=1, source=source,
        )  # fmt: skip
        return out

    ranges = [(1, 2), (3, 4)]
    full = [made("full", r) for r in ranges]
    b = LabelBudget.from_config(recipe["label_budget"])
    kept = b.kept(4, 3, recipe["relabel_seed"])
    shared, own = [], []
    for r, src in zip(ranges, full):
        if any(r[0] <= e <= r[1] for e in kept):
            shared.append(made("shared", r, source=str(src), budget=recipe["label_budget"]))
            own.append(made("own", r, budget=recipe["label_budget"]))
    for a, d in zip(shared, own):
        za, zd = np.load(a), np.load(d)
        for k in za.files:
            if k not in ("wall_s", "__sha256__"):  # the time it took, so the checksum too
                assert np.array_equal(za[k], zd[k]), k

    def student(files, r):
        out = tmp_path / f"{files[0].parent.name}.json"
        stages.run_student(
            str(tmp_path / "images"), str(tmp_path / "m.json"), "x", "x", None,
            str(tmp_path / "t.json"), r, 0, {}, {"device": "cpu"}, str(out), threads=1,
            label_shards=[str(p) for p in files],
        )  # fmt: skip
        return json.loads(out.read_text())

    on_shared, on_own = student(shared, recipe), student(own, recipe)
    assert on_shared["curve"] == on_own["curve"]
    assert on_shared["labels"]["label_bytes"] == sum(p.stat().st_size for p in shared)
    # the full labels read through the same budget in memory: the same student, bit for bit
    drop = ("wall_s", "identity_json", "__sha256__")
    records = merge_shards([{k: v for k, v in np.load(p).items() if k not in drop} for p in full])
    through = StoredLabels(at_budget(records, b, recipe["relabel_seed"]), b)
    assert _student(through, recipe, bundle, images) == on_shared["curve"]
    on_full = student(full, recipes[full_name])
    assert on_full["curve"] != on_shared["curve"]  # the budget is not a no-op
    assert on_shared["labels"]["label_array_bytes"] < on_full["labels"]["label_array_bytes"]
    assert on_full["labels"]["label_array_bytes"] == on_full["labels"]["full_label_bytes"]


def test_budget_names_ids_and_refusals():
    names = list(_recipe([{}, {"keep": 0.025, "keep_unit": "batch"},
                          {"keep": 0.5, "keep_unit": "batch", "pool_skip_last": False},
                          {"topk": 2, "keep": 0.5}]))  # fmt: skip
    assert names == [
        "stored",
        "stored-batches0.025",
        "stored-batches0.5-all",
        "stored-top2-keep0.5",
    ]
    # generate changes how the labels are made, never a student's or a label file's id
    a = StageIds(_cfg(label_budget={"keep": 0.1, "keep_unit": "batch"}))
    b = StageIds(_cfg(label_budget={"keep": 0.1, "keep_unit": "batch", "generate": "kept"}))
    assert a.students == b.students and a.budget("stored-batches0.1") == b.budget(
        "stored-batches0.1"
    )
    # the batch unit's keys stay out of the ids of budgets that do not use it
    plain = StageIds(_cfg(label_budget={"keep": 0.5}))
    assert plain.student_slice("stored-keep0.5")["student"]["label_budget"] == {
        "topk": None, "dtype": "fp16", "keep": 0.5}  # fmt: skip
    with pytest.raises(ConfigError, match=r"'student.label_budget.1': the same budget as entry 0"):
        _cfg(label_budget=[{"keep": 0.5}, {"keep": 0.5, "generate": "kept"}])
    from ddflow.checks import check_experiment

    one_batch = _cfg(label_budget={"keep": 0.5, "keep_unit": "batch"}, batch_size=100)
    with pytest.raises(ConfigError, match=r"'student.label_budget.pool_skip_last': at IPC 3"):
        check_experiment(one_batch)
