"""ImageDataGenerator / from_keras_generator_args: migrating tutorial code."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnkit.data.augment import Augment, DataFlow, ImageDataGenerator, from_keras_generator_args


@pytest.fixture
def xy():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8), np.arange(10) % 3


def test_tutorial_arguments_map_to_augment():
    aug = from_keras_generator_args(rotation_range=20, width_shift_range=0.2,
                                    height_shift_range=0.1, horizontal_flip=True,
                                    zoom_range=0.15)
    assert isinstance(aug, Augment)
    assert aug.flip == "horizontal" and aug.rotate == 20 and aug.shift == (0.1, 0.2)
    assert aug.zoom == 0.15 and aug.fill_mode == "nearest" and not aug.isotropic_zoom
    assert from_keras_generator_args(width_shift_range=3, height_shift_range=3).shift == 2
    assert from_keras_generator_args(zoom_range=[0.8, 1.2]).zoom == (0.8, 1.2)
    assert from_keras_generator_args(vertical_flip=True, horizontal_flip=True).flip == "both"
    pixel = from_keras_generator_args(channel_shift_range=51, cval=255, fill_mode="constant")
    assert pixel.channel_shift == pytest.approx(0.2) and pixel.fill_value == pytest.approx(1.0)
    with pytest.raises(TypeError, match="unsupported"):
        from_keras_generator_args(spin=True)


def test_flow_carries_what_fit_needs(xy):
    x, y = xy
    flow = ImageDataGenerator(rotation_range=10, horizontal_flip=True).flow(
        x, y, batch_size=4, seed=1)
    assert isinstance(flow, DataFlow)
    assert flow.x is x and flow.y is y and flow.batch_size == 4
    assert isinstance(flow.augment, Augment) and len(flow) == 3
    xs, ys, bs, aug = flow.flow_spec(None, None)
    assert xs is x and ys is y and bs == 4 and aug is flow.augment
    extra = Augment(cutout=2)
    _, _, _, both = flow.flow_spec(32, extra)
    out = both(torch.rand(2, 3, 8, 8), torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, 8, 8)
    assert ImageDataGenerator().flow(x, y).augment is None  # nothing to do


def test_iterating_gives_keras_batches(xy):
    x, y = xy
    flow = ImageDataGenerator(horizontal_flip=True).flow(x, y, batch_size=4, shuffle=False)
    xb, yb = next(flow)
    assert xb.shape == (4, 8, 8, 3) and xb.dtype == np.float32
    assert np.array_equal(yb, y[:4])
    for i in range(4):  # raw 0..255 values, flipped or not
        assert np.allclose(xb[i], x[i]) or np.allclose(xb[i], x[i][:, ::-1])
    next(flow)
    xb3, _ = next(flow)
    assert len(xb3) == 2  # the last, short batch
    scaled = ImageDataGenerator(rescale=1 / 255).flow(x, y, batch_size=10, shuffle=False)
    assert scaled.x is x  # uint8 kept: the model scales by 1/255 the same way
    assert np.allclose(next(scaled)[0], x / 255.0, atol=1e-6)


def test_rescale_of_float_or_unusual_factor_is_applied_up_front(xy):
    x, y = xy
    f = ImageDataGenerator(rescale=1 / 255).flow(x.astype(np.float32), y)
    assert f.x.dtype == np.float32 and float(f.x.max()) <= 1.0
    g = ImageDataGenerator(rescale=1 / 127.5).flow(x, y)
    assert g.x.dtype == np.float32 and float(g.x.max()) <= 2.0


def test_validation_split_subsets_like_keras(xy):
    x, y = xy
    gen = ImageDataGenerator(validation_split=0.3)
    train = gen.flow(x, y, subset="training")
    val = gen.flow(x, y, subset="validation")
    assert len(val.x) == 3 and len(train.x) == 7
    assert np.array_equal(val.x, x[:3]) and np.array_equal(train.y, y[3:])
    with pytest.raises(ValueError, match="validation_split"):
        ImageDataGenerator().flow(x, y, subset="training")


def test_normalisation_arguments_point_to_preprocess():
    for kw in ("featurewise_center", "samplewise_std_normalization", "zca_whitening"):
        with pytest.raises(NotImplementedError, match="Preprocess"):
            ImageDataGenerator(**{kw: True})
    with pytest.raises(NotImplementedError, match="augment"):
        ImageDataGenerator(preprocessing_function=lambda im: im)


def test_flow_from_directory(image_folder):
    gen = ImageDataGenerator(rescale=1 / 255, horizontal_flip=True, validation_split=0.5)
    flow = gen.flow_from_directory(image_folder, target_size=(6, 6), batch_size=2,
                                   subset="training", seed=0)
    assert flow.class_indices == {"cat": 0, "dog": 1} and flow.batch_size == 2
    assert flow.dataset.images.shape == (5, 3, 6, 6)
    x, y, bs, aug = flow.flow_spec(None, None)
    assert x is flow.dataset and y is None and aug is flow.augment
    xb, yb = next(flow)
    assert xb.shape == (2, 6, 6, 3) and float(xb.max()) <= 1.0


def test_random_transform_one_image():
    img = np.random.default_rng(1).integers(0, 256, (8, 8, 3)).astype(np.float32)
    out = ImageDataGenerator(rotation_range=30, width_shift_range=0.1).random_transform(img, 3)
    assert out.shape == (8, 8, 3) and not np.allclose(out, img)
    again = ImageDataGenerator(rotation_range=30, width_shift_range=0.1).random_transform(img, 3)
    assert np.allclose(out, again)
