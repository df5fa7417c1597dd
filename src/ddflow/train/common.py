"""Pieces shared by teacher and student training: seeding, augmentation, evaluation."""

from __future__ import annotations

import contextlib
import math
import random

import numpy as np
import torch
from torch import nn

from ddflow.data.pixels import Normalizer, chw_of
from ddflow.data.prefetch import batches
from ddflow.errors import DdflowError
from ddflow.recover.augment import sample_rrc_box


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def random_crop_pad(x: torch.Tensor, padding: int, gen: torch.Generator) -> torch.Tensor:
    """Per-sample RandomCrop(size, padding) with zero padding (in normalized space: value 0),
    gathered for the whole batch at once: a handful of operator calls at any batch size."""
    if padding == 0:
        return x
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    offs = torch.randint(0, 2 * padding + 1, (n, 2), generator=gen).to(x.device)
    rows = (offs[:, :1] + torch.arange(h, device=x.device)).view(n, 1, h, 1)
    cols = (offs[:, 1:] + torch.arange(w, device=x.device)).view(n, 1, 1, w)
    batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    channel = torch.arange(x.shape[1], device=x.device).view(1, -1, 1, 1)
    return padded[batch, channel, rows, cols]


def random_hflip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    mask = torch.rand(x.shape[0], generator=gen) < 0.5
    return torch.where(mask.to(x.device).view(-1, 1, 1, 1), x.flip(-1), x)


def resample_boxes(x: torch.Tensor, boxes: np.ndarray | None, flips: np.ndarray | None = None):
    """Crop each image to its box (top, left, h, w), resize it bilinearly to the batch's size and
    mirror it where `flips`: one grid_sample for the whole batch.

    A RandomResizedCrop box never exceeds the image, so every crop is upsampled, where
    antialiasing is a no-op; sample coordinates are those of F.interpolate(align_corners=False),
    clamped to the box, so the result equals the per-image crop_resize up to float rounding.
    """
    n, _, h, w = x.shape
    if boxes is None:
        boxes = np.tile(np.array([0, 0, h, w], np.float64), (n, 1))
    b = torch.as_tensor(np.asarray(boxes, np.float64))
    top, left, bh, bw = b.unbind(1)
    ys = top[:, None] + ((torch.arange(h, dtype=torch.float64) + 0.5) * (bh / h)[:, None] - 0.5)
    xs = (torch.arange(w, dtype=torch.float64) + 0.5) * (bw / w)[:, None] - 0.5
    ys = ys.clamp(min=top[:, None]).minimum((top + bh - 1)[:, None])
    xs = xs.clamp(min=0).minimum((bw - 1)[:, None])
    if flips is not None:  # the mirror of a crop reads its columns right to left
        xs = torch.where(torch.as_tensor(np.asarray(flips))[:, None], xs.flip(1), xs)
    xs = xs + left[:, None]
    # Only the per-image row and column coordinates cross to the device (n x (h + w) numbers);
    # the (n, h, w, 2) grid is expanded there. Normalized for align_corners=False: p -> (2p+1)/s-1.
    gx = ((2 * xs + 1) / w - 1).to(device=x.device, dtype=x.dtype)
    gy = ((2 * ys + 1) / h - 1).to(device=x.device, dtype=x.dtype)
    grid = torch.stack((gx[:, None, :].expand(n, h, w), gy[:, :, None].expand(n, h, w)), dim=-1)
    return torch.nn.functional.grid_sample(
        x, grid, mode="bilinear", padding_mode="border", align_corners=False
    )


def per_sample_rrc(x: torch.Tensor, scale: tuple[float, float], rng: random.Random) -> torch.Tensor:
    """RandomResizedCrop drawn per image (as a DataLoader does), resampled as one batch."""
    if scale == (1.0, 1.0):
        return x
    h, w = x.shape[-2:]
    return resample_boxes(x, np.array([sample_rrc_box(h, w, scale, rng) for _ in range(len(x))]))


def evaluate(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    norm: Normalizer,
    batch_size: int | None = None,
    task: str | None = None,
) -> float:
    """Top-1 accuracy (%) on real images."""
    return topk_accuracy(model, images, labels, norm, (1,), batch_size, task)[1]


@torch.no_grad()
def topk_accuracy(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    norm: Normalizer,
    ks: tuple[int, ...] = (1, 5),
    batch_size: int | None = None,
    task: str | None = None,
) -> dict[int, float]:
    """{k: top-k accuracy (%)} on real images, the next batch decoded while this one runs, in
    batches sized for the device unless given (`task`: report progress as it goes); restores
    the model's train/eval mode."""
    from ddflow.compute import inference_batch

    was_training = model.training
    model.eval()
    device = norm.mean.device
    batch_size = batch_size or inference_batch(model, chw_of(images), device)
    y = torch.as_tensor(np.asarray(labels), device=device)
    correct = torch.zeros(len(ks), dtype=torch.int64, device=device)
    for s, batch in batches(images, batch_size, device, task):
        logits, target = model(norm.to_tensor(batch)), y[s : s + batch_size]
        hits = [  # top-1 by argmax: ties go to the first class, as everywhere else
            logits.argmax(1) == target
            if k == 1
            else (logits.topk(min(k, logits.shape[1]), 1).indices == target[:, None]).any(1)
            for k in ks
        ]
        correct += torch.stack(hits).sum(1)
    model.train(was_training)
    return {k: 100.0 * c / len(labels) for k, c in zip(ks, correct.tolist())}


def cutout(images: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """CutoutPIL (Ridnik et al.; CDA's ImageNet-21K squeeze) on uint8 (N, H, W, C) images: per
    image a rectangle of sides int(factor x side + 0.5), centred uniformly at random, clipped at
    the border with both ends included (as PIL draws it), filled with one random colour."""
    n, h, w, c = images.shape
    yc, xc = rng.integers(0, h, n), rng.integers(0, w, n)
    half_h, half_w = int(factor * h + 0.5) // 2, int(factor * w + 0.5) // 2
    y1, y2 = np.clip(yc - half_h, 0, h), np.clip(yc + half_h, 0, h)
    x1, x2 = np.clip(xc - half_w, 0, w), np.clip(xc + half_w, 0, w)
    color = rng.integers(0, 256, (n, 1, 1, c), dtype=np.uint8)
    rows, cols = np.arange(h)[None, :, None], np.arange(w)[None, None, :]
    inside = (
        (rows >= y1[:, None, None]) & (rows <= y2[:, None, None])
        & (cols >= x1[:, None, None]) & (cols <= x2[:, None, None])
    )  # fmt: skip
    return np.where(inside[..., None], color, images)


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


def tv_rand_augment(spec: dict):
    """torchvision's RandAugment (EDC's direct training: num_ops 2, magnitude 9), per image on
    uint8 HWC arrays, before the views' crops and flips (as its transform order has it)."""
    from PIL import Image
    from torchvision.transforms import RandAugment

    ra = RandAugment(num_ops=spec["num_ops"], magnitude=spec["magnitude"])

    def apply(images: np.ndarray) -> np.ndarray:
        out = []
        for img in images:
            arr = np.asarray(ra(Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)))
            out.append(arr[..., None] if arr.ndim == 2 else arr)
        return np.stack(out)

    return apply


class WeightEMA:
    """An exponential moving average of a model's weights, advanced every step, evaluated in
    their place (EDC: decay 0.99; the live BatchNorm buffers stay, as its swap leaves them)."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.params = [p.detach().clone() for p in model.parameters()]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        torch._foreach_lerp_(self.params, [p.detach() for p in model.parameters()],
                             1.0 - self.decay)  # fmt: skip

    @contextlib.contextmanager
    def swapped(self, model: nn.Module):
        live = [p.detach().clone() for p in model.parameters()]
        with torch.no_grad():
            for p, e in zip(model.parameters(), self.params):
                p.copy_(e)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, saved in zip(model.parameters(), live):
                    p.copy_(saved)


class Precision:
    """`student.precision`: fp32 (the papers') or bf16, which runs the forwards of the student
    and its online teacher under bf16 autocast (losses in float32) and, on CUDA, lays model,
    teacher and batch out channels_last. It changes the numerics, so it is in the student id."""

    def __init__(self, name: str, device: torch.device):
        self.bf16 = name == "bf16"
        self.device_type = device.type
        self.channels_last = self.bf16 and device.type == "cuda"

    def prepare(self, model: nn.Module | None) -> nn.Module | None:
        if model is not None and self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    def layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def autocast(self):
        return torch.autocast(self.device_type, torch.bfloat16, enabled=self.bf16)


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
