"""Batched RandAugment / TrivialAugment: per-image ops, torchvision's arithmetic, seeding."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from cnnkit.data.augment import parse_augment_spec
from cnnkit.data.randaugment import OPS, RandAugment, TrivialAugment, _color_op


def _images(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 12, 12), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("name, tv", [
    ("Brightness", lambda x, m: TF.adjust_brightness(x, 1 + m)),
    ("Color", lambda x, m: TF.adjust_saturation(x, 1 + m)),
    ("Contrast", lambda x, m: TF.adjust_contrast(x, 1 + m)),
    ("Sharpness", lambda x, m: TF.adjust_sharpness(x, 1 + m)),
    ("Solarize", lambda x, m: TF.solarize(x, m)),
])
def test_colour_ops_match_torchvision_per_image(name, tv):
    x = _images(4).float() / 255
    mags = torch.tensor([0.3, -0.5, 0.7, 0.1] if name != "Solarize" else [0.2, 0.5, 0.8, 1.0])
    ours = _color_op(name, x, mags)
    for i in range(4):
        torch.testing.assert_close(ours[i], tv(x[i], float(mags[i])), atol=2e-6, rtol=0)


def test_posterize_keeps_the_top_bits_like_torchvision():
    x = _images(3)
    bits = torch.tensor([2.0, 4.0, 8.0])
    ours = _color_op("Posterize", x.float() / 255, bits)
    for i in range(3):
        torch.testing.assert_close(ours[i], TF.posterize(x[i], int(bits[i])).float() / 255)


@pytest.mark.parametrize("policy", [RandAugment(2, 9), TrivialAugment()])
def test_each_image_draws_its_own_op_and_the_seed_repeats_it(policy):
    same = _images(1).float().div(255).expand(32, -1, -1, -1).contiguous()
    out = policy(same, torch.Generator().manual_seed(0))
    assert out.shape == same.shape and out.min() >= 0 and out.max() <= 1
    distinct = {tuple(o.flatten()[:64].tolist()) for o in out}
    assert len(distinct) > 5           # torchvision on a batch would give one result for all
    again = policy(same, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, again)
    assert not torch.equal(out, policy(same, torch.Generator().manual_seed(1)))


def test_spec_keys_and_errors():
    aug = parse_augment_spec("flip,randaugment=1:5,erasing=0.25")
    assert aug.randaugment == (1, 5) and aug.erase == 0.25 and aug.active
    assert parse_augment_spec(aug.spec()) == aug
    assert parse_augment_spec("trivialaugment").trivialaugment
    with pytest.raises(ValueError, match="pick one"):
        parse_augment_spec("randaugment,trivialaugment")
    with pytest.raises(ValueError, match="magnitude"):
        parse_augment_spec("randaugment=2:40")
    assert len(OPS) == 14
