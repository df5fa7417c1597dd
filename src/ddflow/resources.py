"""Job resources (memory, runtime, GPUs) from the stage and the dataset, at parse time.

Kept free of heavy imports: SLURM jobs re-parse the Snakefile before every job. The figures are
deliberately generous defaults for schedulers (a job killed at its time limit loses more than an
over-ask costs); override any rule with `--set-resources RULE:runtime=...` in a profile. Runtime
grows with each retry (`attempt`), so a job that ran out of time gets more on its next try.
"""

from __future__ import annotations

import math

# Pixels and train images per class assumed when the source does not fix them (ImageNet-like).
FOLDER_PIXELS = 224 * 224
FOLDER_PER_CLASS = 1300
SOURCE_SHAPE = {"mnist-embedded": (28 * 28, 1), "cifar10": (32 * 32, 3), "cifar100": (32 * 32, 3)}
SOURCE_PER_CLASS = {"mnist-embedded": 400, "cifar10": 5000, "cifar100": 500}
# Recovery pixel-steps per second (images x pixels x steps / s), measured with
# benchmarks/recover_speed.py: ResNet-18 224 px on one H100 and ConvNet-D3 on 2 CPU cores,
# rounded down. Runtime requests take 3x the resulting estimate.
PIXEL_STEPS_PER_S = {"cuda": 2.0e8, "cpu": 5.0e5}
SAFETY = 3
# Stages over file storage: the index (~40 MB for ImageNet-1K) plus decoded batches and models.
FILES_MEM_MB = 8000


def image_pixels(ds_cfg: dict) -> tuple[int, int]:
    """(pixels per image, channels) of the dataset, without reading it."""
    if ds_cfg.get("image_size"):
        return ds_cfg["image_size"] ** 2, 3
    return SOURCE_SHAPE.get(ds_cfg["source"], (FOLDER_PIXELS, 3))


def train_images(ds_cfg: dict, num_classes: int) -> int:
    per_class = ds_cfg.get("max_train_per_class") or SOURCE_PER_CLASS.get(
        ds_cfg["source"], FOLDER_PER_CLASS
    )
    return num_classes * per_class


def train_bytes(ds_cfg: dict, num_classes: int) -> int:
    pixels, channels = image_pixels(ds_cfg)
    return train_images(ds_cfg, num_classes) * pixels * channels


def data_mem_mb(ds_cfg: dict, num_classes: int) -> int:
    """Stages that hold the training set: uint8 copy plus float working copies.

    With file storage they hold the index and the batches they decode, whatever the dataset size.
    """
    if ds_cfg.get("storage") == "files":
        return FILES_MEM_MB
    return 2000 + math.ceil(6 * train_bytes(ds_cfg, num_classes) / 2**20)


def distilled_mem_mb(ds_cfg: dict, num_classes: int, ipc: int) -> int:
    """Stages that hold a distilled set (students, diversity, assembly): the data stage's need plus
    three copies of the set (uint8, a decoded or merged copy, headroom); ImageNet-1K IPC 100 at
    224 px is 15 GB as uint8."""
    pixels, channels = image_pixels(ds_cfg)
    return data_mem_mb(ds_cfg, num_classes) + math.ceil(
        3 * num_classes * ipc * pixels * channels / 2**20
    )


def recover_runtime_min(
    ds_cfg: dict, device: str, images: int, iterations: int, attempt: int = 1
) -> int:
    pixels, _ = image_pixels(ds_cfg)
    seconds = images * iterations * pixels / PIXEL_STEPS_PER_S[device]
    return max(10, math.ceil(SAFETY * seconds / 60)) * attempt


def training_runtime_min(
    ds_cfg: dict, device: str, images: int, epochs: int, attempt: int = 1
) -> int:
    """Teacher or student training: forward and full backward, about 3 recovery steps' work."""
    pixels, _ = image_pixels(ds_cfg)
    seconds = 3 * images * epochs * pixels / PIXEL_STEPS_PER_S[device]
    return max(10, math.ceil(SAFETY * seconds / 60)) * attempt
