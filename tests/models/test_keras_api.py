"""Keras's model and layer API: weights in Keras's layouts, layer access, outputs as Keras
gives them, the module paths users import from."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import cnnkit
from cnnkit import layers


def small():
    return cnnkit.Sequential([
        cnnkit.Input((6, 6, 2)), layers.Conv2D(3, 3, name="conv"), layers.BatchNormalization(),
        layers.Flatten(), layers.Dense(4, name="fc")])


def test_layer_weights_in_keras_layouts_without_torch_buffers():
    model = small()
    conv, bn, _, fc = model.layers
    kernel, bias = conv.get_weights()
    assert kernel.shape == (3, 3, 2, 3)  # (kh, kw, in, out)
    np.testing.assert_array_equal(kernel, conv.conv.weight.detach().numpy().transpose(2, 3, 1, 0))
    assert [w.shape for w in fc.get_weights()] == [(4 * 4 * 3, 4), (4,)]  # (in, out)
    assert [v.name for v in bn.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert len(model.get_weights()) == 8  # no num_batches_tracked
    assert [v.name for v in bn.non_trainable_weights] == ["moving_mean", "moving_variance"]
    no_scale = layers.BatchNormalization(scale=False, center=False)
    no_scale.build((3,))
    assert [v.name for v in no_scale.weights] == ["moving_mean", "moving_variance"]


def test_set_weights_round_trip_kernel_and_bias_views():
    model = small()
    conv = model.get_layer("conv")
    new = [np.full(w.shape, i + 1, np.float32) for i, w in enumerate(model.get_weights())]
    model.set_weights(new)
    for got, want in zip(model.get_weights(), new):
        np.testing.assert_array_equal(got, want)
    assert conv.kernel.shape == (3, 3, 2, 3) and np.asarray(conv.kernel).mean() == 1
    conv.bias.assign(np.zeros(3, np.float32))
    assert torch.equal(conv.conv.bias, torch.zeros(3))
    with pytest.raises(ValueError, match="expects 2 weights"):
        conv.set_weights([np.zeros((3, 3, 2, 3))])
    with pytest.raises(ValueError, match=r"Keras shape \(3, 3, 2, 3\)"):
        conv.set_weights([np.zeros((3, 2, 3, 3)), np.zeros(3)])


def test_frozen_layers_move_to_non_trainable_weights():
    model = small()
    model.get_layer("conv").trainable = False
    names = [v.path for v in model.non_trainable_weights]
    assert names[:2] == ["sequential/conv/kernel", "sequential/conv/bias"]
    assert [v.path for v in model.trainable_weights] == [
        "sequential/batch_normalization/gamma", "sequential/batch_normalization/beta",
        "sequential/fc/kernel", "sequential/fc/bias"]


def test_flatten_is_channels_last_so_a_dense_kernel_is_keras_s():
    x = np.arange(2 * 2 * 2 * 3, dtype=np.float32).reshape(2, 2, 2, 3)  # NHWC
    model = cnnkit.Sequential([cnnkit.Input((2, 2, 3)), layers.Flatten()])
    np.testing.assert_array_equal(model.predict(x), x.reshape(2, -1))  # Keras's order
    legacy = cnnkit.layers.layer_from_config("Flatten", {"name": "flatten"})
    assert legacy.data_format == "channels_first"  # models saved before keep their order


def test_get_layer_pop_and_counts():
    model = small()
    assert model.get_layer(index=-1).name == "fc"
    with pytest.raises(ValueError, match="no such layer: 'nope'"):
        model.get_layer("nope")
    with pytest.raises(ValueError, match="index 9"):
        model.get_layer(index=9)
    assert model.count_params() == (3 * 3 * 2 * 3 + 3) + 4 * 3 + (48 * 4 + 4)
    popped = model.pop()
    assert popped.name == "fc" and model.output_shape == (48,)
    model.add(layers.Dense(2))
    assert model.predict(np.zeros((1, 6, 6, 2), np.float32)).shape == (1, 2)


def test_predict_returns_what_the_model_computes():
    rng = np.random.default_rng(0)
    x = rng.random((5, 6, 6, 2), dtype=np.float32)
    logits_model = small()
    out = logits_model.predict(x)
    np.testing.assert_allclose(out, logits_model(x).numpy(), rtol=1e-6)  # no softmax added
    assert not np.allclose(out.sum(axis=1), 1)
    np.testing.assert_allclose(logits_model.predict_proba(x).sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(logits_model.predict_on_batch(x), out, rtol=1e-6)
    image_model = cnnkit.Sequential([cnnkit.Input((6, 6, 2)), layers.Conv2D(4, 1)])
    assert image_model.predict(x).shape == (5, 6, 6, 4)  # channels-last, as its input
    assert tuple(image_model(x).shape) == (5, 6, 6, 4)


def test_keras_module_paths_exist(tmp_path):
    model = small()
    model.save(tmp_path / "m")
    assert isinstance(cnnkit.models.load_model(tmp_path / "m"), cnnkit.Sequential)
    assert isinstance(cnnkit.saving.load_model(tmp_path / "m"), cnnkit.models.Sequential)
    assert cnnkit.models.Model is cnnkit.Model
    assert cnnkit.backend.image_data_format() == "channels_last"
    cnnkit.backend.clear_session()


def test_plot_model_draws_a_png_without_graphviz(tmp_path):
    inp = cnnkit.Input((6, 6, 2))
    a = layers.Conv2D(2, 1)(inp)
    out = layers.Dense(2)(layers.Flatten()(layers.Concatenate()([a, inp])))
    path = cnnkit.utils.plot_model(cnnkit.Model(inp, out), tmp_path / "g.png", show_shapes=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from cnnkit.models.plot import graph_of
    layers_, edges, _ = graph_of(cnnkit.Model(inp, out))
    names = [layer.name for layer in layers_]
    assert (names.index("input_layer"), names.index("concatenate")) in edges


def test_feature_model_from_layer_outputs_as_in_the_grad_cam_tutorial():
    model = small()
    x = np.random.default_rng(0).random((3, 6, 6, 2), dtype=np.float32)
    grad_model = cnnkit.Model(model.inputs, [model.get_layer("conv").output, model.output])
    maps, preds = grad_model.predict(x)
    assert maps.shape == (3, 4, 4, 3)  # channels-last, as Keras
    np.testing.assert_allclose(preds, model.predict(x), rtol=1e-6)
    assert model.get_layer("conv").input is model.input
    with pytest.raises(AttributeError, match="output"):
        layers.Dense(2).output  # noqa: B018


def test_keras_mnist_convnet_weights_give_keras_outputs():
    """Keras's "Simple MNIST convnet" (BatchNorm added): Keras's get_weights copied in, the
    Dense after Flatten included, gives Keras's probabilities."""
    from keras_twins import BUILDERS, inputs_of, layouts, recorded, weights_of
    model, rec, want = BUILDERS["sequential"](), recorded("sequential"), layouts()["sequential"]
    assert [list(w.shape) for w in model.get_weights()] == want["weights"]
    assert [layer.name for layer in model.layers] == want["layers"]
    assert model.count_params() == want["count_params"]
    model.set_weights(weights_of(rec))
    np.testing.assert_allclose(model.predict(inputs_of(rec)), rec["out"], rtol=1e-5, atol=1e-5)


def test_layer_input_and_output_shapes_in_keras_terms():
    model = small()
    conv, _, flat, fc = model.layers
    assert conv.input_shape == (None, 6, 6, 2) and conv.output_shape == (None, 4, 4, 3)
    assert flat.output_shape == (None, 48) and fc.output_shape == (None, 4)
    with pytest.raises(AttributeError):
        layers.Dense(2).input_shape  # noqa: B018 - not built
