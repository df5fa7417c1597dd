"""DSA (mode S) as SRe2L-CL trains with: each family's effect, one family a batch, seeded."""

import torch

from ddflow.train import dsa as D


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_crop_translates_by_whole_pixels_with_zeros_shifted_in():
    x = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).view(2, 3, 16, 16) + 1
    out = D._crop(x, _gen(3))
    g = _gen(3)
    dy, dx = torch.randint(-2, 3, (2,), generator=g), torch.randint(-2, 3, (2,), generator=g)
    for i in range(2):
        a, b = int(dy[i]), int(dx[i])
        expected = torch.zeros_like(x[i])
        ys, xs = slice(max(-a, 0), 16 - max(a, 0)), slice(max(-b, 0), 16 - max(b, 0))
        expected[:, ys, xs] = x[i, :, max(a, 0) : 16 + min(a, 0), max(b, 0) : 16 + min(b, 0)]
        assert torch.equal(out[i], expected)


def test_cutout_zeroes_one_half_size_box_clipped_at_the_border():
    x = torch.ones(64, 1, 16, 16)
    out = D._cutout(x, _gen(1))
    zeros = (out == 0).sum(dim=(1, 2, 3))
    assert (zeros <= 64).all() and (zeros == 64).any() and (zeros > 0).all()
    for img in out[:, 0]:  # the zeros form one rectangle
        rows, cols = (img == 0).any(1).nonzero(), (img == 0).any(0).nonzero()
        assert int((img == 0).sum()) == len(rows) * len(cols)


def test_flip_and_the_affine_families_keep_or_move_each_image_as_drawn():
    x = torch.randn(32, 3, 8, 8)
    out = D._flip(x, _gen(0))
    flipped = [torch.equal(o, i.flip(2)) for o, i in zip(out, x)]
    kept = [torch.equal(o, i) for o, i in zip(out, x)]
    assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)
    # with no scale or rotation the sampling grid is the identity
    assert torch.allclose(D._scale(x, _gen(0), ratio=1.0), x, atol=1e-5)
    assert torch.allclose(D._rotate(x, _gen(0), degrees=0.0), x, atol=1e-5)
    assert not torch.allclose(D._rotate(x, _gen(0)), x, atol=1e-3)


def test_color_shifts_brightness_then_scales_saturation_and_contrast_per_image():
    x = torch.full((4, 3, 2, 2), 0.25)
    out = D._color(x, _gen(5), saturation=1.0, contrast=1.0)
    g = _gen(5)
    shift = torch.rand(4, generator=g) - 0.5
    for i in range(4):  # a flat image: only the brightness shift survives
        assert torch.allclose(out[i], torch.full((3, 2, 2), 0.25 + float(shift[i])), atol=1e-6)


def test_one_family_a_batch_all_of_them_in_turn_and_the_same_seed_gives_the_same_batch():
    x = torch.randn(8, 3, 16, 16)
    assert torch.equal(D.dsa(x, _gen(9)), D.dsa(x, _gen(9)))
    picked = set()
    g = _gen(0)
    for _ in range(60):
        state = g.get_state()
        D.dsa(x, g)
        probe = torch.Generator()
        probe.set_state(state)
        picked.add(D.FAMILIES[int(torch.randint(0, len(D.FAMILIES), (1,), generator=probe))])
    assert picked == set(D.FAMILIES)


def test_cell_crop_takes_one_cell_to_full_size_three_times_in_four():
    import torch.nn.functional as F

    x = torch.randn(400, 3, 16, 16)
    out = D.cell_crop(x, _gen(2), 2)
    g = _gen(2)
    take = torch.rand(400, generator=g) < 0.75
    row, col = torch.randint(0, 2, (400,), generator=g), torch.randint(0, 2, (400,), generator=g)
    for i in range(400):
        r, c = int(row[i]), int(col[i])
        cell = x[i : i + 1, :, 8 * r : 8 * r + 8, 8 * c : 8 * c + 8]
        up = F.interpolate(cell, size=(16, 16), mode="bilinear", align_corners=False)[0]
        torch.testing.assert_close(out[i], up if take[i] else x[i])
    assert 0.7 < take.float().mean() < 0.8
    assert torch.equal(D.cell_crop(x, _gen(2), 1), x)  # factor 1: IDC-I, no cells


def test_idc_flips_colours_moves_and_cuts_out_every_image_one_move_a_batch():
    x = torch.randn(8, 3, 16, 16)
    assert torch.equal(D.idc(x, _gen(4)), D.idc(x, _gen(4)))
    moves = set()
    for seed in range(30):
        g = _gen(seed)
        want = D._color(D._flip(x, g), g)
        k = int(torch.randint(0, 3, (1,), generator=g))
        want = D._cutout(D.IDC_MOVES[k](want, g), g)
        torch.testing.assert_close(D.idc(x, _gen(seed)), want)
        moves.add(k)
    assert moves == {0, 1, 2}
    ones = D.idc(torch.ones(64, 1, 16, 16), _gen(0))
    assert ((ones == 0).flatten(1).sum(1) > 0).all()  # every image has its box


def test_idc_samples_its_affine_grids_with_pytorchs_default_corners():
    """A 2x scale about the centre: align_corners False maps output pixel i to input
    (i + 0.5) / 2 - 0.5 + H / 4; True would map it to i / 2 + (H - 1) / 4."""
    x = torch.arange(8, dtype=torch.float32).view(1, 1, 1, 8).expand(1, 1, 8, 8).contiguous()
    theta = torch.tensor([[[0.5, 0, 0], [0, 0.5, 0]]])
    got = D._affine(x, theta, corners=False)[0, 0, 0]
    want = torch.tensor([(i + 0.5) / 2 - 0.5 + 2 for i in range(8)])
    torch.testing.assert_close(got, want)
    assert all(m.keywords == {"corners": False} for m in D.IDC_MOVES[1:])
