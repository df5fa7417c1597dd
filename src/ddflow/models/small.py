"""The CRD model zoo's small networks, which G-VBSM and EDC train as CIFAR/Tiny teachers.

Layer shapes, strides and initialisations follow HobbitLong/RepDistiller `models/` as the two
methods ship it (`Branch_*/recover/models/`, reference-frontier.md §1.1, §2.1). Class and module
names are the authors', so their squeeze checkpoints load by name and their shipped
`<Class>=<module>` convolution statistics find the same layers. Each net ends in a global average
pool and one Linear, as the authors' Tiny-ImageNet branch needs, so 32 and 64 px inputs both fit;
only the stem's input channels are generalised (the authors hard-code 3).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F


def _he_fan_out(model: nn.Module) -> None:
    """CRD's ResNet, MobileNetV2 and WRN draw every conv from N(0, 2 / (k*k*out_channels))."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        shortcut = stride != 1 or cin != cout
        self.shortcut = (
            nn.Sequential(*_conv_bn(cin, cout, 1, stride)) if shortcut else nn.Identity()
        )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet-18 for small images (kuangliu/CRD `ResNet18`): 3x3 stride-1 stem, no max-pool."""

    def __init__(self, num_classes: int, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for i, cout in enumerate((64, 128, 256, 512)):
            first = ResBlock(cin, cout, 1 if i == 0 else 2)
            setattr(self, f"layer{i + 1}", nn.Sequential(first, ResBlock(cout, cout, 1)))
            cin = cout
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(512, num_classes)
        _he_fan_out(self)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(self.avgpool(out).flatten(1))


class InvertedResidual(nn.Module):
    """CRD keeps the 1x1 expansion even at expand ratio 1 (torchvision's MobileNetV2 drops it)."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.use_res_connect = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            *_conv_bn(cin, hidden, 1),
            nn.ReLU(inplace=True),
            *_conv_bn(hidden, hidden, 3, stride, groups=hidden),
            nn.ReLU(inplace=True),
            *_conv_bn(hidden, cout, 1),
        )

    def forward(self, x):
        out = self.conv(x)
        return x + out if self.use_res_connect else out


# (expand ratio, channels at width 1, blocks, first stride), halved below: CRD's `mobile_half`.
MOBILENETV2 = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
               (6, 160, 3, 2), (6, 320, 1, 1))  # fmt: skip


class MobileNetV2(nn.Module):
    """CRD's MobileNetV2 at width 0.5: stride-2 stem, the final 1x1 conv keeps 1280 channels."""

    def __init__(self, num_classes: int, in_channels: int = 3):
        super().__init__()
        cin = 16
        self.conv1 = nn.Sequential(*_conv_bn(in_channels, cin, 3, 2), nn.ReLU(inplace=True))
        self.blocks = nn.ModuleList()
        for expand, channels, n, stride in MOBILENETV2:
            cout = channels // 2
            units = []
            for i in range(n):
                units.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expand))
                cin = cout
            self.blocks.append(nn.Sequential(*units))
        self.conv2 = nn.Sequential(*_conv_bn(cin, 1280, 1), nn.ReLU(inplace=True))
        self.classifier = nn.Sequential(nn.Linear(1280, num_classes))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        _he_fan_out(self)
        nn.init.normal_(self.classifier[0].weight, 0, 0.01)
        nn.init.zeros_(self.classifier[0].bias)

    def forward(self, x):
        out = self.conv1(x)
        for block in self.blocks:
            out = block(out)
        return self.classifier(self.avgpool(self.conv2(out)).flatten(1))


def _channel_shuffle(x: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleUnit(nn.Module):
    """Stride-1 unit: the first half of the channels passes through, the second is convolved."""

    def __init__(self, channels: int):
        super().__init__()
        c = channels // 2
        self.conv1 = nn.Conv2d(c, c, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.conv3 = nn.Conv2d(c, c, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c)

    def forward(self, x):
        keep, x2 = x.chunk(2, dim=1)
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x2)))))
        out = F.relu(self.bn3(self.conv3(out)))
        return _channel_shuffle(torch.cat([keep, out], 1))


class ShuffleDownUnit(nn.Module):
    """Stride-2 unit: two branches over the whole input, each giving half the output channels."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        mid = cout // 2
        self.conv1 = nn.Conv2d(cin, cin, 3, 2, 1, groups=cin, bias=False)
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv2 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv4 = nn.Conv2d(mid, mid, 3, 2, 1, groups=mid, bias=False)
        self.bn4 = nn.BatchNorm2d(mid)
        self.conv5 = nn.Conv2d(mid, mid, 1, bias=False)
        self.bn5 = nn.BatchNorm2d(mid)

    def forward(self, x):
        left = F.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        right = self.bn4(self.conv4(F.relu(self.bn3(self.conv3(x)))))
        right = F.relu(self.bn5(self.conv5(right)))
        return _channel_shuffle(torch.cat([left, right], 1))


class ShuffleNetV2(nn.Module):
    """CRD's ShuffleNetV2 0.5x: a 1x1 stride-1 stem and no max-pool, stages of 48/96/192."""

    def __init__(self, num_classes: int, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 24, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        cin = 24
        for i, (cout, n) in enumerate(((48, 3), (96, 7), (192, 3))):
            units = [ShuffleDownUnit(cin, cout), *(ShuffleUnit(cout) for _ in range(n))]
            setattr(self, f"layer{i + 1}", nn.Sequential(*units))
            cin = cout
        self.conv2 = nn.Conv2d(cin, 1024, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(1024)
        self.linear = nn.Linear(1024, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.relu(self.bn2(self.conv2(out)))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


class WideBlock(nn.Module):
    """Pre-activation block; a 1x1 shortcut, where widths differ, reads the activated input."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.convShortcut = None if cin == cout else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        pre = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(pre))))
        return out + (x if self.convShortcut is None else self.convShortcut(pre))


class WideResNet(nn.Module):
    """WRN-16-2: two blocks per stage at widths 32/64/128, no dropout."""

    def __init__(self, num_classes: int, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        cin = 16
        for i, cout in enumerate((32, 64, 128)):
            blocks = nn.Sequential(
                WideBlock(cin, cout, 1 if i == 0 else 2), WideBlock(cout, cout, 1)
            )
            # The extra `.layer` level keeps the authors' keys (block1.layer.0.conv1).
            setattr(self, f"block{i + 1}", nn.Sequential(OrderedDict(layer=blocks)))
            cin = cout
        self.bn1 = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, num_classes)
        _he_fan_out(self)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x):
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = F.relu(self.bn1(out))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))
