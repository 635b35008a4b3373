"""Each Keras-named layer: output shape and parameter count against a hand count."""

import numpy as np
import pytest
import torch

import cnnkit
from cnnkit import layers
from cnnkit.layers import ShapeError


def build(layer, input_shape):
    """Build one layer inside a Sequential; returns (layer, output shape in Keras layout)."""
    model = cnnkit.Sequential([layers.Input(input_shape), layer])
    shape = model.output_shapes[-1]
    keras = (shape[1], shape[2], shape[0]) if len(shape) == 3 else shape
    return model, keras


@pytest.mark.parametrize("layer, in_shape, out_shape, params", [
    (lambda: layers.Conv2D(32, (3, 3)), (32, 32, 3), (30, 30, 32), 3 * 3 * 3 * 32 + 32),
    (lambda: layers.Conv2D(8, 5, padding="same"), (28, 28, 1), (28, 28, 8), 5 * 5 * 1 * 8 + 8),
    (lambda: layers.Conv2D(4, 3, strides=2, padding="same"), (7, 7, 2), (4, 4, 4), 3 * 3 * 2 * 4 + 4),
    (lambda: layers.Conv2D(4, 3, strides=2), (7, 7, 2), (3, 3, 4), 3 * 3 * 2 * 4 + 4),
    (lambda: layers.Conv2D(4, 3, use_bias=False), (6, 6, 2), (4, 4, 4), 3 * 3 * 2 * 4),
    (lambda: layers.MaxPooling2D((2, 2)), (13, 13, 64), (6, 6, 64), 0),
    (lambda: layers.MaxPooling2D(2, padding="same"), (13, 13, 64), (7, 7, 64), 0),
    (lambda: layers.AveragePooling2D(3, strides=1), (5, 5, 2), (3, 3, 2), 0),
    (lambda: layers.GlobalAveragePooling2D(), (7, 7, 16), (16,), 0),
    (lambda: layers.GlobalMaxPooling2D(), (7, 7, 16), (16,), 0),
    (lambda: layers.Flatten(), (6, 6, 64), (2304,), 0),
    (lambda: layers.Dense(64), (2304,), (64,), 2304 * 64 + 64),
    (lambda: layers.Dropout(0.5), (10,), (10,), 0),
    (lambda: layers.BatchNormalization(), (4, 4, 6), (4, 4, 6), 4 * 6),
    (lambda: layers.Activation("gelu"), (5,), (5,), 0),
    (lambda: layers.ReLU(max_value=6.0), (3, 3, 1), (3, 3, 1), 0),
    (lambda: layers.Rescaling(1 / 255), (3, 3, 1), (3, 3, 1), 0),
])
def test_layer_shape_and_params(layer, in_shape, out_shape, params):
    model, shape = build(layer(), in_shape)
    assert tuple(shape) == out_shape
    assert model.layers[0].count_params() == params
    # the declared shape is what a real forward pass produces
    x = torch.rand(2, *cnnkit.layers.keras_to_torch_shape(in_shape))
    model.eval()
    out = model.call(x)
    expected = cnnkit.layers.keras_to_torch_shape(out_shape)
    assert tuple(out.shape[1:]) == tuple(expected)


def test_same_padding_matches_tensorflow_rule():
    # TF pads the extra pixel at the end: a 2x2 kernel, stride 1, on a 3x3 ramp
    conv = layers.Conv2D(1, 2, padding="same", use_bias=False)
    model = cnnkit.Sequential([layers.Input((3, 3, 1)), conv])
    with torch.no_grad():
        conv.conv.weight.fill_(1.0)
    x = torch.arange(9.0).reshape(1, 1, 3, 3)
    out = model.call(x)[0, 0]
    # bottom-right output sees only the last pixel (8) plus zero padding
    assert out[2, 2].item() == 8.0
    assert out[0, 0].item() == 0 + 1 + 3 + 4


def test_average_pooling_same_excludes_padding():
    model = cnnkit.Sequential([layers.Input((3, 3, 1)), layers.AveragePooling2D(2, padding="same")])
    out = model.call(torch.ones(1, 1, 3, 3))
    assert torch.allclose(out, torch.ones_like(out))


def test_activations_by_name():
    x = torch.tensor([[-1.0, 0.0, 2.0]])
    expect = {
        "relu": [0, 0, 2], "linear": [-1, 0, 2], "tanh": np.tanh([-1, 0, 2]),
        "sigmoid": 1 / (1 + np.exp([1, 0, -2])), "elu": [np.exp(-1) - 1, 0, 2],
        "leaky_relu": [-0.2, 0, 2],
    }
    for name, want in expect.items():
        got = cnnkit.activations.get(name)(x)[0].numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, err_msg=name)
    sm = cnnkit.activations.get("softmax")(x)
    assert torch.allclose(sm.sum(), torch.tensor(1.0))
    for name in ("gelu", "selu"):
        assert cnnkit.activations.get(name)(x).shape == x.shape
    with pytest.raises(ValueError, match="valid names"):
        cnnkit.activations.get("swoosh")


def test_seed003_summary_matches_keras(capsys):
    model = cnnkit.Sequential([
        layers.Input((32, 32, 3)),
        layers.Conv2D(32, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
        layers.Flatten(), layers.Dense(64, activation="relu"), layers.Dense(10, activation="softmax"),
    ], name="simple-cnn")
    model.summary()
    text = capsys.readouterr().out
    assert 'Model: "simple-cnn"' in text
    rows = [line for line in text.splitlines() if line.startswith("│")]
    params = [row.split("│")[3].strip() for row in rows]
    assert params == ["896", "0", "18,496", "0", "0", "147,520", "650"]
    shapes = [row.split("│")[2].strip() for row in rows]
    assert shapes[0] == "(None, 30, 30, 32)" and shapes[-1] == "(None, 10)"
    assert "conv2d_1 (Conv2D)" in text and "max_pooling2d_1 (MaxPooling2D)" in text
    assert "Total params: 167,562 (654.54 KB)" in text
    assert "Trainable params: 167,562 (654.54 KB)" in text
    assert "Non-trainable params: 0 (0.00 B)" in text


def test_batchnorm_counts_moving_stats_as_non_trainable(capsys):
    model = cnnkit.Sequential([layers.Input((4, 4, 3)), layers.Conv2D(2, 1), layers.BatchNormalization()])
    model.summary()
    text = capsys.readouterr().out
    assert "Total params: 16 " in text          # conv 3*2+2=8, BN 4*2=8
    assert "Trainable params: 12 " in text      # BN gamma+beta trainable
    assert "Non-trainable params: 4 " in text   # moving mean + variance


def test_input_shape_on_first_layer_and_add():
    model = cnnkit.Sequential(name="m")
    model.add(layers.Conv2D(4, 3, activation="relu", input_shape=(10, 10, 1)))
    model.add(layers.Flatten())
    model.add(layers.Dense(2))
    assert model.output_shape == (2,)
    assert [layer.name for layer in model.layers] == ["conv2d", "flatten", "dense"]


def test_dense_on_unflattened_input_names_layer_and_shapes():
    with pytest.raises(ShapeError) as err:
        cnnkit.Sequential([layers.Input((28, 28, 1)), layers.Conv2D(4, 3), layers.Dense(10, name="head")])
    msg = str(err.value)
    assert "'head'" in msg and "(None, features)" in msg and "(None, 26, 26, 4)" in msg
    assert "Flatten" in msg


def test_conv_on_too_small_input_names_layer():
    with pytest.raises(ShapeError, match=r"conv2d_1.*\(None, 1, 1, 4\)"):
        cnnkit.Sequential([layers.Input((4, 4, 1)), layers.Conv2D(4, 3), layers.MaxPooling2D(2),
                           layers.Conv2D(4, 3)])


def test_facade_model_is_a_torch_module():
    model = cnnkit.Sequential([layers.Input((8, 8, 1)), layers.Flatten(), layers.Dense(3)])
    assert isinstance(model, torch.nn.Module)
    assert sum(p.numel() for p in model.parameters()) == 64 * 3 + 3
    assert set(model.state_dict()) == {"layers.1.linear.weight", "layers.1.linear.bias"}
    model.to("cpu").to(torch.float64).to(torch.float32)
    assert model(torch.zeros(1, 1, 8, 8)).shape == (1, 3)


def test_keras_transfer_pattern_saves_and_reloads(tmp_path, capsys):
    """ResNet base with trainable=False inside a Sequential, as the tutorial writes it."""
    base = cnnkit.applications.ResNet18(weights=None, include_top=False, input_shape=(32, 32, 3),
                                        pooling="avg")
    base.trainable = False
    model = cnnkit.Sequential([base, layers.Dense(8, activation="relu"),
                               layers.Dense(3, activation="softmax")])
    assert model.output_shape == (3,)
    model.summary()
    text = capsys.readouterr().out
    assert "Trainable params: 4,131 " in text  # 512*8+8 + 8*3+3
    assert "frozen (BatchNorm in inference mode)" in text
    model.save(tmp_path / "tl")
    again = cnnkit.load_model(tmp_path / "tl")
    x = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(again.predict(x), model.predict(x))
    assert again.layers[0].trainable is False


def test_batchnorm_layer_frozen_keeps_statistics():
    model = cnnkit.Sequential([layers.Input((4, 4, 2)), layers.BatchNormalization()])
    bn = model.layers[0]
    bn.trainable = False
    before = bn.bn.running_mean.clone()
    model.train()
    model(torch.rand(8, 2, 4, 4) + 5)
    assert torch.equal(bn.bn.running_mean, before)
