"""CIM (reference-frontier.md §6) against plain references: one augmentation draw for the
real images and the cells together; RDED's mosaic layout (cell k of mosaic m is kept image
k * IPC + m); the most confident candidates first; the refinement step against the paired
feature L1 written out with autograd, the same whatever the forward chunks; the feature hook;
config and presets."""

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_terms import _net

import ddflow.select.cim as cim
from ddflow.config import validate_config
from ddflow.data.pixels import Normalizer


def _one_draw_reference(x, gen):
    """DiffAug('crop_cutout_flip', batch=True) written out: one coin, one shift, one box."""
    n, c, h, w = x.shape
    if float(torch.rand(1, generator=gen)) < 0.5:
        x = x.flip(3)
    sh, sw = int(h * 0.125 + 0.5), int(w * 0.125 + 0.5)
    dy = int(torch.randint(-sh, sh + 1, (1,), generator=gen))
    dx = int(torch.randint(-sw, sw + 1, (1,), generator=gen))
    pad = F.pad(x, (sw, sw, sh, sh))  # out[i, j] = x[i + dy, j + dx], zeros outside
    x = pad[..., sh + dy : sh + dy + h, sw + dx : sw + dx + w]
    ch, cw = int(h * 0.5 + 0.5), int(w * 0.5 + 0.5)
    cy = int(torch.randint(0, h + (1 - ch % 2), (1,), generator=gen))
    cx = int(torch.randint(0, w + (1 - cw % 2), (1,), generator=gen))
    x = x.clone()
    x[
        ...,
        max(cy - ch // 2, 0) : max(cy - ch // 2 + ch, 0),
        max(cx - cw // 2, 0) : max(cx - cw // 2 + cw, 0),
    ] = 0
    return x


def test_the_whole_batch_takes_one_draw_flip_then_crop_then_cutout():
    x = torch.randn(6, 3, 8, 8)
    for seed in range(12):
        a, b = cim.paired_augment(x[:3], x[3:], torch.Generator().manual_seed(seed))
        want = _one_draw_reference(x, torch.Generator().manual_seed(seed))
        torch.testing.assert_close(torch.cat([a, b]), want)
    a, b = cim.paired_augment(x, x.clone(), torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and not torch.equal(a, x)


def test_mosaic_cells_are_the_kept_images_in_rdeds_layout():
    ipc = 2
    kept = torch.randn(4 * ipc, 3, 8, 8)
    m = cim.mosaics(kept, ipc)
    assert m.shape == (ipc, 3, 8, 8)
    small = F.interpolate(kept, size=(4, 4), mode="nearest")
    for k, (r, c) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        for i in range(ipc):
            assert torch.equal(m[i, :, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4], small[k * ipc + i])
    up = cim.cells(m, (8, 8))
    torch.testing.assert_close(up, F.interpolate(small, size=(8, 8), mode="bilinear",
                                                 align_corners=False))  # fmt: skip


def test_the_most_confident_candidates_come_first():
    net = _net(0)
    x = torch.randn(10, 3, 10, 10)
    ce = F.cross_entropy(net(x), torch.full((10,), 2), reduction="none")
    got = cim.lowest_ce(net, x, 2, 4)
    assert torch.equal(got, x[ce.argsort()[:4]])


def test_the_feature_is_the_layers_input_and_the_forward_stops_there():
    net = _net(0)
    seen = []
    net[8].register_forward_hook(lambda m, i, o: seen.append(1))  # the classifier
    f = cim.FeatureAt(net, "4")  # the second BatchNorm's input
    x = torch.randn(2, 3, 10, 10)
    torch.testing.assert_close(f(x), net[:4](x))
    assert not seen
    f.remove()
    with pytest.raises(ValueError, match="feature_layer 'nope'"):
        cim.FeatureAt(net, "nope")


def _run(chunk, monkeypatch, iterations=2):
    monkeypatch.setattr(cim, "inference_batch", lambda *a: chunk)
    net = _net(0)
    norm = Normalizer([0.5] * 3, [0.25] * 3, torch.device("cpu"))
    images = np.random.default_rng(0).integers(0, 256, (20, 10, 10, 3), dtype=np.uint8)
    method = {"candidates": 12, "iterations": iterations, "lr": 0.01, "weight_decay": 0.01}
    f = cim.FeatureAt(net, None)
    out = cim.cim_class(net, norm, images, 1, 2, method, random.Random(3), f)
    f.remove()
    return net, norm, images, method, out


def test_the_refinement_is_the_paired_feature_l1_step_written_out(monkeypatch):
    net, norm, images, method, got = _run(64, monkeypatch)
    rng = random.Random(3)  # the reference, from the same draws
    picks = rng.sample(range(20), 12)
    x = norm.to_tensor(images[sorted(picks)])
    ce = F.cross_entropy(net(x), torch.full((12,), 1), reduction="none")
    kept = x[ce.argsort()[:8]]
    base = cim.mosaics(kept, 2)
    delta = torch.zeros_like(base, requires_grad=True)
    opt = torch.optim.AdamW([delta], lr=0.01, weight_decay=0.01)
    gen = torch.Generator().manual_seed(rng.getrandbits(63))
    feat = torch.nn.Sequential(*list(net)[:8])  # the classifier's input
    for _ in range(2):
        real, fake = cim.paired_augment(kept, cim.cells(base + delta, (10, 10)), gen)
        loss = sum((feat(fake[i : i + 1]) - feat(real[i : i + 1])).abs().mean()
                   for i in range(8))  # fmt: skip
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.testing.assert_close(got, (base + delta).detach(), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(got, base)
    _, _, _, _, chunked = _run(3, monkeypatch)  # forward chunks of 3 pairs: the same step
    torch.testing.assert_close(chunked, got, rtol=1e-5, atol=1e-6)


def test_too_few_candidates_are_refused(monkeypatch):
    net = _net(0)
    norm = Normalizer([0.5] * 3, [0.25] * 3, torch.device("cpu"))
    images = np.zeros((5, 10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="5 candidate images < 4 x IPC = 8"):
        cim.cim_class(net, norm, images, 0, 2, {"candidates": 300}, random.Random(0), None)


def test_presets_and_config():
    cfg = validate_config({
        "dataset": {"name": "d", "source": "mnist-embedded"}, "teacher": {}, "student": {},
        "ipc": [1], "methods": {"m": {"kind": "cim", "preset": "cim_imagenet1k"}}})  # fmt: skip
    m = cfg["methods"]["m"]
    assert (m["candidates"], m["iterations"], m["lr"], m["weight_decay"], m["feature_layer"]) == (
        300, 200, 0.01, 0.01, "layer3")  # fmt: skip
    from ddflow.presets import RECOVER_PRESETS as P

    assert P["cim_cifar"]["feature_layer"] is None
