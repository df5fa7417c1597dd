"""G-VBSM's and EDC's CIFAR/Tiny teachers (models/small.py and the DC ConvNet in convnet.py).

Expected sizes are counted by hand below from the authors' layer lists, and agree with the counts
of the authors' own classes at 100 classes and 32 px (instantiated from G_VBSM_Dataset_Condensation
@1ed80b0 Branch_CIFAR_100/recover/models/{resnetv2,mobilenetv2,ShuffleNetv2,wrn}.py, and
recover/networks.py ConvNet as recover/baseline.py get_network builds ConvNetW128/D1/D2/W32;
EDC @80116a7 ships the same files): quoted in AUTHORS.
"""

import pytest
import torch
from torch import nn

from ddflow.models.registry import build_model, check_model_name, final_linear, list_models

NAMES = ["crd_resnet18", "crd_mobilenetv2_half", "crd_shufflenetv2_half", "crd_wrn_16_2",
         "convnet_w128_in", "convnet_d1_in", "convnet_d2_in", "convnet_w32_in"]  # fmt: skip
AUTHORS = {
    "crd_resnet18": 11_220_132,
    "crd_mobilenetv2_half": 812_836,
    "crd_shufflenetv2_half": 443_716,
    "crd_wrn_16_2": 703_284,
    "convnet_w128_in": 504_420,
    "convnet_d1_in": 3_280_740,
    "convnet_d2_in": 970_980,
    "convnet_w32_in": 70_884,
}
CLASSIFIER = {"crd_resnet18": "linear", "crd_mobilenetv2_half": "classifier.0",
              "crd_shufflenetv2_half": "linear", "crd_wrn_16_2": "fc"}  # fmt: skip


def conv(cin, cout, k, groups=1, bias=False):
    return cin // groups * cout * k * k + (cout if bias else 0)


def bn(c):
    return 2 * c


def linear(i, o):
    return i * o + o


def resnet18(nc):
    total, cin = conv(3, 64, 3) + bn(64), 64
    for stage, cout in enumerate((64, 128, 256, 512)):
        for b in range(2):
            total += conv(cin, cout, 3) + bn(cout) + conv(cout, cout, 3) + bn(cout)
            if b == 0 and stage > 0:  # stride 2 and a width change: 1x1 conv + BN shortcut
                total += conv(cin, cout, 1) + bn(cout)
            cin = cout
    return total + linear(512, nc)


def mobilenetv2_half(nc):
    total, cin = conv(3, 16, 3) + bn(16), 16
    for t, c, n in ((1, 8, 1), (6, 12, 2), (6, 16, 3), (6, 32, 4), (6, 48, 3), (6, 80, 3),
                    (6, 160, 1)):  # fmt: skip
        for _ in range(n):
            h = cin * t  # 1x1 expand, 3x3 depthwise, 1x1 project, each with BN
            total += conv(cin, h, 1) + bn(h) + conv(h, h, 3, groups=h) + bn(h)
            total += conv(h, c, 1) + bn(c)
            cin = c
    return total + conv(160, 1280, 1) + bn(1280) + linear(1280, nc)


def shufflenetv2_half(nc):
    total, cin = conv(3, 24, 1) + bn(24), 24
    for cout, n in ((48, 3), (96, 7), (192, 3)):
        m = cout // 2  # down unit: dw3x3+1x1 on the left, 1x1+dw3x3+1x1 on the right
        total += conv(cin, cin, 3, groups=cin) + bn(cin) + conv(cin, m, 1) + bn(m)
        total += conv(cin, m, 1) + bn(m) + conv(m, m, 3, groups=m) + bn(m) + conv(m, m, 1) + bn(m)
        total += n * (2 * (conv(m, m, 1) + bn(m)) + conv(m, m, 3, groups=m) + bn(m))
        cin = cout
    return total + conv(192, 1024, 1) + bn(1024) + linear(1024, nc)


def wrn_16_2(nc):
    total, cin = conv(3, 16, 3), 16
    for cout in (32, 64, 128):
        for b in range(2):
            total += bn(cin) + conv(cin, cout, 3) + bn(cout) + conv(cout, cout, 3)
            total += conv(cin, cout, 1) if b == 0 else 0
            cin = cout
    return total + bn(128) + linear(128, nc)


def dc_convnet(depth, width, nc, size=32):
    total, cin = 0, 3
    for _ in range(depth):  # conv with bias, GroupNorm(C, C) affine
        total += conv(cin, width, 3, bias=True) + 2 * width
        cin, size = width, size // 2
    return total + linear(width * size * size, nc)


BY_HAND = {
    "crd_resnet18": resnet18,
    "crd_mobilenetv2_half": mobilenetv2_half,
    "crd_shufflenetv2_half": shufflenetv2_half,
    "crd_wrn_16_2": wrn_16_2,
    "convnet_w128_in": lambda nc, size=32: dc_convnet(3, 128, nc, size),
    "convnet_d1_in": lambda nc, size=32: dc_convnet(1, 128, nc, size),
    "convnet_d2_in": lambda nc, size=32: dc_convnet(2, 128, nc, size),
    "convnet_w32_in": lambda nc, size=32: dc_convnet(3, 32, nc, size),
}


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_is_the_authors(name):
    assert BY_HAND[name](100) == AUTHORS[name]
    assert n_params(build_model(name, 100, 3, (32, 32))) == AUTHORS[name]


@pytest.mark.parametrize("name", NAMES)
def test_tiny_imagenet_size_and_classes(name):
    """The CRD nets pool globally, so only the DC ConvNet's classifier grows with 64 px."""
    kwargs = {"size": 64} if name.startswith("convnet") else {}
    assert n_params(build_model(name, 200, 3, (64, 64))) == BY_HAND[name](200, **kwargs)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size,classes", [(32, 100), (64, 200), (32, 10)])
def test_forward_shape(name, size, classes):
    torch.manual_seed(0)
    model = build_model(name, classes, 3, (size, size))
    assert model(torch.randn(2, 3, size, size)).shape == (2, classes)


@pytest.mark.parametrize("name", NAMES)
def test_one_channel_images(name):
    """DC's ConvNet pads a grey first conv by 3: 28 px maps as 32 px (4x4x128 at depth 3)."""
    model = build_model(name, 10, 1, (28, 28))
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    if name == "convnet_w128_in":
        assert model.classifier.in_features == 128 * 4 * 4


@pytest.mark.parametrize("name", NAMES)
def test_final_linear_is_the_classifier(name):
    model = build_model(name, 100, 3, (32, 32))
    found = final_linear(model)
    assert found == CLASSIFIER.get(name, "classifier")
    layer = model.get_submodule(found)
    assert isinstance(layer, nn.Linear) and layer.out_features == 100


@pytest.mark.parametrize("name", NAMES)
def test_names_are_registered(name):
    assert name in list_models()
    check_model_name(name)


def test_convnet_w128_normalises_each_image_alone():
    """Instance norm: an image's output is independent of the rest of the batch, in training
    mode too, and there are no BatchNorm layers or running statistics."""
    torch.manual_seed(0)
    model = build_model("convnet_w128_in", 100, 3, (32, 32)).train()
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    norms = [m for m in model.modules() if isinstance(m, nn.GroupNorm)]
    assert len(norms) == 3 and all(m.num_groups == m.num_channels == 128 for m in norms)
    x = torch.randn(4, 3, 32, 32)
    y = x.clone()
    y[1:] = 5 * torch.randn(3, 3, 32, 32) + 2
    with torch.no_grad():
        a, b, alone = model(x), model(y), model(x[:1])
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[0], alone[0])
    assert not torch.allclose(a[1], b[1])


def test_convnet_batchnorm_default_is_unchanged():
    """The RDED ConvNet stays a BatchNorm net: there an image's output depends on its batch."""
    torch.manual_seed(0)
    model = build_model("convnet_d3", 100, 3, (32, 32)).train()
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 3
    x = torch.randn(4, 3, 32, 32)
    y = x.clone()
    y[1:] = 5 * torch.randn(3, 3, 32, 32) + 2
    with torch.no_grad():
        assert not torch.allclose(model(x)[0], model(y)[0])
