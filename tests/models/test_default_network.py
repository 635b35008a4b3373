"""The default network for the bundled digits is defined once: the zoo's ``mnist-2conv``,
built as Keras builds it, weight for weight what ``cnnkit.Sequential`` makes of the Keras
tutorial's layers with the same seed (so the bundled run's numbers did not change)."""

from __future__ import annotations

import torch

import cnnkit
from cnnkit import layers
from cnnkit.models.saving import load_model
from cnnkit.run.build import default_model


def _keras_tutorial():
    return cnnkit.Sequential([
        layers.Input((28, 28, 1)),
        layers.Conv2D(32, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
        layers.Flatten(), layers.Dense(128, activation="relu"),
        layers.Dense(10, activation="softmax")])


def test_default_network_is_the_zoo_entry_weight_for_weight_the_keras_one(tmp_path):
    torch.manual_seed(0)
    ours = default_model()
    torch.manual_seed(0)
    keras = _keras_tutorial()
    assert ours.architecture["name"] == "mnist-2conv"
    assert ours.architecture["kwargs"]["keras"] is True
    assert ours.count_params() == keras.count_params() == 225_034
    for a, b in zip(keras.state_dict().values(), ours.state_dict().values()):
        assert torch.equal(a, b)
    x = torch.rand(8, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.equal(keras.forward_logits(x), ours(x))  # the same flatten order
        ours.save(tmp_path / "m")
        again = load_model(tmp_path / "m")  # rebuilt from its record: still Keras's order
        assert torch.equal(again(x), ours(x))
