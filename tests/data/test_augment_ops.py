"""Batched augmentation ops and the Augment pipeline, checked on known images."""

from __future__ import annotations

import pytest
import torch

from cnnkit.data import augment_ops as ops
from cnnkit.data.augment import Augment, parse_augment_spec


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def ramp(n=1, c=1, h=4, w=6):
    """An asymmetric image: value = 10*row + col (+100 per channel, +1000 per image)."""
    rows = torch.arange(h).view(h, 1) * 10.0
    cols = torch.arange(w).view(1, w).float()
    base = (rows + cols).expand(h, w)
    return torch.stack([torch.stack([base + 100 * ch + 1000 * i for ch in range(c)])
                        for i in range(n)])


def full(value, n):
    return torch.full((n,), float(value))


# ---------------------------------------------------------------------------- flips

def test_flip_all_and_none():
    x = ramp(3, 2)
    assert torch.equal(ops.random_flip(x, gen(), p=1.0), x.flip(-1))
    assert torch.equal(ops.random_flip(x, gen(), p=0.0), x)
    both = ops.random_flip(x, gen(), horizontal=True, vertical=True, p=1.0)
    assert torch.equal(both, x.flip(-1).flip(-2))


def test_flip_mask_is_per_image():
    x = ramp(64)
    y = ops.random_flip(x, gen(1))
    flipped = [torch.equal(y[i], x[i].flip(-1)) for i in range(64)]
    kept = [torch.equal(y[i], x[i]) for i in range(64)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 15 < sum(flipped) < 49


# ------------------------------------------------------------------- affine, exact cases

@pytest.mark.parametrize("dx,dy", [(2, 0), (0, 1), (-1, 2), (3, -1)])
def test_shift_by_whole_pixels_is_exact(dx, dy):
    x = ramp(1, 2)
    theta = ops.affine_theta(4, 6, shift_x=full(dx, 1), shift_y=full(dy, 1))
    y = ops.apply_affine(x, theta, fill_mode="constant", fill_value=-1.0)
    expected = torch.full_like(x, -1.0)
    h, w = 4, 6
    src = x[..., max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    expected[..., max(0, dy):h - max(0, -dy), max(0, dx):w - max(0, -dx)] = src
    assert torch.allclose(y, expected, atol=1e-4)


def test_fill_modes_on_a_two_pixel_shift():
    x = torch.tensor([[1.0, 2, 3, 4, 5, 6]]).view(1, 1, 1, 6).expand(1, 1, 3, 6).contiguous()
    theta = ops.affine_theta(3, 6, shift_x=full(2, 1))
    row = {m: ops.apply_affine(x, theta, fill_mode=m, fill_value=9.0)[0, 0, 1].tolist()
           for m in ops.FILL_MODES}
    assert row["constant"] == pytest.approx([9, 9, 1, 2, 3, 4])
    assert row["nearest"] == pytest.approx([1, 1, 1, 2, 3, 4])
    assert row["reflect"] == pytest.approx([2, 1, 1, 2, 3, 4])
    assert row["wrap"] == pytest.approx([5, 6, 1, 2, 3, 4])


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rotation_by_quarter_turns_matches_rot90(k):
    x = ramp(2, 3, 5, 5)
    theta = ops.affine_theta(5, 5, rotation=full(90 * k, 2))
    y = ops.apply_affine(x, theta, fill_mode="constant")
    # positive angles turn counter-clockwise, as torch.rot90 with k > 0 does
    assert torch.allclose(y, torch.rot90(x, k, dims=(-2, -1)), atol=1e-3)


def test_half_turn_on_a_non_square_image_flips_both_axes():
    x = ramp(1, 1, 4, 6)
    y = ops.apply_affine(x, ops.affine_theta(4, 6, rotation=full(180, 1)), "constant")
    assert torch.allclose(y, x.flip(-1).flip(-2), atol=1e-3)


def test_zoom_in_by_two_magnifies_the_centre():
    x = ramp(1, 1, 4, 4)
    theta = ops.affine_theta(4, 4, zoom_x=full(0.5, 1), zoom_y=full(0.5, 1))
    y = ops.apply_affine(x, theta, interpolation="nearest")
    centre = x[..., 1:3, 1:3]
    assert torch.equal(y, centre.repeat_interleave(2, -1).repeat_interleave(2, -2))


def test_zoom_out_by_two_shrinks_into_the_middle():
    x = torch.ones(1, 1, 8, 8)
    theta = ops.affine_theta(8, 8, zoom_x=full(2, 1), zoom_y=full(2, 1))
    y = ops.apply_affine(x, theta, fill_mode="constant")
    assert torch.allclose(y[..., 2:6, 2:6], torch.ones(1, 1, 4, 4))
    assert y[..., :1, :].abs().max() == 0 and y[..., :, -1:].abs().max() == 0


def test_fast_affine_grid_equals_torch():
    theta = ops.affine_theta(5, 9, rotation=torch.tensor([0.0, 33.0, -71.0]),
                             shift_x=torch.tensor([0.0, 1.5, -2.0]),
                             zoom_x=torch.tensor([1.0, 0.8, -1.2]),
                             zoom_y=torch.tensor([1.0, 1.1, 0.9]))
    ref = torch.nn.functional.affine_grid(theta, [3, 1, 5, 9], align_corners=False)
    assert torch.allclose(ops.affine_grid(theta, 5, 9), ref, atol=1e-6)


def test_identity_parameters_leave_the_image_unchanged():
    x = ramp(2, 3, 5, 7)
    theta = ops.affine_theta(5, 7, rotation=full(0, 2), zoom_x=full(1, 2), shear=full(0, 2))
    assert torch.allclose(ops.apply_affine(x, theta), x, atol=1e-4)
    assert ops.random_affine(x, gen()) is x  # nothing asked: no resampling at all


def test_random_affine_integer_pixel_shifts_are_exact_moves():
    x = ramp(16, 1, 6, 6)
    y = ops.random_affine(x, gen(2), shift=2, fill_mode="constant", fill_value=-5.0)
    for i in range(16):
        ok = False
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                theta = ops.affine_theta(6, 6, shift_x=full(dx, 1), shift_y=full(dy, 1))
                cand = ops.apply_affine(x[i:i + 1], theta, "constant", -5.0)
                ok |= torch.allclose(cand, y[i:i + 1], atol=1e-4)
        assert ok, i


def test_random_rotation_stays_in_range():
    """A dot at radius 2 from the centre moves by at most the allowed angle."""
    x = torch.zeros(32, 1, 9, 9)
    x[:, :, 4, 6] = 1.0  # right of the centre
    y = ops.random_affine(x, gen(3), rotation=30, fill_mode="constant",
                          interpolation="nearest")
    for i in range(32):
        r, c = divmod(int(y[i, 0].argmax()), 9)
        angle = torch.rad2deg(torch.atan2(torch.tensor(4.0 - r), torch.tensor(c - 4.0)))
        assert abs(float(angle)) <= 30 + 15  # nearest-pixel slack


# ------------------------------------------------------------------- crop, cutout, erase

def test_random_crop_windows_the_padded_image():
    x = ramp(20, 2, 5, 5)
    pad = 2
    y = ops.random_crop(x, gen(4), padding=pad, fill_value=-1.0)
    padded = torch.nn.functional.pad(x, (pad,) * 4, value=-1.0)
    offsets = set()
    for i in range(20):
        hits = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                if torch.equal(padded[i, :, dy:dy + 5, dx:dx + 5], y[i])]
        assert hits, i
        offsets.add(hits[0])
    assert len(offsets) > 3
    assert torch.equal(ops.random_crop(x, gen(), padding=0), x)


def test_random_crop_reflect_padding_has_no_fill():
    x = torch.rand(8, 3, 6, 6) + 1.0
    y = ops.random_crop(x, gen(5), padding=3, fill_mode="reflect")
    assert bool((y >= 1.0).all())


def test_cutout_blanks_one_square():
    x = torch.ones(50, 2, 10, 10)
    y = ops.cutout(x, gen(6), size=4, fill_value=0.0)
    zeros = (y[:, 0] == 0).sum(dim=(-2, -1))
    assert bool((zeros <= 16).all()) and bool((zeros > 0).all())
    assert bool((zeros == 16).any())  # a box fully inside
    assert torch.equal(y[:, 0] == 0, y[:, 1] == 0)  # all channels
    z = ops.cutout(x, gen(6), size=0.5, p=0.0)
    assert torch.equal(z, x)


def test_random_erasing_rectangles():
    x = torch.ones(40, 3, 16, 16)
    y = ops.random_erasing(x, gen(7), p=1.0, value=0.0)
    for i in range(40):
        rows = (y[i, 0] == 0).any(1).nonzero().flatten()
        cols = (y[i, 0] == 0).any(0).nonzero().flatten()
        area = int((y[i, 0] == 0).sum())
        assert area == len(rows) * len(cols) and area > 0  # a solid rectangle
        assert area <= 0.33 * 256 * 1.3
    assert torch.equal(ops.random_erasing(x, gen(7), p=0.0), x)
    noisy = ops.random_erasing(x, gen(7), p=1.0, value="random")
    assert not torch.equal(noisy, x)


# ---------------------------------------------------------------------- colour

def test_brightness_adds_one_delta_per_image_and_clips():
    x = torch.full((30, 3, 4, 4), 0.5)
    y = ops.random_brightness(x, gen(8), factor=0.2)
    delta = y - x
    assert torch.allclose(delta, delta[:, :1, :1, :1].expand_as(delta))
    assert float(delta.abs().max()) <= 0.2 + 1e-6
    assert float(ops.random_brightness(torch.ones(5, 1, 2, 2), gen(), (0.5, 0.5)).max()) == 1.0


def test_contrast_keeps_channel_means_and_scales_deviation():
    x = torch.rand(20, 3, 8, 8) * 0.5 + 0.25
    y = ops.random_contrast(x, gen(9), factor=0.3, value_range=None)
    assert torch.allclose(y.mean((-2, -1)), x.mean((-2, -1)), atol=1e-5)
    ratio = (y - y.mean((-2, -1), keepdim=True)).std((-2, -1)) / \
        (x - x.mean((-2, -1), keepdim=True)).std((-2, -1))
    assert float(ratio.min()) >= 0.7 - 1e-4 and float(ratio.max()) <= 1.3 + 1e-4


def test_brightness_scale_and_channel_shift():
    x = torch.full((10, 3, 2, 2), 0.5)
    y = ops.random_brightness_scale(x, gen(), (0.5, 1.5), value_range=None)
    f = y[:, 0, 0, 0] / 0.5
    assert float(f.min()) >= 0.5 and float(f.max()) <= 1.5
    z = ops.random_channel_shift(x, gen(), 0.1)
    assert not torch.allclose(z[:, 0], z[:, 1])


# ---------------------------------------------------------------------- seeding, devices

def test_same_seed_same_batch_different_seed_different_batch():
    aug = Augment(flip="horizontal", rotate=15, shift=0.1, zoom=0.1, crop=2, cutout=3,
                  erase=0.5, brightness=0.1, contrast=0.1)
    x = torch.rand(16, 3, 12, 12)
    a = aug(x, gen(42))
    assert torch.equal(a, aug(x, gen(42)))
    assert not torch.equal(a, aug(x, gen(43)))
    g = gen(42)
    first, second = aug(x, g), aug(x, g)
    assert torch.equal(first, a) and not torch.equal(first, second)  # the state advances
    torch.manual_seed(1)
    b = aug(x)
    torch.manual_seed(1)
    assert torch.equal(b, aug(x))  # no generator: the global one, seeded


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_same_draws_on_the_gpu():
    aug = Augment(flip="both", rotate=20, shift=0.1, zoom=0.2, crop=2, cutout=3)
    x = torch.rand(32, 3, 16, 16)
    cpu = aug(x, gen(5))
    cuda = aug(x.cuda(), gen(5)).cpu()
    assert torch.allclose(cpu, cuda, atol=1e-4)
    cg = torch.Generator(device="cuda").manual_seed(5)
    assert aug(x.cuda(), cg).device.type == "cuda"


# ---------------------------------------------------------------------- Augment / spec

def test_augment_keeps_shape_dtype_and_converts_uint8():
    x = torch.randint(0, 256, (4, 3, 10, 10), dtype=torch.uint8)
    y = Augment(flip=True, rotate=10)(x, gen())
    assert y.shape == x.shape and y.dtype == torch.float32 and float(y.max()) <= 1.0


def test_augment_pipeline_flip_only_is_exact():
    x = ramp(8, 3)
    y = Augment(flip="horizontal")(x, gen(0))
    assert all(torch.equal(y[i], x[i]) or torch.equal(y[i], x[i].flip(-1)) for i in range(8))


def test_flip_folded_into_the_affine_pass_is_exact():
    x = ramp(32, 3, 5, 7)
    for flip, mirror in (("horizontal", lambda t: t.flip(-1)), ("vertical", lambda t: t.flip(-2))):
        # a zoom range of (1, 1 + tiny) forces the sampling pass without moving pixels
        y = Augment(flip=flip, zoom=(1.0, 1.0 + 1e-7), fill_mode="constant")(x, gen(3))
        same = [torch.allclose(y[i], x[i], atol=1e-3) for i in range(32)]
        flipped = [torch.allclose(y[i], mirror(x[i]), atol=1e-3) for i in range(32)]
        assert all(a or b for a, b in zip(same, flipped)) and any(flipped) and any(same)
    theta = ops.affine_theta(5, 7, zoom_x=full(-1, 1))
    assert torch.allclose(ops.apply_affine(x[:1], theta), x[:1].flip(-1), atol=1e-4)


def test_parse_augment_spec_and_round_trip():
    a = parse_augment_spec("flip,shift=0.1,rotate=15")
    assert a == Augment(flip="horizontal", shift=0.1, rotate=15)
    assert parse_augment_spec(a.spec()) == a
    b = parse_augment_spec("hflip,vflip,zoom=0.9:1.1,crop,cutout=8,erase,brightness=0.1,"
                           "contrast=0.2,fill=constant,shift=0.1:0.2")
    assert b.flip == "both" and b.zoom == (0.9, 1.1) and b.crop == 4 and b.erase == 0.5
    assert b.shift == (0.1, 0.2) and b.fill_mode == "constant"
    assert parse_augment_spec(b.spec()) == b
    assert Augment.from_config(b.config()) == b
    for off in (None, "", "none"):
        assert parse_augment_spec(off) is None


def test_parse_augment_spec_errors():
    with pytest.raises(ValueError, match="unknown key 'spin'"):
        parse_augment_spec("flip,spin=3")
    with pytest.raises(ValueError, match="not a number"):
        parse_augment_spec("rotate=lots")
    with pytest.raises(ValueError, match="needs a value"):
        parse_augment_spec("rotate")
    with pytest.raises(ValueError, match="fill_mode"):
        parse_augment_spec("fill=mirror")


def test_active_flag():
    assert not Augment().active and Augment(zoom=(1.0, 1.0)).active is False
    assert Augment(crop=2).active and Augment(shift=(0, 0.1)).active
