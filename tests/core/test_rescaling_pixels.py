"""A Rescaling layer before the first weighted layer means "feed me raw pixels" (issue 13 item 12).

The Keras tutorial puts augmentation layers first: ``RandomFlip -> Rescaling(1/255) -> Conv2D``.
cnnkit must then not apply its own 1/255 to uint8 input as well (it did: the check matched a
module name), and must give Keras's numbers for the same weights.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

import cnnkit
from cnnkit import layers

GOLDEN = Path(__file__).resolve().parents[1] / "golden/keras/trust-checks/rescaling_after_augmentation.npz"


def _tutorial_model():
    return cnnkit.Sequential([
        layers.Input((8, 8, 3)), layers.RandomFlip("horizontal"), layers.RandomRotation(0.1),
        layers.Rescaling(1.0 / 255), layers.Conv2D(4, 3, activation="relu"),
        layers.GlobalAveragePooling2D(), layers.Dense(3, activation="softmax"),
    ])


def test_rescaling_after_augmentation_matches_keras():
    g = np.load(GOLDEN)
    model = _tutorial_model()
    conv, dense = model.layers[3], model.layers[5]
    with torch.no_grad():
        conv.conv.weight.copy_(torch.from_numpy(g["conv_kernel"]).permute(3, 2, 0, 1))  # HWIO -> OIHW
        conv.conv.bias.copy_(torch.from_numpy(g["conv_bias"]))
        dense.linear.weight.copy_(torch.from_numpy(g["dense_kernel"]).T)
        dense.linear.bias.copy_(torch.from_numpy(g["dense_bias"]))
    assert g["x"].dtype == np.uint8
    np.testing.assert_allclose(model.predict(g["x"]), g["probs"], rtol=1e-4, atol=1e-5)
    # float 0..255 pixels (what Keras's image_dataset_from_directory yields) agree as well
    np.testing.assert_allclose(model.predict(g["x"].astype(np.float32)), g["probs"],
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("before", [
    [], [layers.RandomFlip("horizontal")], [layers.RandomZoom(0.1), layers.RandomFlip()],
    [layers.Dropout(0.1)],
])
def test_rescaling_before_any_weights_switches_off_the_automatic_scale(before):
    model = cnnkit.Sequential([layers.Input((8, 8, 3)), *before, layers.Rescaling(1 / 255),
                               layers.Conv2D(2, 3)])
    assert model.preprocess.scale == 1.0


def test_rescaling_before_weights_is_seen_without_an_input_shape():
    """Unbuilt layers have no parameters yet; a Conv2D still counts as weighted."""
    late = cnnkit.Sequential([layers.Conv2D(2, 3), layers.Rescaling(1 / 255)])
    assert late.preprocess.scale == pytest.approx(1 / 255)
    early = cnnkit.Sequential([layers.RandomFlip(), layers.Rescaling(1 / 255), layers.Conv2D(2, 3)])
    assert early.preprocess.scale == 1.0


def test_rescaling_after_a_weighted_layer_keeps_the_automatic_scale():
    model = cnnkit.Sequential([layers.Input((8, 8, 3)), layers.Conv2D(2, 3),
                               layers.Rescaling(2.0), layers.Flatten(), layers.Dense(2)])
    assert model.preprocess.scale == pytest.approx(1 / 255)


def test_saved_tutorial_model_keeps_raw_pixel_input(tmp_path):
    model = _tutorial_model()
    model.save(tmp_path / "m")
    loaded = cnnkit.load_model(tmp_path / "m")
    assert loaded.preprocess.scale == 1.0
    x = np.random.default_rng(1).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    np.testing.assert_allclose(loaded.predict(x), model.predict(x), rtol=1e-5, atol=1e-6)
