"""``summary()`` against the text real Keras 3 printed for the same models (recorded at its
default width and on an 80-column terminal by scripts/keras_golden/models.py)."""

from __future__ import annotations

import pytest

import cnnkit
from cnnkit.models.summary import summary_text

from keras_twins import BUILDERS, GOLDEN

EXACT = ["residual", "two_branch", "two_inputs", "bn_train", "sequential"]
WIDTHS = {"wide": "200", "76": "80"}  # the terminal width each was recorded at


@pytest.fixture(params=sorted(WIDTHS))
def width(request, monkeypatch):
    monkeypatch.setenv("COLUMNS", WIDTHS[request.param])
    return request.param


@pytest.mark.parametrize("name", EXACT)
def test_summary_text_is_keras_s(name, width):
    want = (GOLDEN / f"summary_{name}_{width}.txt").read_text().rstrip("\n")
    assert summary_text(BUILDERS[name]()) == want


def test_shared_layer_and_nested_model_rows(width):
    # Keras numbers layer names per session, cnnkit per model: only those names differ.
    want = (GOLDEN / f"summary_shared_{width}.txt").read_text().rstrip("\n")
    assert summary_text(BUILDERS["shared"]()) == want.replace("conv2d_1 (Conv2D)", "conv2d (Conv2D)  ")
    want = (GOLDEN / f"summary_nested_{width}.txt").read_text().rstrip("\n")
    assert summary_text(BUILDERS["nested"]()) == want.replace("input_layer_1 (InputLayer)",
                                                                 "input_layer (InputLayer)  ")


def test_long_names_wrap_instead_of_being_cut(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    inp = cnnkit.Input((4, 4, 3))
    out = cnnkit.layers.BatchNormalization(name="a_rather_long_name_for_a_batchnorm")(inp)
    text = summary_text(cnnkit.Model(inp, out, name="m"))
    assert "│ a_rather_long_name_for_a_batchnorm   │" in text
    assert "│ (BatchNormalization)                 │" in text


def test_zoo_network_in_keras_names_and_channels_last(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    model = cnnkit.models.create("simple-cnn", num_classes=10, input_shape=(32, 32, 3))
    text = summary_text(model)
    assert "conv2d (Conv2D)" in text and "(None, 30, 30, 32)" in text
    assert "max_pooling2d_1 (MaxPooling2D)" in text and "(None, 6, 6, 64)" in text
    assert "dense_1 (Dense)" in text and "features." not in text and "Linear" not in text
    assert "Total params: 167,562 (654.54 KB)" in text


def test_line_length_argument_sets_the_width():
    text = summary_text(BUILDERS["sequential"](), line_length=100)
    assert max(len(line) for line in text.splitlines()) == 100


def test_show_trainable_and_the_optimizer_line_after_a_step(width):
    import numpy as np
    model = BUILDERS["sequential"]()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert "Optimizer params" not in summary_text(model)  # Keras: none before the first step
    model.fit(np.zeros((4, 28, 28, 1), np.float32), np.arange(4), batch_size=4, verbose=0)
    want = (GOLDEN / f"summary_sequential_trainable_{width}.txt").read_text().rstrip("\n")
    assert summary_text(model, show_trainable=True) == want
    want = (GOLDEN / f"summary_nested_trainable_{width}.txt").read_text().rstrip("\n")
    got = summary_text(BUILDERS["nested"](), show_trainable=True)
    assert got == want.replace("input_layer_1 (InputLayer)", "input_layer (InputLayer)  ")


def test_expand_nested_lists_the_inner_layers(width):
    for name, renamed in (("nested", ("input_layer_1 (InputLayer)", "input_layer (InputLayer)  ")),
                          ("shared", ("conv2d_1 (Conv2D)", "conv2d (Conv2D)  "))):
        want = (GOLDEN / f"summary_{name}_expanded_{width}.txt").read_text().rstrip("\n")
        got = summary_text(BUILDERS[name](), expand_nested=True)
        assert got == want.replace(*renamed)  # names per model: the only difference
    want = (GOLDEN / f"summary_shared_trainable_{width}.txt").read_text().rstrip("\n")
    assert summary_text(BUILDERS["shared"](), show_trainable=True) == want.replace(
        "conv2d_1 (Conv2D)", "conv2d (Conv2D)  ")


def test_layer_range_picks_rows_by_name(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    text = summary_text(BUILDERS["sequential"](), layer_range=("conv2d_1", "flatten"))
    rows = [line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│ ")]
    assert rows == ["conv2d_1 (Conv2D)", "max_pooling2d_1 (MaxPooling2D)", "flatten (Flatten)"]
    assert "Total params: 34,954" in text  # totals stay the whole model's, as in Keras
    with pytest.raises(ValueError, match="matches no layer name"):
        summary_text(BUILDERS["sequential"](), layer_range=("nope", "dense"))


def test_a_sequential_without_input_shape_prints_unbuilt_rows(width):
    model = cnnkit.Sequential([cnnkit.layers.Conv2D(4, 3), cnnkit.layers.Flatten(),
                               cnnkit.layers.Dense(2)], name="unbuilt")
    want = (GOLDEN / f"summary_unbuilt_sequential_{width}.txt").read_text().rstrip("\n")
    assert summary_text(model) == want
