"""CDA Table 9's diagnostic: a classifier's top-1 on a set's whole images vs random crops."""

import numpy as np
import torch
from torch import nn

from ddflow.data.pixels import Normalizer
from ddflow.metrics.recognition import view_top1


class _SeesWhite(nn.Module):
    """Class 1 iff any pixel is bright: a detail a crop can cut away."""

    def forward(self, x):
        bright = x.flatten(1).amax(1)
        return torch.stack([-bright, bright], 1)


def test_a_detail_is_recognised_whole_more_often_than_in_random_crops():
    images = np.zeros((40, 16, 16, 1), np.uint8)
    labels = np.repeat([0, 1], 20)
    images[20:, :2, :2] = 255  # class 1: one small corner
    norm = Normalizer([0.5], [0.5], torch.device("cpu"))
    r = view_top1(_SeesWhite(), images, labels, norm, crops=10, seed=0)
    assert r["top1_global"] == 100.0 and r["crops"] == 10
    assert 50.0 <= r["top1_crops"] < 90.0  # class 0 always right, class 1 when the crop keeps it
    assert view_top1(_SeesWhite(), images, labels, norm, seed=0) == r  # seeded
    flat = np.repeat(np.array([0, 255], np.uint8), 20)[:, None, None, None] * np.ones(
        (1, 16, 16, 1), np.uint8
    )
    whole = view_top1(_SeesWhite(), flat, labels, norm)
    assert whole["top1_global"] == whole["top1_crops"] == 100.0  # nothing to cut away


def test_the_set_classifier_names_one_source():
    import pytest

    from ddflow.config import ConfigError, validate_config

    cfg = {"dataset": {"name": "m", "source": "mnist-embedded"}, "teacher": {}, "ipc": [1],
           "student": {}, "methods": {"r": {"kind": "random"}}}  # fmt: skip
    assert validate_config(cfg)["report"]["set_classifier"] is None  # the teacher
    mobilenet = {"arch": "torchvision:mobilenet_v2", "pretrained": "IMAGENET1K_V1"}
    assert validate_config({**cfg, "report": {"set_classifier": mobilenet}})
    with pytest.raises(ConfigError, match="'report.set_classifier': set one of"):
        validate_config({**cfg, "report": {"set_classifier": {"arch": "convnet_d3"}}})
