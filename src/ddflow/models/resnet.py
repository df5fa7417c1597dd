"""ResNet-18 with the low-resolution stem used for CIFAR/Tiny teachers ("resnet18_modified").

torchvision's ResNet-18 with conv1 = 3x3/stride 1/pad 1 (no bias) and no max-pool, so 32 px
inputs keep enough spatial size (reference-algorithms.md §1.1, §3.4).
"""

from __future__ import annotations

from torch import nn
from torchvision.models import resnet18


def resnet18_lowres(num_classes: int, in_channels: int = 3) -> nn.Module:
    model = resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model
