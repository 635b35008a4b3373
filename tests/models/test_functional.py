"""The functional API against real Keras 3 (values recorded by scripts/keras_golden/models.py):
same weights in Keras's layouts give the same outputs; the graph trains, saves, exports."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import cnnkit
from cnnkit import layers
from cnnkit.layers import ShapeError
from cnnkit.models.functional import Functional, GraphError

from keras_twins import BUILDERS, inputs_of, layouts, recorded, weights_of

GRAPH_MODELS = ["residual", "two_branch", "two_inputs", "shared", "bn_train", "nested"]


@pytest.mark.parametrize("name", GRAPH_MODELS)
def test_keras_weights_give_keras_outputs(name):
    model = BUILDERS[name]()
    rec = recorded(name)
    assert isinstance(model, Functional)
    model.set_weights(weights_of(rec))
    out = model.predict(inputs_of(rec))
    assert out.shape == rec["out"].shape  # image outputs channels-last, as Keras gives them
    np.testing.assert_allclose(out, rec["out"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", GRAPH_MODELS)
def test_get_weights_layouts_count_and_layer_order_match_keras(name):
    model = BUILDERS[name]()
    want = layouts()[name]
    assert [list(w.shape) for w in model.get_weights()] == want["weights"]
    assert model.count_params() == want["count_params"]
    names = [layer.name for layer in model.layers]
    if name == "shared":  # Keras numbers names per session: its inner Conv2D took "conv2d"
        assert names[:-1] == want["layers"][:-1] and names[-1] == "conv2d"
    elif name == "nested":  # ... and the base model's Input took "input_layer"
        assert names[1:] == want["layers"][1:]
    else:
        assert names == want["layers"]
    assert len(model.non_trainable_weights) == len(want["non_trainable"])
    assert len(model.trainable_weights) == len(want["trainable"])


def test_a_training_step_with_batchnorm_matches_keras():
    rec = recorded("bn_train")
    model = BUILDERS["bn_train"]()
    model.set_weights(weights_of(rec))
    model.compile(optimizer=cnnkit.optimizers.SGD(learning_rate=0.1),
                  loss="sparse_categorical_crossentropy")
    hist = model.fit(rec["x0"], rec["y"], batch_size=4, epochs=1, shuffle=False, verbose=0)
    assert hist.history["loss"][0] == pytest.approx(float(rec["loss"]), rel=1e-5)
    after = weights_of(rec, "after")
    got = model.get_weights()
    paths = layouts()["bn_train"]["weight_paths"]
    for path, g, w in zip(paths, got, after):
        # moving_variance included: Keras moves it with the biased batch variance
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, err_msg=path)
    np.testing.assert_allclose(model.predict(rec["x0"]), rec["out_after"], rtol=1e-5, atol=1e-6)


def test_shared_layer_has_one_set_of_weights_used_twice():
    model = BUILDERS["shared"]()
    conv = model.get_layer("shared_conv")
    assert sum(1 for layer in model.layers if layer is conv) == 1
    x = np.random.default_rng(0).random((2, 6, 6, 2), dtype=np.float32)
    before = model.predict(x)
    with torch.no_grad():
        conv.conv.weight.mul_(2)
    assert not np.allclose(model.predict(x), before)  # both calls see the change


def test_model_used_as_a_layer_and_nested_weights():
    inner = BUILDERS["two_branch"]()
    inp = cnnkit.Input((10, 10, 3))
    out = layers.Dense(2)(inner(inp))
    outer = cnnkit.Model(inp, out)
    assert outer.layers[1] is inner
    assert outer.count_params() == inner.count_params() + 3 * 2 + 2
    x = np.random.default_rng(1).random((3, 10, 10, 3), dtype=np.float32)
    expected = inner.predict(x) @ outer.layers[2].get_weights()[0] + outer.layers[2].get_weights()[1]
    np.testing.assert_allclose(outer.predict(x), expected, rtol=1e-5, atol=1e-6)


def test_fit_evaluate_save_load_and_export(tmp_path, tiny_images):
    x, y = tiny_images
    inp = cnnkit.Input((8, 8, 3))
    model = cnnkit.Model(inp, layers.Dense(4, activation="softmax")(
        layers.GlobalAveragePooling2D()(layers.Add()([
            layers.Conv2D(6, 3, padding="same", activation="relu")(inp),
            layers.Conv2D(6, 1)(inp)]))), name="tiny_res")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    hist = model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    assert set(model.evaluate(x, y, verbose=0, return_dict=True)) == {"loss", "accuracy"}
    model.save(tmp_path / "m")
    again = cnnkit.load_model(tmp_path / "m")
    assert isinstance(again, Functional)
    assert [layer.name for layer in again.layers] == [layer.name for layer in model.layers]
    np.testing.assert_allclose(again.predict(x[:8]), model.predict(x[:8]), atol=1e-6)
    assert again.predict(x[:8]).sum(axis=1) == pytest.approx(np.ones(8), abs=1e-5)  # its softmax
    pytest.importorskip("onnxruntime")
    from cnnkit.export import export
    result = export(model, tmp_path / "m.onnx", samples=x[:4], verbose=False)
    assert result.max_abs_diff < 1e-4


def test_gradcam_finds_the_last_conv_of_a_functional_model(tiny_images):
    from cnnkit.explain import grad_cam
    x, _ = tiny_images
    inp = cnnkit.Input((8, 8, 3))
    a = layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    b = layers.Conv2D(4, 3, padding="same", activation="relu", name="last_conv")(a)
    model = cnnkit.Model(inp, layers.Dense(4)(layers.GlobalAveragePooling2D()(layers.Add()([a, b]))))
    assert model.feature_layer() is model.get_layer("last_conv")
    heat = grad_cam(model, x[0])
    assert np.asarray(heat).shape[-2:] == (8, 8)


def test_saved_graph_is_rebuilt_from_cnnkit_classes_only(tmp_path):
    import json
    model = BUILDERS["two_inputs"]()
    model.save(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["architecture"]["config"]["layers"][1]["class_name"] = "os.system"
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="unknown layer type 'os.system'"):
        cnnkit.load_model(tmp_path / "m")


def test_bad_graphs_fail_with_one_clear_line():
    a, b = cnnkit.Input((4, 4, 3)), cnnkit.Input((4, 4, 3))
    out = layers.Add()([a, b])
    with pytest.raises(GraphError, match="graph disconnected"):
        cnnkit.Model(a, out)
    with pytest.raises(ShapeError, match="same shape"):
        layers.Add()([a, cnnkit.Input((4, 4, 2))])
    with pytest.raises(ShapeError, match="axis=1 needs inputs"):
        layers.Concatenate(axis=1)([a, cnnkit.Input((4, 5, 3))])
    with pytest.raises(ShapeError, match="list of tensors"):
        layers.Add()(a)
    with pytest.raises(ShapeError, match="exactly 2 inputs"):
        layers.Subtract()([a, a, a])
    with pytest.raises(TypeError, match="merge layers"):
        a + b  # noqa: B018 - arithmetic on symbolic tensors is not recorded
    with pytest.raises(ShapeError, match="expects input"):
        layers.Dense(3)(a)  # Dense on an image: the layer's own shape message
    with pytest.raises(TypeError, match="only cnnkit layers and models record calls"):
        torch.nn.ReLU()(a)
    wrapped = cnnkit.Model(torch.nn.Conv2d(3, 2, 1), input_shape=(4, 4, 3))
    assert wrapped(a).shape == (None, 4, 4, 2)  # a wrapped torch module is a layer


def test_concatenate_axis_counts_channels_last():
    a, b = cnnkit.Input((4, 5, 3)), cnnkit.Input((4, 2, 3))
    out = layers.Concatenate(axis=2)([a, b])  # the width axis in Keras's (N, H, W, C)
    assert out.shape == (None, 4, 7, 3)
    model = cnnkit.Model([a, b], out)
    assert model.output_shape == (3, 4, 7)  # torch layout without batch, as Sequential's
    xa = np.random.default_rng(0).random((2, 4, 5, 3), dtype=np.float32)
    xb = np.random.default_rng(1).random((2, 4, 2, 3), dtype=np.float32)
    np.testing.assert_array_equal(model.predict([xa, xb]), np.concatenate([xa, xb], axis=2))


def test_input_starts_a_sequential_too():
    inp = cnnkit.Input((6, 6, 1))
    assert inp.shape == (None, 6, 6, 1)
    model = cnnkit.Sequential([inp, layers.Flatten(), layers.Dense(2)])
    assert model.output_shape == (2,)
    model = cnnkit.Sequential([layers.InputLayer(shape=(6, 6, 1)), layers.Flatten()])
    assert model.output_shape == (36,)


def test_a_model_with_two_inputs_trains_and_evaluates():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (64, 8, 8, 1), dtype=np.uint8)
    meta = rng.random((64, 4), dtype=np.float32)
    y = (meta[:, 0] > 0.5).astype(np.int64)  # learnable from the second input
    cnnkit.utils.set_random_seed(0)
    model = BUILDERS["two_inputs"]()
    model.compile(optimizer=cnnkit.optimizers.Adam(0.02), metrics=["accuracy"],
                  loss=cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True))
    hist = model.fit([img, meta], y, epochs=15, batch_size=32, verbose=0,
                     validation_data=([img[:16], meta[:16]], y[:16]))
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    assert "val_accuracy" in hist.history
    logs = model.evaluate({"image": img, "meta": meta}, y, verbose=0, return_dict=True)
    assert logs["accuracy"] > 0.8
    # the packed path computes what the unpacked one does (uint8 images scaled once)
    packed = model(torch.as_tensor(model._pack([img[:3], meta[:3]])))
    np.testing.assert_allclose(packed.detach().numpy(), model.predict([img[:3], meta[:3]]), atol=1e-6)


def test_training_several_outputs_says_it_is_not_supported_yet():
    inp = cnnkit.Input((4,))
    model = cnnkit.Model(inp, [layers.Dense(2)(inp), layers.Dense(3)(inp)])
    model.compile(optimizer="adam", loss="mse")
    with pytest.raises(NotImplementedError, match="2 outputs"):
        model.fit(np.zeros((2, 4)), np.zeros((2, 2)), verbose=0)
    assert [o.shape for o in model.predict(np.zeros((2, 4), np.float32))] == [(2, 2), (2, 3)]


@pytest.mark.parametrize("name", ["shared", "nested", "two_inputs"])
def test_graphs_with_shared_nested_and_frozen_layers_save_and_load(name, tmp_path):
    model = BUILDERS[name]()
    rec = recorded(name)
    model.set_weights(weights_of(rec))
    model.save(tmp_path / name)
    again = cnnkit.load_model(tmp_path / name)
    np.testing.assert_allclose(again.predict(inputs_of(rec)), rec["out"], rtol=1e-5, atol=1e-5)
    assert [layer.name for layer in again.layers] == [layer.name for layer in model.layers]
    assert [len(w) for w in (again.trainable_weights, again.non_trainable_weights)] == [
        len(model.trainable_weights), len(model.non_trainable_weights)]


def test_a_graph_that_starts_with_rescaling_takes_raw_pixels():
    inp = cnnkit.Input((4, 4, 3))
    x = layers.RandomFlip("horizontal")(inp)  # augmentation first, as the tutorials do
    out = layers.Rescaling(1 / 255)(x)
    model = cnnkit.Model(inp, out)
    assert model.preprocess.scale == 1.0
    pixels = np.full((2, 4, 4, 3), 255, np.uint8)
    np.testing.assert_allclose(model.predict(pixels), 1.0)  # scaled once, by the model
    plain = cnnkit.Model(inp, layers.Conv2D(2, 1)(inp))
    assert plain.preprocess.scale == pytest.approx(1 / 255)


def test_the_image_classification_from_scratch_network_builds_and_trains(tiny_images):
    """keras.io's "Image classification from scratch" make_model, imports changed (Conv2D
    stands in for SeparableConv2D where that layer is missing)."""
    sep = getattr(layers, "SeparableConv2D", layers.Conv2D)
    data_augmentation = cnnkit.Sequential([layers.RandomFlip("horizontal"),
                                           layers.RandomRotation(0.1)])

    def make_model(input_shape, num_classes):
        inputs = cnnkit.Input(shape=input_shape)
        x = data_augmentation(inputs)
        x = layers.Rescaling(1.0 / 255)(x)
        x = layers.Conv2D(8, 3, strides=2, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        previous_block_activation = x
        for size in [16, 32]:
            x = layers.Activation("relu")(x)
            x = sep(size, 3, padding="same")(x)
            x = layers.BatchNormalization()(x)
            x = layers.Activation("relu")(x)
            x = sep(size, 3, padding="same")(x)
            x = layers.BatchNormalization()(x)
            x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
            residual = layers.Conv2D(size, 1, strides=2, padding="same")(previous_block_activation)
            x = layers.add([x, residual])
            previous_block_activation = x
        x = sep(32, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.GlobalAveragePooling2D()(x)
        units = 1 if num_classes == 2 else num_classes
        x = layers.Dropout(0.25)(x)
        outputs = layers.Dense(units, activation=None)(x)
        return cnnkit.Model(inputs, outputs)

    x, y = tiny_images
    model = make_model(input_shape=(8, 8, 3), num_classes=4)
    assert model.preprocess.scale == 1.0  # Rescaling after augmentation: raw pixels in
    model.compile(optimizer=cnnkit.optimizers.Adam(3e-3),
                  loss=cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    hist = model.fit(x[:32], y[:32], epochs=1, batch_size=16, verbose=0)
    assert np.isfinite(hist.history["loss"]).all()
    assert model.predict(x[:3]).shape == (3, 4)
