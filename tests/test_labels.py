"""Label protocols: stored (FKD) labels replay the online student exactly; budgets; hard/hybrid."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ddflow.config import VIEW_KEYS, StageIds, student_protocols, validate_config
from ddflow.data.datasets import DatasetBundle
from ddflow.data.pixels import Normalizer
from ddflow.labels.budget import LabelBudget
from ddflow.labels.protocols import hard_loss
from ddflow.labels.stored import (
    LabelError,
    StoredLabels,
    at_budget,
    label_identity,
    merge_shards,
    relabel,
)
from ddflow.models import build_model
from ddflow.train.student import train_student
from ddflow.train.views import draw_epoch, render

from conftest import write_set

CPU = torch.device("cpu")


def _bundle():
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, (40, 12, 12, 3), dtype=np.uint8)
    y = np.repeat(np.arange(4), 10)
    return DatasetBundle(x, y, x[:16], y[:16], list("abcd"), [0.5] * 3, [0.25] * 3)


def _recipe(labels="online", **over):
    cfg = validate_config(
        {
            "dataset": {"name": "d", "source": "mnist-embedded"},
            "teacher": {"arch": "convnet_d3"},
            "ipc": [3],
            "methods": {"random": {"kind": "random"}},
            "student": {
                "arch": "convnet_d3", "epochs": 3, "batch_size": 5, "eval_every": 1,
                "min_scale": 0.4, "temperature": 4, "labels": labels, **over,
            },
        }
    )  # fmt: skip
    return cfg


def _teacher():
    torch.manual_seed(11)
    return build_model("convnet_d3", 4, 3, (12, 12)).eval()


class _Spy(torch.nn.Module):
    def __init__(self, inner, seen, fp16=False):
        super().__init__()
        self.inner, self.seen, self.fp16 = inner, seen, fp16

    def forward(self, x):
        self.seen.append(x.detach().clone())
        out = self.inner(x)
        return out.half().float() if self.fp16 else out


def _stored(bundle, images, recipe, teacher, budget=None, shards=((1, 3),)):
    norm = Normalizer(bundle.mean, bundle.std, CPU)
    parts = [
        relabel(images, teacher, norm, recipe, 5, recipe["relabel_seed"], range(a, b + 1))
        for a, b in shards
    ]
    budget = budget or LabelBudget()
    return StoredLabels(at_budget(merge_shards(parts), budget, recipe["relabel_seed"]), budget)


def test_a_stored_label_student_equals_the_online_student_with_fp16_teacher_logits(monkeypatch):
    """Same seed for the views: the stored student trains on byte-identical inputs, and with the
    online teacher's logits rounded to fp16 (what FKD stores) on identical bytes throughout."""
    import ddflow.train.student as student

    bundle, images = _bundle(), _bundle().train_x[:12]
    cfg = _recipe(["online", "stored"], relabel_seed=0)
    recipes = student_protocols(cfg["student"])
    seen_online, seen_stored = [], []
    build = student.build_model
    sink = {"runs": seen_online}
    monkeypatch.setattr(student, "build_model", lambda *a, **k: _Spy(build(*a, **k), sink["runs"]))
    online = train_student(
        images, _Spy(_teacher(), [], fp16=True), bundle, recipes["online"], 0, CPU
    )
    stored_labels = _stored(bundle, images, recipes["stored"], _teacher(), shards=((1, 2), (3, 3)))
    sink["runs"] = seen_stored
    stored = train_student(images, None, bundle, recipes["stored"], 0, CPU, stored=stored_labels)
    # drop evaluations, and the shape-only forward on the meta device that sizes their batches
    trained = lambda seen: [x for x in seen if x.shape[0] != 16 and not x.is_meta]  # noqa: E731
    assert len(trained(seen_online)) == len(trained(seen_stored)) == 3 * 3
    assert all(torch.equal(a, b) for a, b in zip(trained(seen_online), trained(seen_stored)))
    assert stored["curve"] == online["curve"]  # losses and accuracies, bit for bit
    # without the fp16 rounding the two differ only by it: close, not equal
    plain = train_student(images, _teacher(), bundle, recipes["online"], 0, CPU)
    assert plain["curve"][-1]["train_loss"] == pytest.approx(
        online["curve"][-1]["train_loss"], 1e-2
    )


def test_relabel_shards_by_epoch_range_hold_the_bytes_of_one_job():
    bundle, images = _bundle(), _bundle().train_x[:12]
    recipe = student_protocols(_recipe("stored")["student"])["stored"]
    norm = Normalizer(bundle.mean, bundle.std, CPU)
    whole = relabel(images, _teacher(), norm, recipe, 5, 42, range(1, 4))
    parts = [
        relabel(images, _teacher(), norm, recipe, 5, 42, r) for r in (range(3, 4), range(1, 3))
    ]
    merged = merge_shards(parts)
    assert sorted(whole) == sorted(merged)
    for k in whole:
        assert np.array_equal(whole[k], merged[k]), k
    assert whole["values"].dtype == np.float16 and whole["values"].shape == (3 * 12, 4)
    assert whole["batch_epoch"].tolist() == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert whole["batch_len"].tolist() == [5, 5, 2] * 3
    # each stored logit row is the teacher's output on the stored view of that image
    views, logits = StoredLabels(whole, LabelBudget()).epoch(2, 0)
    x = render(norm.to_tensor(images[views[1].idx]), views[1])
    with torch.no_grad():
        expect = _teacher()(x).half().float()
    assert torch.equal(logits[5:10], expect)


def test_the_views_depend_on_seed_and_epoch_only():
    recipe = {"min_scale": 0.3, "max_scale": 1.0, "hflip": True, "cutmix": 1.0}
    a = draw_epoch(10, 4, (8, 8), recipe, 1, 2)
    b = draw_epoch(10, 4, (8, 8), recipe, 1, 2)
    c = draw_epoch(10, 4, (8, 8), recipe, 1, 3)
    assert [v.idx.tolist() for v in a] == [v.idx.tolist() for v in b]
    assert all(np.array_equal(u.boxes, v.boxes) and u.mix_box == v.mix_box for u, v in zip(a, b))
    assert [v.idx.tolist() for v in a] != [v.idx.tolist() for v in c]
    assert sorted(np.concatenate([v.idx for v in a]).tolist()) == list(range(10))
    assert [len(v.idx) for v in a] == [4, 4, 2]


def test_a_stored_label_student_never_loads_the_teacher(tmp_path, monkeypatch):
    """The stage runs with no teacher file at all; loading one would fail the test."""
    import ddflow.stages as stages
    from ddflow import io

    bundle = _bundle()
    images = write_set(tmp_path, bundle)
    np.savez(tmp_path / "d.npz", train_x=bundle.train_x, train_y=bundle.train_y,
             test_x=bundle.test_x, test_y=bundle.test_y)  # fmt: skip
    meta = {"classes": bundle.classes, "mean": bundle.mean, "std": bundle.std}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    (tmp_path / "t.json").write_text(json.dumps({"test_top1": 55.0, "stage_id": "t1"}))
    recipe = student_protocols(_recipe("stored", relabel_seed=0)["student"])["stored"]
    shard = relabel(images, _teacher(), Normalizer(bundle.mean, bundle.std, CPU), recipe, 5, 0,
                    range(1, 4))  # fmt: skip
    identity = label_identity(
        str(tmp_path / "m.json"), {"teacher": "t1"}, {k: recipe[k] for k in VIEW_KEYS}, 0, 4,
        LabelBudget().slice(),
    )  # fmt: skip
    io.save_npz(tmp_path / "l.npz", **shard, wall_s=np.asarray(2.0),
                identity_json=np.array(json.dumps(identity)))  # fmt: skip

    def no_teacher(*a, **k):
        raise AssertionError("the stored-label student loaded the teacher")

    monkeypatch.setattr(stages, "load_teacher", no_teacher)
    monkeypatch.setattr(stages, "load_bundle", lambda *a: bundle)
    out = tmp_path / "s.json"
    stages.run_student(
        str(tmp_path / "images"), str(tmp_path / "m.json"), "unused", "unused", None,
        str(tmp_path / "t.json"), recipe, 0, {"method": "random"}, {"device": "cpu"}, str(out),
        threads=1, label_shards=[str(tmp_path / "l.npz")],
    )  # fmt: skip
    r = json.loads(out.read_text())
    assert r["labels"]["teacher_at_training"] is False and "teacher_bytes" not in r["labels"]
    keys = ("idx", "boxes", "flips", "mix", "mix_perm", "batch_epoch", "batch_index", "batch_len")
    views_bytes = sum(shard[k].nbytes for k in keys)
    assert r["labels"]["label_array_bytes"] == shard["values"].nbytes + views_bytes
    assert r["labels"]["label_bytes"] == (tmp_path / "l.npz").stat().st_size  # on disk
    assert r["distill_cost"]["relabel_wall_s"] == 2.0 and r["teacher_top1"] == 55.0


def test_label_budgets_encode_what_they_say():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (2, 6, 10)).astype(np.float16)
    full = LabelBudget().encode(logits)
    assert sum(a.nbytes for a in full.values()) == logits.nbytes
    top = LabelBudget(topk=3)
    enc = top.encode(logits)
    dec = top.decode(enc, 10)
    assert sum(a.nbytes for a in enc.values()) == 2 * 6 * 3 * (2 + 2)  # fp16 value + int16 index
    kept = np.isfinite(dec)
    assert (kept.sum(-1) == 3).all()
    order = np.argsort(-logits.astype(np.float32), -1)[..., :3]
    assert (np.sort(np.nonzero(kept.reshape(-1, 10))[1].reshape(-1, 3), -1)
            == np.sort(order.reshape(-1, 3), -1)).all()  # fmt: skip
    assert np.array_equal(dec[kept], logits.astype(np.float32)[kept])
    q = LabelBudget(dtype="int8")
    qdec = q.decode(q.encode(logits), 10)
    step = (logits.max(-1) - logits.min(-1)).astype(np.float32) / 255
    assert (np.abs(qdec - logits) <= step[..., None] / 2 + 0.02).all()
    assert q.encode(logits)["q"].dtype == np.uint8
    # the softmax of a top-k label puts no mass outside the k classes
    p = F.softmax(torch.from_numpy(dec) / 4, -1)
    assert torch.equal(p[torch.from_numpy(~kept)], torch.zeros(int((~kept).sum())))


def test_a_kept_share_of_epochs_is_cycled_and_counted():
    bundle, images = _bundle(), _bundle().train_x[:10]
    recipe = student_protocols(_recipe("stored", epochs=4)["student"])["stored"]
    labels = _stored(bundle, images, recipe, _teacher(), LabelBudget(keep=0.5), ((1, 4),))
    assert len(labels.kept) == 2 and set(labels.kept) <= {1, 2, 3, 4}
    first = [labels.epoch(e, 0)[0][0].idx.tolist() for e in (1, 2, 3, 4)]
    assert first[0] == first[2] and first[1] == first[3] and first[0] != first[1]
    full = _stored(bundle, images, recipe, _teacher(), None, ((1, 4),))
    assert labels.bytes["logits"] * 2 == full.bytes["logits"]
    with pytest.raises(
        LabelError, match=r"relabel more epochs or set student.label_budget.keep below 1$"
    ):
        full.check_fits(10, 5, 5)
    with pytest.raises(LabelError, match="batches of 5, the student trains on 10 in batches of 4"):
        full.check_fits(10, 4, 4)


def test_the_hard_protocol_is_cutmix_weighted_cross_entropy_and_needs_no_teacher():
    logits = torch.randn(4, 3)
    y = torch.tensor([0, 1, 2, 0])
    (view,) = draw_epoch(4, 4, (8, 8), {"min_scale": 1, "max_scale": 1, "hflip": False,
                                        "cutmix": 1.0}, 0, 1)  # fmt: skip
    lam, perm = view.mix_lam, torch.as_tensor(view.mix_perm)
    by_hand = -(lam * F.log_softmax(logits, 1)[range(4), y]
                + (1 - lam) * F.log_softmax(logits, 1)[range(4), y[perm]]).mean()  # fmt: skip
    assert torch.allclose(hard_loss(logits, y, view), by_hand)
    bundle = _bundle()
    recipes = student_protocols(_recipe(["hard", "hybrid"], hard_weight=0.5)["student"])
    targets = bundle.train_y[:12]
    hard = train_student(bundle.train_x[:12], None, bundle, recipes["hard"], 0, CPU,
                         targets=targets)  # fmt: skip
    hybrid = train_student(bundle.train_x[:12], _teacher(), bundle, recipes["hybrid"], 0, CPU,
                           targets=targets)  # fmt: skip
    online = train_student(bundle.train_x[:12], _teacher(), bundle, recipes["hybrid"] | {
        "labels": "online"}, 0, CPU)  # fmt: skip
    assert hard["curve"] != hybrid["curve"] != online["curve"]
    assert hybrid["curve"][0]["train_loss"] > online["curve"][0]["train_loss"]
    # the hybrid loss by hand: T^2 x KL(teacher || student) + hard_weight x CutMix-weighted CE
    from ddflow.labels.protocols import make_protocol

    proto = make_protocol(recipes["hybrid"], 0, 4, 4, (8, 8), teacher=_teacher())
    x = torch.randn(4, 3, 12, 12)
    with torch.no_grad():
        t_logits = _teacher()(x)
    t = recipes["hybrid"]["temperature"]
    s_logits = torch.randn(4, 4)
    y4 = torch.tensor([0, 1, 2, 3])
    kl = F.kl_div(F.log_softmax(s_logits / t, 1), F.softmax(t_logits / t, 1), reduction="batchmean")
    expect = t**2 * kl + 0.5 * hard_loss(s_logits, y4, view)
    torch.testing.assert_close(proto.loss(s_logits, x, view, y4, None), expect)


def test_protocols_get_their_own_student_ids_and_only_their_keys():
    base = StageIds(_recipe(["hard", "online", "stored", "hybrid"]))
    assert list(base.students) == ["hard", "online", "stored", "hybrid"]
    assert len(set(base.students.values())) == 4
    budgets = StageIds(_recipe("stored", label_budget=[{}, {"topk": 5, "dtype": "int8"}]))
    assert list(budgets.students) == ["stored", "stored-top5-int8"]
    assert budgets.students["stored"] == base.students["stored"]
    # keys a protocol does not use never move its id; layout never moves any id
    for key, value in [("hard_weight", 3.0), ("relabel_seed", 7), ("label_budget", {"keep": 0.5}),
                       ("relabel_epochs_per_shard", 1)]:  # fmt: skip
        other = StageIds(_recipe(["hard", "online", "stored", "hybrid"], **{key: value}))
        pairs = zip(base.students.items(), other.students.values())
        moved = {p for (p, sid), other_sid in pairs if other_sid != sid}
        expected = {"hard_weight": {"hybrid"}, "relabel_seed": {"stored"},
                    "label_budget": {"stored"}, "relabel_epochs_per_shard": set()}  # fmt: skip
        assert moved == expected[key]
    cfg = _recipe("stored")
    a, b = StageIds(cfg), StageIds(_recipe("stored", relabel_epochs_per_shard=1))
    assert a.relabel("random", 3) == b.relabel("random", 3)
    assert a.relabel("random", 3) != StageIds(_recipe("stored", cutmix=0.5)).relabel("random", 3)


def test_stored_labels_refuse_randaugment_with_the_fix():
    from ddflow.config import ConfigError

    with pytest.raises(ConfigError, match="student.randaugment': stored labels replay"):
        _recipe(["online", "stored"], randaugment="rand-m9-n2")


def test_replayed_views_are_the_drawn_views_field_by_field():
    bundle, images = _bundle(), _bundle().train_x[:12]
    norm = Normalizer(bundle.mean, bundle.std, CPU)
    for over in ({}, {"min_scale": 1.0, "max_scale": 1.0, "hflip": False, "cutmix": 0.0}):
        recipe = student_protocols(_recipe("stored", **over)["student"])["stored"]
        stored = StoredLabels(relabel(images, _teacher(), norm, recipe, 5, 3, range(1, 3)),
                              LabelBudget())  # fmt: skip
        for epoch in (1, 2):
            replayed, _ = stored.epoch(epoch, 0)
            drawn = draw_epoch(12, 5, (12, 12), recipe, 3, epoch)
            for r, d in zip(replayed, drawn, strict=True):
                assert np.array_equal(r.idx, d.idx) and np.array_equal(r.flips, d.flips)
                assert (r.boxes is None) == (d.boxes is None)
                assert r.boxes is None or np.array_equal(r.boxes, d.boxes)
                assert (r.mix_box, r.mix_lam) == (d.mix_box, d.mix_lam)
                assert (r.mix_perm is None) == (d.mix_perm is None)
                assert r.mix_perm is None or np.array_equal(r.mix_perm, d.mix_perm)


def test_budget_from_config_and_the_encodings_shapes_and_types():
    assert LabelBudget.from_config({}) == LabelBudget(None, "fp16", 1.0)
    full = {"topk": 5, "dtype": "int8", "keep": 0.5}
    assert LabelBudget.from_config(full) == LabelBudget(5, "int8", 0.5)
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 4, (2, 3, 100)).astype(np.float16)  # n (3) != classes (100)
    top = LabelBudget(topk=8)
    enc = top.encode(logits)
    assert enc["index"].dtype == np.int16 and enc["index"].shape == (2, 3, 8)
    dec = top.decode(enc, 100)
    assert dec.dtype == np.float32 and dec.shape == (2, 3, 100)
    assert np.isfinite(dec).sum(-1).tolist() == [[8] * 3] * 2
    same = LabelBudget(topk=100).encode(logits)  # k = all classes: nothing to index
    assert sorted(same) == ["values"] and same["values"].nbytes == logits.nbytes
    wide = LabelBudget(topk=2).encode(np.zeros((1, 1, 40000), np.float16))
    assert wide["index"].dtype == np.int32  # class ids past int16
    q = LabelBudget(dtype="int8").encode(logits)
    assert q["lo"].shape == q["step"].shape == (2, 3, 1)
    assert q["lo"].dtype == q["step"].dtype == np.float16
    narrow = np.linspace(0, 0.1, 100, dtype=np.float32).reshape(1, 1, 100)  # range < 1
    assert LabelBudget(dtype="int8").encode(narrow)["q"].max() == 255  # full 8 bits used


def test_kept_epochs_follow_the_seed_and_keep_at_least_one():
    budget = LabelBudget(keep=0.25)
    a = budget.kept_epochs(20, 42)
    assert len(a) == 5 and a == budget.kept_epochs(20, 42) and a == sorted(a)
    assert any(a != budget.kept_epochs(20, s) for s in (1, 2, 3))
    assert len(LabelBudget(keep=0.1).kept_epochs(4, 0)) == 1  # ceil(0.4)
    assert budget.kept(20, 3, 42) == {e: [0, 1, 2] for e in a}  # every batch of a kept epoch


def test_hard_and_stored_losses_by_hand():
    from ddflow.labels.protocols import make_protocol

    logits, y = torch.randn(4, 3), torch.tensor([2, 0, 1, 1])
    (plain,) = draw_epoch(4, 4, (8, 8), {"min_scale": 1, "max_scale": 1, "hflip": False,
                                         "cutmix": 0.0}, 0, 1)  # fmt: skip
    assert plain.mix_box is None
    by_hand = -F.log_softmax(logits, 1)[range(4), y].mean()
    torch.testing.assert_close(hard_loss(logits, y, plain), by_hand)
    soft = torch.randn(4, 3)
    recipe = student_protocols(_recipe("stored", t2_factor=True)["student"])["stored"]
    stored = _stored(_bundle(), _bundle().train_x[:10], recipe, _teacher(), shards=((1, 3),))
    proto = make_protocol(recipe, 0, 10, 5, (12, 12), stored=stored)
    t = recipe["temperature"]
    kl = F.kl_div(F.log_softmax(logits / t, 1), F.softmax(soft / t, 1), reduction="batchmean")
    torch.testing.assert_close(proto.loss(logits, None, plain, y, soft), t**2 * kl)


def test_the_hard_protocol_learns_the_given_classes():
    bundle = _bundle()
    recipe = student_protocols(_recipe("hard")["student"])["hard"]
    x, y = bundle.train_x[:12], bundle.train_y[:12]
    a = train_student(x, None, bundle, recipe, 0, CPU, targets=y)
    b = train_student(x, None, bundle, recipe, 0, CPU, targets=(y + 1) % 4)
    assert a["curve"] != b["curve"]


@pytest.mark.parametrize(
    "protocol, label_bytes, teacher",
    [("hard", 24, False), ("online", 0, True), ("hybrid", 24, True)],
)
def test_label_storage_counts_what_each_protocol_reads(protocol, label_bytes, teacher):
    """Hard and hybrid read the set's class indices (2 bytes each); online and hybrid run the
    teacher, whose weights are counted, and the logits FKD would have stored instead."""
    from ddflow.labels.protocols import PROTOCOLS
    from ddflow.stages import label_storage

    recipe = student_protocols(_recipe(protocol)["student"])[protocol]
    net = _teacher()
    weights = sum(t.numel() * t.element_size() for t in [*net.parameters(), *net.buffers()])
    out = label_storage(recipe, PROTOCOLS[protocol], net if teacher else None, None, 12, _bundle())
    assert out["label_bytes"] == label_bytes and out["teacher_at_training"] is teacher
    assert out.get("teacher_bytes") == (weights if teacher else None)
    assert out.get("label_bytes_if_stored") == (3 * 12 * 4 * 2 if teacher else None)


def test_int8_steps_are_per_view_ties_keep_the_lowest_class_and_decoding_is_float32():
    """A view with a small logit range keeps its own 1/255 resolution (a global range would
    flatten it); tied top-k classes resolve to the lowest class index for any class count
    (numpy's default sort is not stable past 16 elements); students get float32 logits."""
    small = np.linspace(0, 1, 10, dtype=np.float32)
    logits = np.stack([small, small * 100])[None]  # (1 epoch, 2 views, 10 classes)
    q = LabelBudget(dtype="int8")
    dec = q.decode(q.encode(logits), 10)
    assert np.abs(dec[0, 0] - small).max() <= 0.5 / 255 + 1e-3
    assert dec.dtype == np.float32
    ties = np.random.default_rng(0).integers(0, 3, (1, 40, 100)).astype(np.float16)
    top = LabelBudget(topk=3)
    enc = top.encode(ties)
    expect = [sorted(range(100), key=lambda c, r=r: (-r[c], c))[:3] for r in ties[0].tolist()]
    assert enc["index"][0].tolist() == expect
    assert top.decode(enc, 100).dtype == np.float32
    assert LabelBudget().decode(LabelBudget().encode(ties), 100).dtype == np.float32
    rng = np.random.default_rng(1)
    records = {"values": rng.normal(size=(8, 7)).astype(np.float16), "batch_len": np.array([4, 4]),
               "batch_epoch": np.array([1, 2]), "batch_index": np.array([0, 0]),
               "num_classes": np.asarray(7), "epochs_total": np.asarray(2),
               "idx": np.zeros(8, np.int32), "flips": np.zeros(8, bool)}  # fmt: skip
    records = {**records, **top.encode(records.pop("values"))}
    stored = StoredLabels(records, top)
    assert stored.logits.shape == (8, 7) and (np.isfinite(stored.logits).sum(-1) == 3).all()
