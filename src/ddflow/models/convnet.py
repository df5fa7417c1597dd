"""ConvNet-D3..D6 exactly as RDED/DELT define them (reference-algorithms.md §3.4).

Unlike the classic DC/DM ConvNet these use BatchNorm (so BN-statistics recovery works) and no
global pooling: the classifier sees the whole 128 x (H/2^d) x (W/2^d) map.
"""

from __future__ import annotations

from torch import nn

WIDTH = 128


class ConvNet(nn.Module):
    def __init__(
        self,
        depth: int,
        num_classes: int,
        in_channels: int = 3,
        image_size: tuple[int, int] = (32, 32),
    ):
        super().__init__()
        layers, c = [], in_channels
        h, w = image_size
        for _ in range(depth):
            layers += [
                nn.Conv2d(c, WIDTH, 3, padding=1, bias=True),
                nn.BatchNorm2d(WIDTH),
                nn.ReLU(inplace=True),
                nn.AvgPool2d(2, 2),
            ]
            c, h, w = WIDTH, h // 2, w // 2
        if h < 1 or w < 1:
            raise ValueError(
                f"ConvNet-D{depth} needs images of at least {2**depth}px, got {image_size}"
            )
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(WIDTH * h * w, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))
