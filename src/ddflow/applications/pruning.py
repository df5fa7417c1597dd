"""Data-free network slimming (DELT Table 6; applications.md §3): prune a trained network's
channels with no real data, then retrain the pruned network on a distilled set.

Slimming as Liu et al. code it: the |gamma| of every BatchNorm2d go into one vector; the threshold
is its value at index floor(total * ratio); a channel is kept iff its |gamma| is strictly greater.
Data-free means no sparsity training: it starts from the ordinary checkpoint. Surgery keeps each
kept channel's conv rows, the next conv's input columns, BN parameters and statistics, and the
classifier's input columns (a block of positions per channel when the features are flattened, as
torchvision's VGG does after its 7 x 7 pool and the ConvNets after their last stage). A layer
whose every channel falls below the threshold keeps its largest one (the reference would build
an empty layer and fail).
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def _layers(model: nn.Module) -> tuple[list[tuple[int, nn.Conv2d, nn.BatchNorm2d]], nn.Linear]:
    """(index, conv, its BN) along `model.features`, and the first Linear after them."""
    feats = getattr(model, "features", None)
    if not isinstance(feats, nn.Sequential):
        raise ValueError(
            f"{type(model).__name__} has no `features` Sequential of conv/BN layers: slimming "
            "supports plain conv-BN stacks (vgg11_bn_lowres, convnet_d*, torchvision:vgg*_bn)"
        )
    pairs, mods = [], list(feats)
    for i, m in enumerate(mods):
        if isinstance(m, nn.Conv2d):
            bn = mods[i + 1] if i + 1 < len(mods) else None
            if not isinstance(bn, nn.BatchNorm2d):
                raise ValueError(f"conv {i} of {type(model).__name__} has no BatchNorm after it")
            pairs.append((i, m, bn))
    head = model.classifier
    linear = head if isinstance(head, nn.Linear) else next(
        m for m in head.modules() if isinstance(m, nn.Linear)
    )  # fmt: skip
    return pairs, linear


def _threshold(gammas: torch.Tensor, ratio: float) -> torch.Tensor:
    return gammas.sort().values[min(int(len(gammas) * ratio), len(gammas) - 1)]


def channel_masks(model: nn.Module, ratio: float, scope: str = "global") -> list[torch.Tensor]:
    """Kept channels of each BN layer: |gamma| strictly above one threshold over all layers
    (`global`, slimming's), or above each layer's own (`layer`: the same share in every layer)."""
    pairs, _ = _layers(model)
    gammas = [bn.weight.detach().abs() for _, _, bn in pairs]
    everywhere = _threshold(torch.cat(gammas), ratio)
    masks = []
    for g, (_, _, bn) in zip(gammas, pairs):
        keep = g > (everywhere if scope == "global" else _threshold(g, ratio))
        if not keep.any():
            keep[bn.weight.detach().abs().argmax()] = True
        masks.append(keep)
    return masks


@torch.no_grad()
def slim(model: nn.Module, ratio: float, scope: str = "global") -> tuple[nn.Module, dict]:
    """The pruned copy of `model` and what was removed (channels per layer, parameter counts)."""
    masks = channel_masks(model, ratio, scope)
    pruned = copy.deepcopy(model).cpu()
    pairs, linear = _layers(pruned)
    before = sum(p.numel() for p in model.parameters())
    in_keep = None
    for (i, conv, bn), keep in zip(pairs, masks):
        cin = in_keep if in_keep is not None else torch.ones(conv.in_channels, dtype=torch.bool)
        new = nn.Conv2d(int(cin.sum()), int(keep.sum()), conv.kernel_size, conv.stride,
                        conv.padding, bias=conv.bias is not None)  # fmt: skip
        new.weight.copy_(conv.weight[keep][:, cin])
        if conv.bias is not None:
            new.bias.copy_(conv.bias[keep])
        nbn = nn.BatchNorm2d(int(keep.sum()), eps=bn.eps, momentum=bn.momentum)
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(nbn, name).copy_(getattr(bn, name)[keep])
        nbn.num_batches_tracked.copy_(bn.num_batches_tracked)
        pruned.features[i], pruned.features[i + 1] = new, nbn
        in_keep = keep
    per = linear.in_features // len(in_keep)  # positions per channel when flattened (1, or 49)
    cols = in_keep.repeat_interleave(per)
    new_linear = nn.Linear(int(cols.sum()), linear.out_features, bias=linear.bias is not None)
    new_linear.weight.copy_(linear.weight[:, cols])
    if linear.bias is not None:
        new_linear.bias.copy_(linear.bias)
    if isinstance(pruned.classifier, nn.Linear):
        pruned.classifier = new_linear
    else:
        idx = next(k for k, m in enumerate(pruned.classifier) if isinstance(m, nn.Linear))
        pruned.classifier[idx] = new_linear
    total = sum(len(m) for m in masks)
    info = {
        "ratio": ratio,
        "scope": scope,
        "channels": [int(m.sum()) for m in masks],
        "channels_before": [len(m) for m in masks],
        "channels_removed": 1 - sum(int(m.sum()) for m in masks) / total,
        "params_before": before,
        "params_after": sum(p.numel() for p in pruned.parameters()),
    }
    info["params_removed"] = 1 - info["params_after"] / before
    return pruned, info


@torch.no_grad()
def masked(model: nn.Module, ratio: float, scope: str = "global") -> nn.Module:
    """`model` with every pruned channel's BN gamma and beta zeroed: what the slimmed network
    computes, at full width (the reference to check surgery against)."""
    out = copy.deepcopy(model)
    for (_, _, bn), keep in zip(_layers(out)[0], channel_masks(model, ratio, scope)):
        bn.weight[~keep] = 0
        bn.bias[~keep] = 0
    return out
