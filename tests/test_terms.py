"""The recovery loss registry and the teacher-statistics pass against independent references:
each term's value and input gradient against a plain re-statement of the authors' hooks
(torch.var_mean inside forward hooks, cells cut with F.unfold), the EMA and drop quirks step by
step, packed chunks against separate batches, the eigen-spectrum term against torch's general
eigensolver, and the statistics pass against a direct computation."""

import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ddflow.data.pixels import Normalizer
from ddflow.recover.bn_loss import BNStatLoss
from ddflow.recover.stats import finish, merge, teacher_statistics
from ddflow.recover.terms import StatMatch, dd_spectrum


def _net(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 5, 3, padding=1, stride=2), nn.BatchNorm2d(5), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 3),
    )  # fmt: skip
    net.train()
    with torch.no_grad():
        net(torch.randn(16, 3, 10, 10))  # running statistics that are not the defaults
    return net.eval().requires_grad_(False)


def _ref_patch(x, patch):
    """Cells cut with F.unfold (another path than the library's reshape)."""
    h, w = (math.ceil(s / patch) * patch for s in x.shape[2:])
    if (h, w) != tuple(x.shape[2:]):
        x = F.interpolate(x, size=(h, w), mode="bilinear")
    cols = F.unfold(x, patch, stride=patch)  # (N, C * p * p, cells)
    n, _, cells = cols.shape
    per = cols.view(n, x.shape[1], patch * patch, cells).permute(3, 0, 1, 2).reshape(cells, -1)
    var, mean = torch.var_mean(per, 1, correction=0)
    return mean, var


class _RefHooks:
    """The authors' BNFeatureHook / ConvFeatureHook, restated plainly (one chunk)."""

    def __init__(self, net, targets, conv, alpha=None, drop=0.0, rng=None, patch=4, first=10.0,
                 class_targets=None, labels=None, class_weight=0.0):  # fmt: skip
        self.r, self.ema, self.alpha, self.drop, self.rng = [], {}, alpha, drop, rng
        self.targets, self.patch, self.first = targets, patch, first
        self.class_targets, self.labels, self.cw = class_targets, labels, class_weight
        self.handles = []
        for name, m in net.named_modules():
            if isinstance(m, nn.BatchNorm2d) or (conv and isinstance(m, nn.Conv2d)):
                self.handles.append(m.register_forward_hook(self._hook(name, m)))

    def _est(self, key, cur):
        if self.alpha is None:
            return cur
        if key not in self.ema:
            self.ema[key] = cur  # with its graph: slope 2 below, as released
        else:
            self.ema[key] = (self.alpha * self.ema[key] + (1 - self.alpha) * cur).detach()
        return self.ema[key] + cur - cur.detach()

    def _hook(self, name, m):
        def fn(mod, inputs, out):
            x = inputs[0]
            if isinstance(m, nn.Conv2d) and self.drop and self.rng.random() > 1 - self.drop:
                self.r.append(torch.zeros(()))
                return
            var, mean = torch.var_mean(x, (0, 2, 3), correction=0)
            stats = {"mean": mean, "var": var}
            if isinstance(m, nn.Conv2d):
                stats["patch_mean"], stats["patch_var"] = _ref_patch(x, self.patch)
            g = c = 0
            for k, v in stats.items():
                est = self._est((name, k), v)
                t = getattr(m, f"running_{k}") if isinstance(m, nn.BatchNorm2d) else \
                    self.targets[f"{name}|{k}"]  # fmt: skip
                g = g + torch.norm(torch.as_tensor(t) - est, 2)
                if self.cw:
                    ct = torch.as_tensor(self.class_targets[f"{name}|{k}"])[self.labels].mean(0)
                    c = c + torch.norm(ct - est, 2)
            self.r.append((1 - self.cw) * g + self.cw * c)

        return fn

    def value(self):
        v = self.first * self.r[0] + sum(self.r[1:])
        self.r = []
        return v

    def remove(self):
        for h in self.handles:
            h.remove()


def _targets(net, patch=4, seed=1):
    """Made-up teacher statistics of the right shapes for every conv input."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    cells = math.ceil(10 / patch) ** 2  # both convolutions see 10 x 10 inputs
    for name, m in net.named_modules():
        if isinstance(m, nn.Conv2d):
            c = m.in_channels
            out[f"{name}|mean"] = torch.randn(c, generator=g).numpy()
            out[f"{name}|var"] = torch.rand(c, generator=g).numpy() + 0.5
            out[f"{name}|patch_mean"] = torch.randn(cells, generator=g).numpy()
            out[f"{name}|patch_var"] = torch.rand(cells, generator=g).numpy() + 0.5
    return out


def _value_and_grad(loss_fn, x):
    x = x.clone().requires_grad_(True)
    v = loss_fn(x)
    (g,) = torch.autograd.grad(v, x)
    return v.detach(), g


def test_the_bn_term_alone_is_sre2ls():
    net, x = _net(), torch.randn(6, 3, 10, 10)
    ours = StatMatch(net, bn=True, conv=False)
    v1, g1 = _value_and_grad(lambda t: (net(t), ours.value())[1], x)
    ours.remove()
    ref = BNStatLoss(net, 10.0)
    v2, g2 = _value_and_grad(lambda t: (net(t), ref.value())[1], x)
    ref.remove()
    torch.testing.assert_close(v1, v2.float(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-7)


def test_conv_channel_and_patch_terms_against_the_authors_hooks():
    """The first conv's input (the image) is the first site: x10 lands on it, not on bn1. The
    second conv sees 10 px (cells padded to 12 by the bilinear resize)."""
    net, x = _net(), torch.randn(6, 3, 10, 10)
    targets = _targets(net)
    ours = StatMatch(net, bn=True, conv=True, targets=targets, patch=4)
    assert ours.sites[0][0] == "0" and ours.weights[0] == 10.0
    v1, g1 = _value_and_grad(lambda t: (net(t), ours.value())[1], x)
    ours.remove()
    ref = _RefHooks(net, targets, conv=True)
    v2, g2 = _value_and_grad(lambda t: (net(t), ref.value())[1], x)
    ref.remove()
    torch.testing.assert_close(v1, v2, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("drop", [0.0, 0.4])
def test_the_ema_form_and_drops_over_steps_against_the_authors_hooks(drop):
    """Alpha 0.4 over three steps of changing images: the first step's value is the batch
    statistic with slope 2 (released), later ones the EMA with slope 1; dropped conv terms
    contribute 0 and leave their EMA where it was."""
    net, twin = _net(), _net()  # the same weights, hooked by one implementation each
    targets = _targets(net)
    ours = StatMatch(net, conv=True, targets=targets, patch=4, ema_alpha=0.4, drop_rate=drop,
                     rng=random.Random(7))  # fmt: skip
    ref = _RefHooks(twin, targets, conv=True, alpha=0.4, drop=drop, rng=random.Random(7))
    for step in range(3):
        x = torch.randn(6, 3, 10, 10, generator=torch.Generator().manual_seed(step))
        v1, g1 = _value_and_grad(lambda t: (net(t), ours.value())[1], x)
        v2, g2 = _value_and_grad(lambda t: (twin(t), ref.value())[1], x)
        torch.testing.assert_close(v1, v2, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6)


def test_class_targets_take_edcs_half_weight_and_swapped_patch_keys():
    net, x = _net(), torch.randn(6, 3, 10, 10)
    targets = _targets(net)
    g = torch.Generator().manual_seed(3)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    classes = {}
    for name, m in net.named_modules():
        if isinstance(m, nn.BatchNorm2d | nn.Conv2d):
            c = m.num_features if isinstance(m, nn.BatchNorm2d) else m.in_channels
            classes[f"{name}|class_mean"] = torch.randn(3, c, generator=g).numpy()
            classes[f"{name}|class_var"] = torch.rand(3, c, generator=g).numpy() + 0.5
            if isinstance(m, nn.Conv2d):
                for k in ("patch_mean", "patch_var"):
                    classes[f"{name}|class_{k}"] = torch.rand(3, 9, generator=g).numpy()
    ours = StatMatch(net, conv=True, targets={**targets, **classes}, patch=4, class_weight=0.5)
    ours.set_labels(labels)
    v1, g1 = _value_and_grad(lambda t: (net(t), ours.value())[1], x)
    ours.remove()
    # the reference reads each class statistic under the other patch key, as the released files
    swapped = {k.replace("|class_", "|"): v for k, v in classes.items()}
    swapped = {**swapped, **{k.replace("patch_mean", "X").replace("patch_var", "patch_mean")
                             .replace("X", "patch_var"): v for k, v in swapped.items()
                             if "patch" in k}}  # fmt: skip
    ref = _RefHooks(net, targets, conv=True, class_targets=swapped, labels=labels,
                    class_weight=0.5)  # fmt: skip
    v2, g2 = _value_and_grad(lambda t: (net(t), ref.value())[1], x)
    ref.remove()
    torch.testing.assert_close(v1, v2, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6)


def test_two_chunks_are_two_devices_batches():
    """stat_group: one forward of 2 x 4 images with chunks=2 gives each half exactly the loss
    and gradient it gets alone (the authors' two GPUs, no SyncBN)."""
    net, x = _net(), torch.randn(8, 3, 10, 10)
    targets = _targets(net)
    both = StatMatch(net, conv=True, targets=targets, patch=4, ema_alpha=0.4, chunks=2)
    v, g = _value_and_grad(lambda t: (net(t), both.value())[1], x)
    both.remove()
    parts = []
    for half in x.chunk(2):
        one = StatMatch(net, conv=True, targets=targets, patch=4, ema_alpha=0.4)
        parts.append(_value_and_grad(lambda t, one=one: (net(t), one.value())[1], half))
        one.remove()
    torch.testing.assert_close(v, parts[0][0] + parts[1][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g, torch.cat([parts[0][1], parts[1][1]]), rtol=1e-4, atol=1e-6)


def test_unequal_chunks_are_separate_batches_too():
    """A tail batch split as the authors' GPUs split it: 4 and 2 images."""
    net, x = _net(), torch.randn(6, 3, 10, 10)
    targets = _targets(net)
    both = StatMatch(net, conv=True, targets=targets, patch=4, chunks=(4, 2))
    v, g = _value_and_grad(lambda t: (net(t), both.value())[1], x)
    both.remove()
    parts = []
    for part in x.split([4, 2]):
        one = StatMatch(net, conv=True, targets=targets, patch=4)
        parts.append(_value_and_grad(lambda t, one=one: (net(t), one.value())[1], part))
        one.remove()
    torch.testing.assert_close(v, parts[0][0] + parts[1][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g, torch.cat([parts[0][1], parts[1][1]]), rtol=1e-4, atol=1e-6)


def test_the_spectrum_term_against_the_general_eigensolver():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 3, 40, 40, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2])

    def reference(t):
        flat = F.adaptive_avg_pool2d(t, (32, 32)).flatten(1)
        total = 0
        for c in labels.unique():
            sub = flat[labels == c]
            lam = torch.linalg.eigvals(sub @ sub.T).real
            total = total + F.kl_div(lam.log_softmax(0), (lam / 4).softmax(0).detach(),
                                     reduction="sum")  # fmt: skip
        return total

    v1, g1 = _value_and_grad(lambda t: dd_spectrum(t.double(), labels), x)
    v2, g2 = _value_and_grad(reference, x)
    torch.testing.assert_close(v1.double(), v2, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(g1, g2, rtol=1e-3, atol=1e-7)
    one = torch.randn(1, 3, 40, 40)
    assert dd_spectrum(one, torch.tensor([5])).item() == 0.0  # IPC 1: nothing to spread


def test_the_statistics_pass_against_a_direct_computation():
    """No augmentation: the targets are the batch-size-weighted average of each batch's moments,
    per-class targets the average of each image's; two shards of batches sum to one pass."""
    net = _net()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 10, 10, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2] * 3 + [0])
    norm = Normalizer([0.5] * 3, [0.25] * 3)
    spec = {"batch_size": 4, "patch": 4, "seed": 5, "hflip": False, "per_class": True}
    got = finish(teacher_statistics(net, images, labels, norm, spec, 3))
    parts = [teacher_statistics(net, images, labels, norm, spec, 3, range(0, 1)),
             teacher_statistics(net, images, labels, norm, spec, 3, range(1, 3))]  # fmt: skip
    for k, v in finish(merge(parts)).items():
        np.testing.assert_allclose(v, got[k], rtol=1e-10)
    # direct: the same shuffled batches, moments by hand
    order = torch.randperm(10, generator=torch.Generator().manual_seed(5)).numpy()
    x_all = norm.to_tensor(images)
    conv2_in = {}
    with torch.no_grad():
        h = net[3].register_forward_pre_hook(lambda m, i: conv2_in.setdefault("x", []).append(i[0]))
        for s in range(0, 10, 4):
            net(x_all[order[s : s + 4]])
        h.remove()
    want_mean = sum(t.mean((0, 2, 3)) * len(t) / 10 for t in conv2_in["x"])
    want_pvar = sum(_ref_patch(t, 4)[1] * len(t) / 10 for t in conv2_in["x"])
    np.testing.assert_allclose(got["3|mean"], want_mean.numpy(), rtol=1e-5)
    np.testing.assert_allclose(got["3|patch_var"], want_pvar.numpy(), rtol=1e-5)
    # per class: each image's channel variance over (H, W), averaged within the class
    xs = torch.cat(conv2_in["x"])
    ys = torch.as_tensor(labels[order])
    per_image = xs.var((2, 3), unbiased=False)
    for c in range(3):
        np.testing.assert_allclose(got["3|class_var"][c], per_image[ys == c].mean(0).numpy(),
                                   rtol=1e-5)  # fmt: skip
    assert "4|class_mean" in got and "4|mean" not in got  # BN: class targets only
