import random

import numpy as np
import pytest
import torch
from test_recover import trained_bn_teacher
from torch import nn

from ddflow.data.pixels import Normalizer
from ddflow.recover.augment import RecoverAugment
from ddflow.recover.bn_loss import BNStatLoss
from ddflow.recover.early_late import group_sizes, image_groups, iterations_per_image
from ddflow.recover.loop import freeze, recover_batch
from ddflow.select.mosaic import mosaic_class
from ddflow.select.ranking import medium_order, select


def test_published_example_ipc50_mi4000_ri500():
    groups = image_groups(50, 4000, 500)
    assert np.bincount(groups).tolist() == [7, 7, 6, 6, 6, 6, 6, 6]
    iters = iterations_per_image(groups, 4000, 500)
    assert sorted(set(iters.tolist()), reverse=True) == list(range(4000, 499, -500))
    assert iters[:7].tolist() == [4000] * 7 and iters[-6:].tolist() == [500] * 6
    # about 42% fewer image-iterations than 50 x 4000
    by_hand = 7 * 4000 + 7 * 3500 + 6 * (3000 + 2500 + 2000 + 1500 + 1000 + 500)
    assert iters.sum() == by_hand and 1 - by_hand / (50 * 4000) == pytest.approx(0.4225)


@pytest.mark.parametrize(
    ("ipc", "mi", "ri", "sizes"),
    [
        (10, 4000, 500, [2, 2, 1, 1, 1, 1, 1, 1]),
        (10, 2000, 1000, [5, 5]),
        (7, 1000, 500, [4, 3]),
        (3, 4000, 500, [1, 1, 1, 0, 0, 0, 0, 0]),
        (2, 4000, 500, [1, 1, 0, 0, 0, 0, 0, 0]),
        (1, 4000, 500, [1]),
    ],
)
def test_group_sizes(ipc, mi, ri, sizes):
    groups = image_groups(ipc, mi, ri)
    assert np.bincount(groups, minlength=len(sizes)).tolist() == sizes
    assert (np.diff(groups) >= 0).all()  # selection order: earliest groups first


def test_ipc1_and_early_only_run_every_image_the_full_budget():
    assert iterations_per_image(image_groups(1, 4000, 500), 4000, 500).tolist() == [4000]
    early_only = image_groups(10, 4000, 500, early_late=False)
    assert iterations_per_image(early_only, 4000, 500).tolist() == [4000] * 10
    assert group_sizes(10, 1) == [10]
    assert all(type(s) is int for s in group_sizes(10, 3))  # image counts, not fractions


def test_medium_order_on_a_known_list():
    assert medium_order(5) == [3, 4, 2, 1, 0]  # mid = ceil(5/2) = 3, then +1, -1, -2 (+2 out)
    assert medium_order(6) == [3, 4, 2, 5, 1, 0]
    scores = np.array([0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8])  # one class
    labels = np.zeros(7, dtype=int)
    # ascending: idx 1 (.1), 5 (.2), 3 (.3), 2 (.5), 4 (.7), 6 (.8), 0 (.9); mid position 4
    assert select(scores, labels, 1, 3, "medium")[0].tolist() == [4, 6, 2]
    assert select(scores, labels, 1, 2, "lowest")[0].tolist() == [1, 5]
    assert select(scores, labels, 1, 2, "highest")[0].tolist() == [0, 6]


def test_selection_edges_ties_and_messages():
    assert medium_order(1) == [0] and medium_order(2) == [1, 0]  # every image, however few
    labels = np.array([0, 0, 0, 1, 1])
    scores = np.array([0.5, 0.5, 0.5, 0.2, 0.2])  # ties keep training-set order (stable sort)
    assert select(scores, labels, 2, 2, "lowest").tolist() == [[0, 1], [3, 4]]
    assert select(scores, labels, 2, 2, "highest").tolist() == [[2, 1], [4, 3]]
    assert select(scores, labels, 2, 2, "medium").tolist() == [[2, 1], [4, 3]]  # mid = ceil(n/2)
    many = np.repeat([0.3, 0.1, 0.2], 100)  # 300 tied scores: only a stable sort keeps order
    order = select(many, np.zeros(300, int), 1, 300, "lowest")[0]
    assert order.tolist() == [*range(100, 200), *range(200, 300), *range(100)]
    from ddflow.data.datasets import DataError

    with pytest.raises(
        DataError,
        match=r"^config key 'ipc': class 1 has 2 training images, fewer than IPC 3; lower ipc$",
    ):
        select(scores, labels, 2, 3, "lowest")
    with pytest.raises(
        ValueError, match=r"unknown selection criterion 'middle'; known: \('lowest'"
    ):
        select(scores, labels, 2, 1, "middle")


def test_mosaic_cell_layout():
    """Image i of a class is the grid whose cell j is kept crop j*ipc + i (row-major)."""

    class Constant(nn.Module):  # equal scores: kept order = candidate order
        def forward(self, x):
            return torch.zeros(len(x), 2)

    ipc, k = 2, 2
    images = np.stack([np.full((8, 8, 1), 10 * (i + 1), np.uint8) for i in range(8)])
    norm = Normalizer([0.0], [1.0])
    out = mosaic_class(Constant(), norm, images, 0, ipc, k, 1, 8, random.Random(0))
    assert out.shape == (2, 1, 8, 8)
    picks = random.Random(0).sample(range(8), 8)  # the same draw mosaic_class makes first
    values = [(v + 1) * 10 / 255 for v in picks]
    for i in range(ipc):
        cells = [out[i, 0, :4, :4], out[i, 0, :4, 4:], out[i, 0, 4:, :4], out[i, 0, 4:, 4:]]
        for j, cell in enumerate(cells):
            assert torch.allclose(cell, torch.tensor(values[j * ipc + i])), (i, j)


def test_bn_statistics_use_active_images_only():
    teacher = freeze(trained_bn_teacher(classes=4))
    labels = torch.tensor([0, 1, 2, 3])
    x0 = torch.randn(4, 1, 12, 12)
    x0[2:] = 1e3  # inactive rows whose values would dominate the batch statistics
    lo, hi = torch.full((1, 1, 1, 1), -1e4), torch.full((1, 1, 1, 1), 1e4)
    seen = []

    def run(active):
        bn = BNStatLoss(teacher, 10.0)
        orig = bn.value

        def spy():
            v = orig()
            seen.append(v.item())
            return v

        bn.value = spy
        x = recover_batch(
            teacher,
            bn,
            x0,
            labels,
            iterations=1,
            lr=0.1,
            r_bn=1.0,
            augment=RecoverAugment(crop=False, flip=False),
            bounds=(lo, hi),
            rng=random.Random(0),
            active_at=active,
        )
        bn.remove()
        return x

    x = run(lambda step: torch.tensor([0, 1]))
    subset = BNStatLoss(teacher, 10.0)
    with torch.no_grad():
        teacher(x0[:2])
    assert seen[-1] == pytest.approx(subset.value().item(), rel=1e-5)
    subset.remove()
    assert torch.equal(x[2:], x0[2:])  # inactive rows: zero gradient, untouched by Adam
    assert not torch.equal(x[:2], x0[:2])
    run(None)
    assert seen[-1] > 10 * seen[-2]  # with the inactive rows included, the term explodes
