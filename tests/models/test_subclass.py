"""Subclassed models (``class Net(cnnkit.Model)`` with ``call(x, training=False)``) against
real Keras 3: same weights, same outputs and the same training step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import cnnkit
from cnnkit import layers

from keras_twins import GOLDEN, Net, layouts, recorded, weights_of


def test_keras_weights_give_keras_outputs_and_training_step():
    rec = recorded("subclassed")
    model = Net(name="net")
    model.build((None, 9, 9, 3))
    assert [layer.name for layer in model.layers] == layouts()["subclassed"]["layers"]
    assert [list(w.shape) for w in model.get_weights()] == layouts()["subclassed"]["weights"]
    model.set_weights(weights_of(rec))
    np.testing.assert_allclose(model.predict(rec["x0"]), rec["out"], rtol=1e-5, atol=1e-6)
    model.drop.dropout.p = 0.0  # the recorded step ran with rate 0 (deterministic)
    model.compile(optimizer=cnnkit.optimizers.SGD(learning_rate=0.1),
                  loss=cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True))
    hist = model.fit(rec["x0"], rec["y"], batch_size=4, epochs=1, shuffle=False, verbose=0)
    assert hist.history["loss"][0] == pytest.approx(float(rec["loss"]), rel=1e-5)
    for got, want in zip(model.get_weights(), weights_of(rec, "after")):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_compile_before_any_weight_exists_then_fit(tiny_images):
    x, y = tiny_images
    cnnkit.utils.set_random_seed(0)
    model = Net()
    assert not list(model.parameters())
    model.compile(optimizer="adam", loss=cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])  # used to fail: "optimizer got an empty parameter list"
    hist = model.fit(x, y % 3, epochs=8, batch_size=16, verbose=0)
    assert list(model.parameters()) and model.optimizer is not None
    n_trained = sum(len(g["params"]) for g in model.optimizer.param_groups)
    assert n_trained == len(list(model.parameters())) == 6  # conv, BN, head: weights + biases
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    assert model.evaluate(x, y % 3, verbose=0, return_dict=True)["accuracy"] >= 0
    assert model.predict(x[:5]).shape == (5, 3)


class Recorder(cnnkit.Model):
    def __init__(self):
        super().__init__()
        self.seen = []
        self.flat = layers.Flatten()
        self.blocks = [layers.Dense(4, activation="relu"), layers.Dense(2)]  # a list: tracked

    def call(self, x, training=False):
        self.seen.append(training)
        x = self.flat(x)
        for block in self.blocks:
            x = block(x)
        return x


def test_training_reaches_call_and_layer_lists_are_tracked(tiny_images):
    x, y = tiny_images
    model = Recorder()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(x, y % 2, epochs=1, batch_size=32, verbose=0)
    model.seen.clear()
    model.fit(x, y % 2, epochs=1, batch_size=32, verbose=0)
    assert model.seen == [True, True]
    model.seen.clear()
    model.predict(x[:4])
    model.evaluate(x[:4], y[:4] % 2, verbose=0)
    assert model.seen and not any(model.seen)
    assert [layer.name for layer in model.layers] == ["flatten", "dense", "dense_1"]
    assert len(model.get_weights()) == 4  # both Dense layers of the list


def test_layer_training_argument_switches_mode_for_that_call():
    bn = layers.BatchNormalization()
    x = torch.randn(8, 3, 4, 4) * 3 + 1
    bn.eval()
    bn(x, training=True)  # Keras: batch statistics, moving averages updated
    assert not torch.allclose(bn.bn.running_mean, torch.zeros(3))
    assert not bn.training  # the layer's own mode is back
    before = bn.bn.running_mean.clone()
    bn.train()
    bn(x, training=False)
    assert torch.equal(bn.bn.running_mean, before)


def test_build_rejects_a_shape_without_batch_axis_or_of_wrong_rank():
    with pytest.raises(ValueError, match=r"build\(\(None, 28, 28, 1\)\)"):
        Net().build((None, 9, 9))


def test_summary_lists_layers_with_keras_names_and_counts(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    model = Net(name="net")
    model.build((None, 9, 9, 3))
    model.summary()
    text = capsys.readouterr().out
    want = (GOLDEN / "summary_subclassed_76.txt").read_text()

    def cells(t, col):
        return [r.split("│")[col].strip() for r in t.splitlines() if r.startswith("│")]
    assert cells(text, 1) == cells(want, 1)  # names (wrapped as Keras wraps them)
    assert cells(text, 3) == cells(want, 3)  # Param #
    # Keras shows '?' or (1, ...) for a subclassed model; cnnkit traces (None, ...) shapes
    assert "(None, 7, 7, 4)" in text
    assert text.splitlines()[-3:] == want.splitlines()[-3:]  # totals


def test_summary_before_build_says_unbuilt_as_keras_does(capsys):
    Net(name="net").summary()
    text = capsys.readouterr().out
    assert "conv2d (Conv2D)" in text and "0 (unbuilt)" in text and "?" in text
    assert "Total params: 0 (0.00 B)" in text


class FunctionalInside(cnnkit.Model):
    """Keras also lets a subclass build a graph and hand it to super().__init__."""

    def __init__(self, units=3):
        inp = cnnkit.Input((4,))
        super().__init__(inp, layers.Dense(units)(layers.Dense(5, activation="relu")(inp)))


def test_subclass_that_passes_a_graph_to_super_init_is_functional():
    a, b = FunctionalInside(), FunctionalInside(2)
    assert isinstance(a, FunctionalInside) and isinstance(a, cnnkit.models.Functional)
    assert type(a) is type(b) and a.name == "functional_inside"
    assert b.predict(np.ones((2, 4), np.float32)).shape == (2, 2)
    assert [layer.name for layer in a.layers] == ["input_layer", "dense", "dense_1"]


class BuildsItsLayers(cnnkit.Model):
    """Keras's other subclassing style: layers made in build(input_shape)."""

    def build(self, input_shape):
        self.flat = layers.Flatten()
        self.head = layers.Dense(input_shape[-1] + 1)

    def call(self, x):
        return self.head(self.flat(x))


def test_a_subclass_build_method_runs_once_with_the_data_shape(tiny_images):
    x, y = tiny_images
    model = BuildsItsLayers()
    model.compile(optimizer="adam", loss=cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    assert model.head.units == 4 and model.get_weights()[0].shape == (8 * 8 * 3, 4)
    assert model.optimizer is not None and model.predict(x[:2]).shape == (2, 4)
