"""VGG-11 with BatchNorm for small images: network slimming's CIFAR VGG (Liu et al. 2017).

Convolutions without bias, BN and ReLU, max-pooling between stages; no pooling after the last
stage, a global average pool and one Linear classifier. `features` and `classifier` are named as
in torchvision's VGG, so one slimming routine (applications/pruning.py) serves both.
"""

from __future__ import annotations

from torch import nn

VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512)


class VGG(nn.Module):
    def __init__(self, num_classes: int, in_channels: int = 3, cfg=VGG11):
        super().__init__()
        layers, c = [], in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1, bias=False), nn.BatchNorm2d(v),
                           nn.ReLU(inplace=True)]  # fmt: skip
                c = v
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 0.5)  # network slimming's BN init
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))
