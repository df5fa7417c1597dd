"""Data-free network slimming: the global threshold, surgery, and the config around it."""

import pytest
import torch
from torch import nn

from ddflow.applications.pruning import channel_masks, masked, slim
from ddflow.config import ConfigError, StageIds, application_methods, validate_config
from ddflow.models import build_model


def _trained_like(model, seed=0):
    """Random BN scales, shifts and statistics, as a trained network has."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = torch.rand(m.weight.shape, generator=g)
            m.bias.data = 0.1 * torch.randn(m.bias.shape, generator=g)
            m.running_mean.data = 0.1 * torch.randn(m.running_mean.shape, generator=g)
            m.running_var.data = 0.5 + torch.rand(m.running_var.shape, generator=g)
    return model.eval()


def test_one_global_threshold_keeps_the_channels_strictly_above_it():
    model = _trained_like(build_model("vgg11_bn_lowres", 10, 3, (32, 32)))
    gammas = torch.cat([m.weight.abs() for m in model.modules() if isinstance(m, nn.BatchNorm2d)])
    threshold = gammas.sort().values[int(len(gammas) * 0.5)]  # network slimming's index
    pruned, info = slim(model, 0.5)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert info["channels"] == [int((bn.weight.abs() > threshold).sum()) for bn in bns]
    assert info["channels_before"] == [64, 128, 256, 256, 512, 512, 512, 512]
    assert sum(info["channels"]) == 2752 - (int(2752 * 0.5) + 1)  # distinct gammas
    convs = [m for m in pruned.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == info["channels"]
    assert [c.in_channels for c in convs[1:]] == info["channels"][:-1]
    assert pruned.classifier.in_features == info["channels"][-1]
    assert (
        info["params_after"] == sum(p.numel() for p in pruned.parameters()) < info["params_before"]
    )


@pytest.mark.parametrize(
    "arch,size", [("vgg11_bn_lowres", 32), ("torchvision:vgg11_bn", 32), ("convnet_d3", 32)]
)
def test_the_pruned_network_computes_what_the_masked_one_does(arch, size):
    model = _trained_like(build_model(arch, 10, 3, (size, size)))
    x = torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(1))
    pruned, info = slim(model, 0.5)
    with torch.no_grad():
        assert torch.allclose(pruned.eval()(x), masked(model, 0.5)(x), atol=1e-5)
        assert not torch.allclose(model(x), masked(model, 0.5)(x), atol=1e-3)  # it removed a lot
    # a flattened map has a block of classifier columns a channel: 7 x 7 (VGG), 4 x 4 (ConvNet)
    per = {"vgg11_bn_lowres": 1, "torchvision:vgg11_bn": 49, "convnet_d3": 16}[arch]
    linear = [m for m in pruned.modules() if isinstance(m, nn.Linear)][0]
    assert linear.in_features == per * info["channels"][-1]


def test_a_layer_entirely_below_the_threshold_keeps_its_largest_channel():
    model = _trained_like(build_model("vgg11_bn_lowres", 10, 3, (32, 32)))
    first = model.features[1]
    first.weight.data = torch.linspace(1e-4, 2e-4, 64)
    masks = channel_masks(model, 0.5)
    assert masks[0].sum() == 1 and masks[0][63]
    pruned, _ = slim(model, 0.5)
    assert pruned.features[0].out_channels == 1


def test_networks_without_vgg_features_are_refused():
    with pytest.raises(ValueError, match="slimming supports plain conv-BN stacks"):
        slim(build_model("resnet18_lowres", 10, 3, (32, 32)), 0.5)


def _cfg(**extra):
    return {"dataset": {"name": "m", "source": "mnist-embedded"}, "ipc": [2], "student": {},
            "teacher": {"arch": "vgg11_bn_lowres"}, "methods": {"s": {"kind": "sre2l"}},
            **extra}  # fmt: skip


def test_pruning_config_checks_and_its_own_id():
    cfg = validate_config(_cfg(pruning={}))
    assert cfg["pruning"] == {"ratio": 0.5, "scope": "global", "network": None}
    assert application_methods(cfg, "pruning") == [
        "s",
        "random",
    ]
    a, b = StageIds(cfg), StageIds(validate_config(_cfg(pruning={"ratio": 0.3})))
    assert (
        a.application("pruning", "online") != b.application("pruning", "online")
        and a.students == b.students
    )
    with pytest.raises(ConfigError, match="'teacher.arch'.* it is 'resnet18_lowres'"):
        validate_config({**_cfg(pruning={}), "teacher": {"arch": "resnet18_lowres"}})
    # a network of its own (DELT: VGG11-BN slimmed, sets from ResNet-18) gets its own id
    vgg = {"arch": "torchvision:vgg11_bn", "pretrained": "IMAGENET1K_V1"}
    r18 = {"teacher": {"arch": "resnet18_lowres"}}
    c = StageIds(validate_config({**_cfg(pruning={"network": vgg}), **r18}))
    assert c.application("pruning", "online") != a.application("pruning", "online")
    with pytest.raises(ConfigError, match="'pruning.network.arch'.* it is 'resnet18'"):
        validate_config({**_cfg(pruning={"network": {**vgg, "arch": "resnet18"}}), **r18})
    with pytest.raises(ConfigError, match="pruning.network': set one of"):
        validate_config({**_cfg(pruning={"network": {"arch": "vgg11_bn_lowres"}}), **r18})
    validate_config({**_cfg(pruning={}), "teacher": {"arch": "torchvision:vgg16_bn"}})
    with pytest.raises(ConfigError, match=r"pruning.methods': \['x'\]"):
        validate_config(_cfg(pruning={"methods": ["x"]}))


def test_a_per_layer_threshold_removes_the_ratio_in_every_layer():
    model = _trained_like(build_model("convnet_d3", 10, 3, (32, 32)))
    model.features[1].weight.data *= 10  # a layer of large scales: a global threshold spares it
    _, glob = slim(model, 0.5)
    pruned, per = slim(model, 0.5, "layer")
    assert glob["channels"][0] > 110 and glob["channels"][1] < 64
    assert per["channels"] == [63, 63, 63] and per["scope"] == "layer"  # 128 - (64 + 1) each
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(pruned.eval()(x), masked(model, 0.5, "layer")(x), atol=1e-5)
