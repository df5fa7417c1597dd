"""The student options the frontier methods need, against independent references: EDC's
schedules as its scripts write them, G-VBSM's MSE-plus-CE loss by hand, the weight EMA in closed
form, micro-batches against a hand-accumulated step, torchvision's RandAugment, and the rules
that keep them to the protocols they fit."""

import math

import numpy as np
import pytest
import torch

from ddflow.config import ConfigError, StageIds, student_protocols, validate_config
from ddflow.labels.soft import mse_gt
from ddflow.train.common import WeightEMA, tv_rand_augment
from ddflow.train.student import epoch_lr_factor

BASE = {"dataset": {"name": "d", "source": "mnist-embedded"}, "ipc": [2], "teacher": {},
        "methods": {"r": {"kind": "random"}}}  # fmt: skip


def _cfg(**student):
    return validate_config({**BASE, "student": student})


@pytest.mark.parametrize("epochs", [12, 300])
def test_edc_schedules_as_its_scripts_write_them(epochs):
    """EDC's LambdaLR lambdas with st = 2: the 'else' branch the ImageNet 'cos' falls into, and
    'cos2' (the CIFAR-100 script)."""
    st = 2
    linear = lambda e: (1.0 - e / (st * epochs)) if e <= st * epochs else 0  # noqa: E731
    cos2 = lambda e: (0.5 * (1.0 + math.cos(math.pi * e / (st * epochs))) if e <= epochs * 5 / 6  # noqa: E731
                      else 0.5 * (1.0 + math.cos(math.pi * 5 / (6 * st)))
                      * (6 * epochs - 6 * e) / (6 * epochs))  # fmt: skip
    for e in range(epochs + 1):
        assert epoch_lr_factor(e, epochs, "linear_to", 0.5) == pytest.approx(linear(e), abs=1e-12)
        assert epoch_lr_factor(e, epochs, "cos2") == pytest.approx(cos2(e), abs=1e-12)
    assert epoch_lr_factor(epochs, epochs, "linear_to", 0.2) == pytest.approx(0.2)


@pytest.mark.parametrize("epochs", [12, 300, 1000])
def test_multistep_is_torchs_multisteplr_at_two_thirds_and_five_sixths(epochs):
    """CIM's evaluator: MultiStepLR(milestones [2E/3, 5E/6], gamma 0.2), stepped per epoch."""
    import torch

    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = torch.optim.lr_scheduler.MultiStepLR(
        opt, [int(2 * epochs / 3), int(5 * epochs / 6)], gamma=0.2)  # fmt: skip
    for e in range(epochs):
        assert epoch_lr_factor(e, epochs, "multistep") == pytest.approx(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()


def test_mse_gt_is_mse_plus_weighted_cross_entropy():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(4, 5, generator=g, requires_grad=True)
    t = torch.randn(4, 5, generator=g)
    y = torch.tensor([0, 3, 1, 4])
    by_hand = ((s - t) ** 2).sum() / 20 - 0.1 * torch.log_softmax(s, 1)[torch.arange(4), y].mean()
    (ga,) = torch.autograd.grad(mse_gt(s, t, y, 0.1), s)
    (gb,) = torch.autograd.grad(by_hand, s)
    torch.testing.assert_close(mse_gt(s, t, y, 0.1), by_hand)
    torch.testing.assert_close(ga, gb)


def test_the_weight_ema_in_closed_form_and_its_swap():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    w0 = model[0].weight.detach().clone()
    ema = WeightEMA(model, 0.9)
    steps = []
    for _ in range(3):
        with torch.no_grad():
            model[0].weight.add_(1.0)
        steps.append(model[0].weight.detach().clone())
        ema.update(model)
    expect = w0
    for w in steps:
        expect = 0.9 * expect + 0.1 * w
    model[1].running_mean.fill_(7.0)
    with ema.swapped(model):
        torch.testing.assert_close(model[0].weight, expect)
        assert (model[1].running_mean == 7.0).all()  # the live buffers
    torch.testing.assert_close(model[0].weight, steps[-1])  # restored


def _step(micro, bn):
    from ddflow.data.pixels import Normalizer
    from ddflow.labels.protocols import make_protocol
    from ddflow.train.common import Precision
    from ddflow.train.student import student_step

    torch.manual_seed(0)
    layers = [torch.nn.Conv2d(1, 4, 3), *( [torch.nn.BatchNorm2d(4)] if bn else []),
              torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 3)]  # fmt: skip
    model = torch.nn.Sequential(*layers)
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3)).eval()
    cfg = student_protocols(_cfg(labels="online", loss="mse_gt", cutmix=0.0)["student"])["online"]
    protocol = make_protocol(cfg, 0, 8, 8, (8, 8), teacher=teacher)
    (view,), _ = protocol.epoch(1)
    images = torch.as_tensor(np.random.default_rng(0).integers(0, 255, (8, 8, 8, 1), np.uint8))
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    norm = Normalizer([0.5], [0.25])
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = student_step(model, protocol, opt, norm, Precision("fp32", torch.device("cpu")),
                        (images[view.idx], labels[view.idx], view, None), micro=micro)  # fmt: skip
    return loss, [p.detach().clone() for p in model.parameters()]


def test_micro_batches_accumulate_the_whole_batch_gradient():
    """Without BatchNorm, micro-batches of 4 give the whole batch's step exactly (a mean loss);
    with it, BN sees each micro-batch alone, so the step differs."""
    whole, micro = _step(None, False), _step(4, False)
    torch.testing.assert_close(whole[0], micro[0])
    for a, b in zip(whole[1], micro[1]):
        torch.testing.assert_close(a, b)
    bn_whole, bn_micro = _step(None, True), _step(4, True)
    assert not all(torch.allclose(a, b) for a, b in zip(bn_whole[1], bn_micro[1]))


def test_torchvision_randaugment_changes_images_per_image():
    torch.manual_seed(0)
    images = np.random.default_rng(0).integers(0, 255, (6, 16, 16, 3), np.uint8)
    out = tv_rand_augment({"num_ops": 2, "magnitude": 9})(images)
    assert out.shape == images.shape and out.dtype == np.uint8
    assert (out != images).any()


@pytest.mark.parametrize(
    ("student", "message"),
    [({"labels": "stored", "loss": "mse_gt", "label_budget": {"topk": 3}},
      "mse_gt regresses every logit, which a top-k label budget leaves out"),
     ({"labels": "hybrid", "loss": "mse_gt"}, "the hybrid protocol is KL x T"),
     ({"labels": "hard", "micro_batch": 2}, "the hard protocol weights CutMix's hard labels"),
     ({"labels": "stored", "tv_randaugment": {}}, "config key 'student.tv_randaugment'"),
     ({"labels": "stored", "augment": "idc"}, "stored labels replay the drawn views, which idc"),
     ({"eval_from": 1.0}, "student.eval_from")],
)  # fmt: skip
def test_the_options_stay_with_the_protocols_they_fit(student, message):
    with pytest.raises(ConfigError, match=message):
        _cfg(**student)


def test_the_new_keys_change_no_id_unless_set():
    plain = StageIds(_cfg()).students
    assert StageIds(_cfg(loss="kl", ema_decay=None, micro_batch=None)).students == plain
    assert StageIds(_cfg(ce_weight=0.5)).students == plain  # only with mse_gt
    assert StageIds(_cfg(loss="mse_gt")).students != plain
    assert StageIds(_cfg(schedule_end=0.2)).students == plain  # only with linear_to
    assert StageIds(_cfg(cell_factor=3, eval_from=0.0)).students == plain  # cells: only with idc
    assert StageIds(_cfg(augment="idc")).students != plain
    assert (
        StageIds(_cfg(augment="idc", cell_factor=3)).students
        != StageIds(_cfg(augment="idc")).students
    )
    assert StageIds(_cfg(eval_from=0.8)).students != plain


def test_an_ensemble_labels_as_g_vbsm_combines_its_teachers():
    """norm_mean as the released relabel writes it: stack, divide by each teacher's norm over
    (batch, classes), times their mean, then the mean; mean is the plain average."""
    from ddflow.labels.soft import Ensemble

    torch.manual_seed(0)
    teachers = [torch.nn.Linear(6, 4) for _ in range(3)]
    x = torch.randn(5, 6)
    with torch.no_grad():
        out = torch.stack([t(x) for t in teachers], 0)
        norm = torch.norm(out, dim=[1, 2], keepdim=True)
        released = (out / norm * norm.mean(0, keepdim=True)).mean(0)
        torch.testing.assert_close(Ensemble(teachers, "norm_mean")(x), released)
        torch.testing.assert_close(Ensemble(teachers, "mean")(x), out.mean(0))


def test_relabel_teachers_enter_the_ids_only_when_set():
    cfg = {**BASE, "teachers": {"b": {"arch": "convnet_d2_in"}}}
    plain = StageIds(validate_config({**cfg, "student": {"labels": "stored"}}))
    both = {"labels": "stored", "relabel_teachers": ["teacher", "b"]}
    ens = StageIds(validate_config({**cfg, "student": both}))
    assert plain.students != ens.students and plain.relabel("r", 2) != ens.relabel("r", 2)
    assert ens.labeler_slice()["relabel_teachers"] == [ens.teacher, ens.teachers["b"]]
    with pytest.raises(ConfigError, match="'student.relabel_teachers': \\['c'\\] are not"):
        validate_config({**cfg, "student": {"relabel_teachers": ["c"]}})


@pytest.mark.parametrize(("eval_from", "evaluated"), [(0.0, [2, 4, 6, 8, 10]), (0.5, [6, 8, 10]),
                                                      (0.8, [10]), (0.75, [8, 10])])  # fmt: skip
def test_evaluation_windows_as_fadrms_simple_flag(eval_from, evaluated, monkeypatch):
    """FADRM's is_special_epoch (0-based e >= int(0.8 E), e % 10 == 9 or the last), 1-based."""
    from test_labels import _bundle, _recipe, _teacher

    import ddflow.train.student as student

    monkeypatch.setattr(student, "evaluate", lambda *a: 1.0)
    recipe = student_protocols(_recipe(epochs=10, eval_every=2, eval_from=eval_from)["student"])
    out = student.train_student(_bundle().train_x[:12], _teacher(), _bundle(), recipe["online"],
                                0, torch.device("cpu"))  # fmt: skip
    assert [p["epoch"] for p in out["curve"] if "test_top1" in p] == evaluated
    fadrm = [e + 1 for e in range(10) if e >= int(10 * 0.8) and (e % 2 == 1 or e == 9)]
    assert fadrm == [10] and (eval_from != 0.8 or evaluated == fadrm)


def test_an_idc_student_trains_on_augmented_batches_its_online_teacher_sees_too(monkeypatch):
    from test_labels import _bundle, _recipe, _Spy, _teacher

    import ddflow.train.student as student
    from ddflow.data.pixels import Normalizer

    seen_s, seen_t = [], []
    build = student.build_model
    monkeypatch.setattr(student, "build_model", lambda *a, **k: _Spy(build(*a, **k), seen_s))
    recipe = student_protocols(_recipe(epochs=1, augment="idc")["student"])["online"]
    bundle = _bundle()
    images = bundle.train_x[:12]
    student.train_student(images, _Spy(_teacher(), seen_t), bundle, recipe, 0, torch.device("cpu"))
    trained = [x for x in seen_s if x.shape[0] != 16 and not x.is_meta]  # not the evaluations
    taught = [x for x in seen_t if x.shape[0] != 16 and not x.is_meta]
    assert len(trained) == 3 and all(torch.equal(a, b) for a, b in zip(trained, taught))
    plain = Normalizer(bundle.mean, bundle.std, torch.device("cpu")).to_tensor(images)
    assert not any(torch.equal(p, x) for batch in trained for x in batch for p in plain)
