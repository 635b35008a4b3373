"""Keras augmentation layers: training-only, Keras factor semantics, config round trips."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from cnnkit.data.augment import (RandomBrightness, RandomContrast, RandomFlip, RandomRotation,
                                 RandomTranslation, RandomZoom)

LAYERS = [
    (RandomFlip, {"mode": "horizontal"}),
    (RandomFlip, {}),
    (RandomRotation, {"factor": 0.1}),
    (RandomTranslation, {"height_factor": 0.2, "width_factor": (-0.1, 0.3)}),
    (RandomZoom, {"height_factor": 0.2}),
    (RandomZoom, {"height_factor": (-0.3, -0.1), "width_factor": 0.2, "fill_mode": "constant"}),
    (RandomContrast, {"factor": 0.5}),
    (RandomBrightness, {"factor": 0.2}),
]


def ramp(n=2, c=3, h=6, w=6):
    return (torch.arange(n * c * h * w, dtype=torch.float32).view(n, c, h, w) % 17) / 17


@pytest.mark.parametrize("cls,kwargs", LAYERS)
def test_identity_in_eval_random_in_train(cls, kwargs):
    layer = cls(**kwargs, seed=1)
    x = ramp(8)
    layer.eval()
    assert layer(x) is x
    layer.train()
    y = layer(x)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert not torch.equal(y, x)


@pytest.mark.parametrize("cls,kwargs", LAYERS)
def test_config_round_trip_and_shapes(cls, kwargs):
    layer = cls(**kwargs, seed=3)
    config = layer.get_config()
    again = type(layer)(**config)
    assert again.get_config() == config
    assert layer.compute_output_shape((None, 32, 32, 3)) == (None, 32, 32, 3)
    assert list(layer.state_dict()) == []  # nothing to save but the config
    x = ramp(4)
    assert torch.equal(layer.train()(x), again.train()(x))  # same seed, same draw


@pytest.mark.parametrize("cls,kwargs", LAYERS)
def test_deepcopy_and_seed_reproducibility(cls, kwargs):
    layer = cls(**kwargs, seed=7).train()
    x = ramp(4)
    layer(x)  # the generator has state now
    twin = copy.deepcopy(layer)
    assert torch.equal(layer(x), twin(x))


def test_random_flip_horizontal_only_flips_left_right():
    x = ramp(32)
    y = RandomFlip("horizontal", seed=0).train()(x)
    for i in range(32):
        assert torch.equal(y[i], x[i]) or torch.equal(y[i], x[i].flip(-1))
    with pytest.raises(ValueError, match="mode"):
        RandomFlip("diagonal")


def test_rotation_factor_is_a_fraction_of_a_turn_counter_clockwise():
    x = ramp(2, 1, 5, 5)
    y = RandomRotation((0.25, 0.25), fill_mode="constant", seed=0).train()(x)
    assert torch.allclose(y, torch.rot90(x, 1, dims=(-2, -1)), atol=1e-3)


def test_translation_factor_is_a_fraction_positive_down_right():
    x = ramp(1, 1, 4, 8)
    y = RandomTranslation((0.25, 0.25), (0.125, 0.125), fill_mode="constant",
                          seed=0).train()(x)
    expected = torch.zeros_like(x)
    expected[..., 1:, 1:] = x[..., :-1, :-1]  # one row down, one column right
    assert torch.allclose(y, expected, atol=1e-4)


def test_zoom_negative_zooms_in_positive_zooms_out():
    x = torch.ones(1, 1, 8, 8)
    out = RandomZoom((1.0, 1.0), fill_mode="constant", seed=0).train()(x)  # scale 2: out
    assert float(out[..., 0, :].abs().max()) == 0 and float(out[..., 4, 4]) == 1
    x = ramp(1, 1, 4, 4)
    zin = RandomZoom((-0.5, -0.5), interpolation="nearest", seed=0).train()(x)
    centre = x[..., 1:3, 1:3]
    assert torch.equal(zin, centre.repeat_interleave(2, -1).repeat_interleave(2, -2))


def test_zoom_width_factor_none_keeps_aspect():
    x = torch.zeros(16, 1, 9, 9)
    x[:, :, 4, :] = 1.0  # a horizontal line through the middle
    y = RandomZoom(0.3, seed=2, interpolation="nearest").train()(x)
    # isotropic zoom about the centre keeps the line horizontal and in row 4
    assert torch.equal(y[:, :, 4, 4], torch.ones(16, 1))


def test_contrast_and_brightness_bounds():
    x = torch.rand(32, 3, 6, 6)
    y = RandomContrast(0.5, seed=0).train()(x)
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    b = RandomBrightness((0.1, 0.1), seed=0).train()(torch.full((2, 3, 2, 2), 0.5))
    assert torch.allclose(b, torch.full_like(b, 0.6))
    with pytest.raises(ValueError):
        RandomBrightness(1.5)
    with pytest.raises(ValueError):
        RandomContrast(-0.1)
    c255 = RandomBrightness((0.1, 0.1), value_range=(0, 255), seed=0).train()(
        torch.full((1, 1, 2, 2), 100.0))
    assert torch.allclose(c255, torch.full_like(c255, 125.5))


def test_layers_inside_a_model_follow_train_and_eval():
    model = nn.Sequential(RandomFlip("horizontal", seed=0), RandomRotation(0.05, seed=1),
                          nn.Flatten())
    x = ramp(4)
    model.eval()
    assert torch.equal(model(x), x.flatten(1))
    model.train()
    assert not torch.equal(model(x), x.flatten(1))


def test_unseeded_layers_use_the_global_generator():
    layer = RandomRotation(0.2).train()
    x = ramp(4)
    torch.manual_seed(5)
    a = layer(x)
    torch.manual_seed(5)
    assert torch.equal(a, layer(x))


def test_bad_factors_are_refused():
    with pytest.raises(ValueError, match="lower bound"):
        RandomRotation((0.3, 0.1))
    with pytest.raises(ValueError, match="fill_mode"):
        RandomZoom(0.1, fill_mode="mirror")
