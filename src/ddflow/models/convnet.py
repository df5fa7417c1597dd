"""The ConvNet family: RDED/DELT's ConvNet-D3..D6 and the classic DC/DM/MTT ConvNet.

Both stack `depth` blocks of Conv2d(3x3, bias) -> norm -> ReLU -> AvgPool2d(2) and feed the whole
width x (H/2^d) x (W/2^d) map to one Linear, no global pooling. RDED/DELT use BatchNorm, so
BN-statistics recovery works (reference-algorithms.md §3.4); DC and the G-VBSM/EDC teachers
built on it use instance norm written as GroupNorm(C, C) (reference-frontier.md §1.1, §2.1).
"""

from __future__ import annotations

from torch import nn

WIDTH = 128
NORMS = {"batch": nn.BatchNorm2d, "instance": lambda c: nn.GroupNorm(c, c)}


class ConvNet(nn.Module):
    def __init__(
        self,
        depth: int,
        num_classes: int,
        in_channels: int = 3,
        image_size: tuple[int, int] = (32, 32),
        width: int = WIDTH,
        norm: str = "batch",
        first_padding: int = 1,
    ):
        super().__init__()
        layers, c = [], in_channels
        h, w = image_size
        for d in range(depth):
            pad = first_padding if d == 0 else 1
            layers += [
                nn.Conv2d(c, width, 3, padding=pad, bias=True),
                NORMS[norm](width),
                nn.ReLU(inplace=True),
                nn.AvgPool2d(2, 2),
            ]
            c, h, w = width, (h + 2 * pad - 2) // 2, (w + 2 * pad - 2) // 2
        if h < 1 or w < 1:
            raise ValueError(
                f"ConvNet-D{depth} needs images of at least {2**depth}px, got {image_size}"
            )
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * h * w, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def dc_convnet(depth, width, num_classes, in_channels, image_size) -> ConvNet:
    """DC's ConvNet pads a 1-channel first conv by 3, so 28 px MNIST maps like 32 px images."""
    return ConvNet(
        depth,
        num_classes,
        in_channels,
        image_size,
        width=width,
        norm="instance",
        first_padding=3 if in_channels == 1 else 1,
    )
