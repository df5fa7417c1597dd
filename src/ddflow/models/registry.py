"""Models by name: ddflow's own, plus `torchvision:<name>` and `timm:<name>` from scratch."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


def _convnet(depth: int):
    def build(nc, c, size):
        from ddflow.models.convnet import ConvNet

        return ConvNet(depth, nc, c, size)

    return build


def _dc_convnet(depth: int, width: int):
    def build(nc, c, size):
        from ddflow.models.convnet import dc_convnet

        return dc_convnet(depth, width, nc, c, size)

    return build


def _small(cls: str):
    def build(nc, c, size):
        from ddflow.models import small

        return getattr(small, cls)(nc, c)

    return build


def _resnet18_lowres(nc, c, size):
    from ddflow.models.resnet import resnet18_lowres

    return resnet18_lowres(nc, c)


def _vgg11_bn_lowres(nc, c, size):
    from ddflow.models.vgg import VGG

    return VGG(nc, c)


# Imports stay inside the builders: config validation looks names up without loading torch.
_OWN = {
    **{f"convnet_d{d}": _convnet(d) for d in (3, 4, 5, 6)},
    "resnet18_lowres": _resnet18_lowres,
    "vgg11_bn_lowres": _vgg11_bn_lowres,
    # G-VBSM's and EDC's CIFAR/Tiny teachers (reference-frontier.md §1.1, §2.1).
    "crd_resnet18": _small("ResNet"),
    "crd_mobilenetv2_half": _small("MobileNetV2"),
    "crd_shufflenetv2_half": _small("ShuffleNetV2"),
    "crd_wrn_16_2": _small("WideResNet"),
    "convnet_w128_in": _dc_convnet(3, 128),
    "convnet_d1_in": _dc_convnet(1, 128),
    "convnet_d2_in": _dc_convnet(2, 128),
    "convnet_w32_in": _dc_convnet(3, 32),
}
_ALIASES = {
    "conv3": "convnet_d3",
    "conv4": "convnet_d4",
    "conv5": "convnet_d5",
    "conv6": "convnet_d6",
    "resnet18_modified": "resnet18_lowres",
}


def list_models() -> list[str]:
    return sorted(_OWN) + ["torchvision:<name>", "timm:<name>"]


def check_model_name(name: str, resolve_libraries: bool = False) -> None:
    """Raise ValueError for a name no builder knows. ddflow's own names and the prefix form are
    checked without torch; `resolve_libraries` also looks torchvision:/timm: names up (slower)."""
    name = _ALIASES.get(name, name)
    if name in _OWN:
        return
    lib, _, model = name.partition(":")
    if lib not in ("torchvision", "timm") or not model:
        raise ValueError(f"unknown model '{name}'; known: {list_models()}")
    if not resolve_libraries:
        return
    if lib == "torchvision":
        import torchvision

        known = torchvision.models.list_models()
    else:
        import timm

        known = timm.list_models()
    if model not in known:
        import difflib

        close = difflib.get_close_matches(model, known, n=5)
        raise ValueError(f"{lib} has no model '{model}' (closest: {close})")


def build_model(
    name: str, num_classes: int, in_channels: int, image_size: tuple[int, int]
) -> nn.Module:
    name = _ALIASES.get(name, name)
    if name in _OWN:
        return _OWN[name](num_classes, in_channels, tuple(image_size))
    if name.startswith("torchvision:"):
        import torchvision

        if in_channels != 3:
            raise ValueError(f"model '{name}' expects 3-channel images, data has {in_channels}")
        return torchvision.models.get_model(
            name.split(":", 1)[1], weights=None, num_classes=num_classes
        )
    if name.startswith("timm:"):
        import timm

        return timm.create_model(
            name.split(":", 1)[1], pretrained=False, num_classes=num_classes, in_chans=in_channels
        )
    raise ValueError(f"unknown model '{name}'; known: {list_models()}")


def final_linear(model: nn.Module) -> str:
    """Name of the classifier: the last Linear layer (teacher features, class-row slicing)."""
    from torch import nn

    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ValueError(
            f"{type(model).__name__} has no final Linear classifier: ddflow reads teacher "
            "features and class rows there; use a model whose classifier is a Linear layer"
        )
    return names[-1]
