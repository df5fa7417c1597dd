"""Pieces shared by teacher and student training: seeding, augmentation, evaluation."""

from __future__ import annotations

import math
import random

import numpy as np
import torch
from torch import nn

from ddflow.data.pixels import Normalizer
from ddflow.errors import DdflowError
from ddflow.recover.augment import crop_resize, sample_rrc_box


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def random_crop_pad(x: torch.Tensor, padding: int, gen: torch.Generator) -> torch.Tensor:
    """Per-sample RandomCrop(size, padding) with zero padding (in normalized space: value 0)."""
    if padding == 0:
        return x
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    offs = torch.randint(0, 2 * padding + 1, (n, 2), generator=gen).tolist()
    return torch.stack([padded[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(offs)])


def random_hflip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    mask = torch.rand(x.shape[0], generator=gen) < 0.5
    return torch.where(mask.to(x.device).view(-1, 1, 1, 1), x.flip(-1), x)


def per_sample_rrc(x: torch.Tensor, scale: tuple[float, float], rng: random.Random) -> torch.Tensor:
    """RandomResizedCrop drawn per image (as a DataLoader does), antialiased (torchvision>=0.17)."""
    if scale == (1.0, 1.0):
        return x
    h, w = x.shape[-2:]
    return torch.cat(
        [
            crop_resize(x[i : i + 1], sample_rrc_box(h, w, scale, rng), (h, w), True)
            for i in range(x.shape[0])
        ]
    )


@torch.no_grad()
def evaluate(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    norm: Normalizer,
    batch_size: int = 500,
) -> float:
    """Top-1 accuracy (%) on real images; restores the model's train/eval mode."""
    was_training = model.training
    model.eval()
    correct = 0
    y = torch.as_tensor(labels)
    for s in range(0, len(labels), batch_size):
        logits = model(norm.to_tensor(images[s : s + batch_size]))
        correct += (logits.argmax(1).cpu() == y[s : s + batch_size]).sum().item()
    model.train(was_training)
    return 100.0 * correct / len(labels)


def param_groups(model: nn.Module, weight_decay: float, no_decay_bn_bias: bool) -> list[dict]:
    """Weight decay on >=2-D weights only when asked (RDED/DELT/SRe2L-ImageNet practice)."""
    if not no_decay_bn_bias:
        return [{"params": list(model.parameters()), "weight_decay": weight_decay}]
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def rand_augment(config: str, image_size: int, mean: list[float]):
    """timm RandAugment (as DELT's validation uses), applied per image to uint8 HWC arrays."""
    from PIL import Image
    from timm.data.auto_augment import rand_augment_transform

    fill = tuple(int(round(255 * m)) for m in mean)
    ra = rand_augment_transform(
        config,
        {"translate_const": int(image_size * 0.45), "img_mean": fill if len(fill) > 1 else fill[0]},
    )

    def apply(images: np.ndarray) -> np.ndarray:
        out = []
        for img in images:
            pil = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
            arr = np.asarray(ra(pil))
            out.append(arr[..., None] if arr.ndim == 2 else arr)
        return np.stack(out)

    return apply


class TrainingDiverged(DdflowError):
    """A training loss or weight went non-finite: the job stops before anything is written."""


def check_finite(who: str, epoch: int, mean_loss: float, model: nn.Module, lr_key: str) -> None:
    """The one guard of every training loop, once an epoch: a diverged run never writes NaN."""
    bad = [
        n for n, p in model.state_dict().items() if p.is_floating_point() and not p.isfinite().all()
    ]
    if math.isfinite(mean_loss) and not bad:
        return
    what = f"mean loss {mean_loss}" if not math.isfinite(mean_loss) else f"weights {bad[:3]}"
    raise TrainingDiverged(
        f"{who} training diverged at epoch {epoch} ({what} not finite); nothing was written. "
        f"Lower {lr_key} (or check the data for corrupt images) and rerun."
    )
