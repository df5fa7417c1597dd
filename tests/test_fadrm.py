"""FADRM (reference-frontier.md §4) against a plain reference: the staged loop (a fresh Adam a
stage, one cosine and one teacher counter over all stages, the residual mix toward the start
between stages, at each stage's size) written out with autograd; a BN-less member's steps are
CE only; fp16 with its loss scale; the starts from a patch folder and from another method's set;
the config rules and the presets."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from test_terms import _net

from ddflow.config import StageIds, validate_config
from ddflow.data.pixels import Normalizer
from ddflow.errors import ConfigError
from ddflow.recover.augment import RecoverAugment
from ddflow.recover.bn_loss import BNStatLoss, NoBNStats, member_bn_loss
from ddflow.recover.fadrm import recover_staged, residual_mix

STILL = RecoverAugment(crop=False, flip=False, jitter=0)
BOUNDS = (torch.full((1, 3, 1, 1), -9.0), torch.full((1, 3, 1, 1), 9.0))


def _bn_term(net, x):
    """sum_l w_l (||var_l - running_var|| + ||mean_l - running_mean||), w_1 = 10, by hand."""
    inputs = []
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    hooks = [bn.register_forward_pre_hook(lambda m, i: inputs.append(i[0])) for bn in bns]
    logits = net(x)
    for h in hooks:
        h.remove()
    r = 0.0
    for w, bn, f in zip([10.0] + [1.0] * len(bns), bns, inputs):
        var, mean = f.var((0, 2, 3), unbiased=False), f.mean((0, 2, 3))
        r = r + w * (torch.norm(bn.running_var - var) + torch.norm(bn.running_mean - mean))
    return logits, r


def _reference(nets, start, y, sizes, budgets, lr, r_bn, alpha):
    total, t = sum(budgets), 0
    x = F.interpolate(start, size=(sizes[0],) * 2, mode="bilinear", align_corners=False)
    for k, budget in enumerate(budgets):
        x = x.clone().requires_grad_(True)
        opt = torch.optim.Adam([x], lr=lr, betas=(0.5, 0.9), eps=1e-8)  # reset every stage
        for _ in range(budget):
            opt.param_groups[0]["lr"] = 0.5 * (1 + math.cos(math.pi * t / total)) * lr
            net = nets[t % len(nets)]
            logits, r = _bn_term(net, x)
            loss = F.cross_entropy(logits, y) + r_bn * r
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                x.clamp_(-9.0, 9.0)
            t += 1
        x = x.detach()
        if k + 1 < len(sizes):
            nxt = (sizes[k + 1],) * 2
            x = alpha * F.interpolate(x, size=nxt, mode="bilinear", align_corners=False) + (
                1 - alpha
            ) * F.interpolate(start, size=nxt, mode="bilinear", align_corners=False)
    return x


def _method(**extra):
    return {"stage_sizes": [6, 8, 6, 8], "stage_iterations": [2, 3, 1, 2], "lr": 0.1,
            "r_bn": 0.05, "residual": 0.5, "precision": "fp32", **extra}  # fmt: skip


def test_the_staged_loop_is_the_reference_written_out():
    nets = [_net(0), _net(1)]
    start, y = torch.randn(3, 3, 8, 8), torch.tensor([0, 1, 2])
    m = _method()
    pairs = [(n, BNStatLoss(n, 10.0)) for n in nets]
    got = recover_staged(pairs, start, y, m, STILL, BOUNDS, 0, 1, "t")
    want = _reference(nets, start, y, m["stage_sizes"], m["stage_iterations"], 0.1, 0.05, 0.5)
    assert got.shape == (3, 3, 8, 8)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    # the residual matters: without it (alpha 1) the images are others
    plain = _reference(nets, start, y, m["stage_sizes"], m["stage_iterations"], 0.1, 0.05, 1.0)
    assert not torch.allclose(got, plain, atol=1e-3)


def test_the_residual_mix_is_alpha_of_the_images_and_the_rest_the_start():
    x, start = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(residual_mix(x, start, 8, 0.25), 0.25 * F.interpolate(
        x, size=(8, 8), mode="bilinear", align_corners=False) + 0.75 * start)  # fmt: skip


def test_a_member_without_batchnorm_votes_with_its_ce_alone():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.InstanceNorm2d(4),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(4, 3)).eval().requires_grad_(False)  # fmt: skip
    assert isinstance(member_bn_loss(net, 10.0), NoBNStats)
    assert isinstance(member_bn_loss(_net(0), 10.0), BNStatLoss)
    start, y = torch.randn(3, 3, 8, 8), torch.tensor([0, 1, 2])
    m = _method(stage_sizes=[8], stage_iterations=[2])
    got = recover_staged([(net, member_bn_loss(net, 10.0))], start, y, m, STILL, BOUNDS, 0, 1, "")
    x = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.1, betas=(0.5, 0.9), eps=1e-8)
    for t in range(2):
        opt.param_groups[0]["lr"] = 0.5 * (1 + math.cos(math.pi * t / 2)) * 0.1
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    torch.testing.assert_close(got, x.detach(), rtol=1e-4, atol=1e-5)


def test_fp16_runs_with_a_loss_scale_and_stays_near_fp32():
    nets = [_net(0)]
    start, y = torch.randn(3, 3, 8, 8), torch.tensor([0, 1, 2])
    pairs = [(nets[0], BNStatLoss(nets[0], 10.0))]
    a = recover_staged(pairs, start, y, _method(precision="fp16"), STILL, BOUNDS, 0, 1, "")
    b = recover_staged(pairs, start, y, _method(), STILL, BOUNDS, 0, 1, "")
    assert torch.isfinite(a).all() and not torch.equal(a, b)
    assert (a - b).abs().max() < 0.2


def _cfg(**method):
    return validate_config({
        "dataset": {"name": "d", "source": "mnist-embedded"}, "teacher": {}, "student": {},
        "teachers": {"t2": {}}, "ipc": [1, 10],
        "methods": {"rded": {"kind": "rded"},
                    "m": {"kind": "fadrm", "teachers": ["teacher", "t2"], **method}}})  # fmt: skip


@pytest.mark.parametrize(("method", "error"), [
    ({"stage_sizes": [28, 28], "stage_iterations": [5]}, r"m.stage_iterations': 1 budgets for 2"),
    ({"init": "folder"}, r"methods.m.init_folder': init folder needs it"),
    ({"init": "folder", "init_folder": "/no/such"}, r"folder '/no/such' does not exist"),
    ({"init": "set"}, r"methods.m.init_set': init set needs it"),
    ({"init": "set", "init_set": "nope"}, r"init_set': 'nope' is not another method"),
])  # fmt: skip
def test_a_staging_or_start_that_cannot_run_is_refused(method, error):
    with pytest.raises(ConfigError, match=error):
        StageIds(_cfg(**method)).method("m")


def test_a_start_set_is_upstream_its_id_and_ipc_in_the_id():
    base = StageIds(_cfg(init="set", init_set="rded")).method("m")
    cfg = _cfg(init="set", init_set="rded")
    cfg["methods"]["rded"]["num_crops"] = 3
    assert StageIds(cfg).method("m") != base
    assert StageIds(_cfg(init="set", init_set="rded", init_ipc=1)).method("m") != base
    m = _cfg(init="set", init_set="rded")["methods"]["m"]
    from ddflow.methods import kind_of

    assert kind_of(m).source(m, [1, 10]) == ("rded", 10)
    assert kind_of(m).reads_for(m) == {"teachers", "source"}


def test_starts_come_from_a_patch_folder_and_from_another_methods_set(tmp_path):
    from ddflow.distilled import write_distilled
    from ddflow.recover.init import folder_init, set_init

    norm = Normalizer([0.5] * 3, [0.25] * 3, torch.device("cpu"))
    rng = np.random.default_rng(0)
    pix = rng.integers(0, 256, (2, 3, 8, 8, 3), dtype=np.uint8)  # class, index, H, W, C
    for c in range(2):
        (tmp_path / "p" / f"{c:05d}").mkdir(parents=True)
        for i in range(3):
            name = tmp_path / "p" / f"{c:05d}" / f"class{c:05d}_id{i:05d}.png"
            Image.fromarray(pix[c, i]).save(name)
    got = folder_init(tmp_path / "p", "index", ["a", "b"], 0, 2, 2, (3, 8, 8), norm)
    torch.testing.assert_close(got, norm.to_tensor(pix[:, 2]))
    write_distilled(str(tmp_path / "set"), str(tmp_path / "m.json"), pix.reshape(6, 8, 8, 3),
                    np.repeat([0, 1], 3), np.tile([0, 1, 2], 2), ["a", "b"], {})  # fmt: skip
    got = set_init(str(tmp_path / "set"), str(tmp_path / "m.json"), ["a", "b"], 1, 2, 1, norm)
    torch.testing.assert_close(got, norm.to_tensor(pix[1:, 1]))
    with pytest.raises(Exception, match="no IPC index 5"):
        set_init(str(tmp_path / "set"), str(tmp_path / "m.json"), ["a", "b"], 0, 2, 5, norm)


def test_presets_run_the_released_scripts():
    from ddflow.presets import RECOVER_PRESETS as P

    m = _cfg(preset="fadrmplus_imagenet1k")["methods"]["m"]
    assert (m["stage_sizes"], m["stage_iterations"], m["lr"], m["r_bn"], m["residual"]) == (
        [200, 224, 200, 224], [500] * 4, 0.25, 0.01, 0.5)  # fmt: skip
    assert (m["precision"], m["jitter"], m["batch_classes"]) == ("fp16", 32, 100)
    assert P["fadrm_tiny"]["stage_sizes"] == [64, 64] and P["fadrm_tiny"]["lr"] == 0.01
    assert P["fadrmplus_cifar100"]["stage_sizes"] == [32] * 4


def test_the_bssl_labeler_normalizes_each_chunk_with_its_own_statistics():
    import copy

    from ddflow.labels.soft import BatchStatTeacher

    net = _net(0)
    running = net[1].running_mean.clone()
    x = torch.randn(16, 3, 10, 10)
    ref = copy.deepcopy(net).train()
    with torch.no_grad():
        want = torch.cat([ref(x[:8]), ref(x[8:])])
        got = BatchStatTeacher(net, 8).eval()(x)
    torch.testing.assert_close(got, want)
    assert torch.equal(net[1].running_mean, running) and not net[1].training  # nothing moved
    assert not torch.allclose(got, net(x))  # not the eval-mode labels


def test_the_released_bssl_labels_with_dropout_on_seeded_by_each_chunks_pixels():
    """relabel_bn: train, as the released relabel leaves the whole model in train mode: the
    reference is the teacher in train() with each chunk's masks from a seed of its bytes."""
    import copy
    import hashlib

    from ddflow.labels.soft import BatchStatTeacher

    torch.manual_seed(0)
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Dropout(0.5),
                        nn.Linear(4 * 8 * 8, 3)).eval()  # fmt: skip
    x = torch.randn(16, 3, 10, 10)
    ref = copy.deepcopy(net).train()
    want = []
    for part in (x[:8], x[8:]):
        seed = int.from_bytes(hashlib.sha256(part.numpy().tobytes()).digest()[:8]) >> 1
        torch.manual_seed(seed)
        with torch.no_grad():
            want.append(ref(part))
    label = BatchStatTeacher(net, 8, dropout=True).eval()
    with torch.no_grad():
        got = label(x)
        torch.testing.assert_close(got, torch.cat(want))
        torch.testing.assert_close(label(x), got)  # the same batch, the same labels
        torch.testing.assert_close(label(x[8:]), got[8:])  # whatever came before
        assert not torch.allclose(BatchStatTeacher(net, 8)(x), got)  # batch: dropout off
    assert not net[3].training and not net[1].training


def test_the_bssl_relabel_is_in_the_label_ids_only_when_set():
    base = _cfg()
    ids = StageIds(base)
    cfg = _cfg()
    cfg["student"]["relabel_bn"] = "batch"
    batch = StageIds(cfg).relabel("m", 10)
    assert batch != ids.relabel("m", 10)
    cfg2 = _cfg()
    cfg["student"]["relabel_bn"] = "train"
    assert StageIds(cfg).relabel("m", 10) not in (batch, ids.relabel("m", 10))
    cfg2["student"]["relabel_chunk"] = 4  # with relabel_bn: eval it changes nothing
    assert StageIds(cfg2).relabel("m", 10) == ids.relabel("m", 10)
    assert StageIds(cfg2).students == ids.students


def test_init_offset_starts_image_i_from_patch_i_plus_offset(tmp_path):
    """The released ImageNet-1K IPC-1 scripts start from patch index 1 (Start_ipc=1)."""
    from types import SimpleNamespace

    from PIL import Image

    from ddflow.methods import Inputs, kind_of

    norm = Normalizer([0.5] * 3, [0.25] * 3, torch.device("cpu"))
    pix = np.random.default_rng(1).integers(0, 256, (2, 3, 8, 8, 3), dtype=np.uint8)
    for c in range(2):
        (tmp_path / f"{c:05d}").mkdir()
        for i in range(3):
            Image.fromarray(pix[c, i]).save(tmp_path / f"{c:05d}" / f"class{c:05d}_id{i:05d}.png")
    for offset in (0, 1):
        m = _cfg(init="folder", init_folder=str(tmp_path), init_offset=offset)["methods"]["m"]
        inputs = Inputs(stage_id="s", norm=norm, device=torch.device("cpu"), chw=(3, 8, 8),
                        bundle=SimpleNamespace(classes=["a", "b"]))  # fmt: skip
        start = kind_of(m).initializer(inputs, m)
        torch.testing.assert_close(start(0, 2, 1), norm.to_tensor(pix[:, 1 + offset]))


def test_a_resumed_fp16_batch_takes_up_its_loss_scale(tmp_path):
    """The GradScaler's scale and growth tracker travel with the saved state (a resumed fp16
    batch that restarted at the initial scale would skip other steps than the uninterrupted)."""
    import random

    from ddflow.recover.resume import ShardResume

    x = torch.zeros(2, 3, requires_grad=True)
    opt = torch.optim.Adam([x])
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    scaler.scale(torch.ones(()))  # the scale exists once used
    scaler.update(37.0)
    first = ShardResume(tmp_path / "s.pt", "id", 1)
    first.save(0, 3, x, opt, [random.Random(0)], scaler)
    again = ShardResume(tmp_path / "s.pt", "id", 1)
    fresh = torch.amp.GradScaler("cpu", init_scale=1024.0)
    assert again.restore(0, x, opt, [random.Random(1)], fresh) == 3
    assert fresh.get_scale() == 37.0 and fresh.state_dict() == scaler.state_dict()
