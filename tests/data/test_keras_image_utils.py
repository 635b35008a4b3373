"""keras.utils' single-image helpers (load_img, img_to_array, smart_resize, array_to_img)
against Keras 3.15.1's values on the same file (tests/golden/keras/data/image_utils.npz)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import cnnkit
from cnnkit.preprocessing import image

from keras_tree import build_keras_tree

KERAS = np.load(Path(__file__).resolve().parents[1] / "golden" / "keras" / "data"
                / "image_utils.npz")
SIZE = (12, 16)


@pytest.fixture(scope="module")
def path(tmp_path_factory) -> Path:
    return build_keras_tree(tmp_path_factory.mktemp("keras") / "tree") / "cat" / "cat_01.png"


def test_same_functions_at_keras_places():
    assert cnnkit.utils.load_img is image.load_img
    assert cnnkit.utils.img_to_array is image.img_to_array
    assert cnnkit.utils.array_to_img is image.array_to_img


def test_load_img_and_img_to_array_match_keras(path):
    arr = image.img_to_array(image.load_img(path, target_size=SIZE))
    assert arr.dtype == np.float32 and np.array_equal(arr, KERAS["load_img_nearest"])
    keep = image.img_to_array(image.load_img(path, target_size=SIZE, interpolation="bilinear",
                                             keep_aspect_ratio=True))
    assert np.abs(keep - KERAS["load_img_bilinear_keep"]).max() <= 1.0  # Pillow 12 vs 13
    grey = image.img_to_array(image.load_img(path, color_mode="grayscale"))
    assert np.array_equal(grey, KERAS["load_img_grey"])
    assert image.img_to_array(image.load_img(path), data_format="channels_first").shape[0] == 3


def test_smart_resize_and_array_to_img_match_keras(path):
    full = image.img_to_array(image.load_img(path))
    assert np.abs(image.smart_resize(full, SIZE) - KERAS["smart_resize"]).max() < 1e-3
    assert np.array_equal(np.asarray(image.array_to_img(full * 0.5 + 10)), KERAS["array_to_img"])


def test_bad_color_mode_is_one_clear_error(path):
    with pytest.raises(ValueError, match="color_mode must be"):
        image.load_img(path, color_mode="cmyk")
