"""Keras's layer arguments: activations, initializers, regularizers (in the loss), constraints
(after each step), data_format, padding case, input_shape, BatchNormalization's and Dropout's
arguments. Keras values come from tests/golden/keras/layers (scripts/keras_golden/layers.py)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import cnnkit
from cnnkit import activations, constraints, initializers, layers, regularizers

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "keras" / "layers"
SPEC = json.loads((GOLDEN / "cases.json").read_text())
ARRAYS = np.load(GOLDEN / "layers.npz")


# -- activations --------------------------------------------------------------------------
KERAS_ACTIVATIONS = sorted(k.split("/")[1] for k in ARRAYS.files
                           if k.startswith("activations/") and k != "activations/x")


@pytest.mark.parametrize("name", KERAS_ACTIVATIONS)
def test_activation_functions_match_keras(name):
    x = torch.as_tensor(ARRAYS["activations/x"])
    want = ARRAYS[f"activations/{name}"]
    np.testing.assert_allclose(activations.get(name)(x).numpy(), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(getattr(activations, name)(x).numpy(), want, rtol=1e-5, atol=1e-6)


def test_callable_activations_are_saved_by_name(tmp_path):
    model = cnnkit.Sequential([
        layers.Input((6, 6, 1)),
        layers.Conv2D(2, 3, activation=activations.relu),
        layers.Conv2D(2, 3, activation=torch.nn.functional.gelu),
        layers.Flatten(), layers.Dense(4, activation=torch.nn.ReLU()),
        layers.Dense(3, activation=activations.softmax)])
    names = [layer.get_config().get("activation") for layer in model.layers]
    assert names == ["relu", "gelu", None, "relu", "softmax"]
    assert model.output_activation == "softmax"  # a callable softmax still ends the model
    model.save(tmp_path / "m")
    again = cnnkit.load_model(tmp_path / "m")
    x = torch.rand(2, 1, 6, 6)
    model.eval()
    assert torch.equal(again(x), model(x))


def test_unnamed_callable_runs_but_refuses_to_save(tmp_path):
    model = cnnkit.Sequential([layers.Input((4,)), layers.Dense(2, activation=lambda t: t * 2)])
    assert model(torch.ones(1, 4)).shape == (1, 2)
    with pytest.raises(ValueError, match="no registered name.*register"):
        model.save(tmp_path / "m")


def test_registered_callable_saves_and_loads(tmp_path):
    def doubled(t):
        return t * 2
    activations.register("doubled_for_test", doubled)
    model = cnnkit.Sequential([layers.Input((4,)), layers.Dense(2, activation=doubled)])
    model.save(tmp_path / "m")
    again = cnnkit.load_model(tmp_path / "m")
    assert again.layers[0].get_config()["activation"] == "doubled_for_test"
    assert torch.equal(again(torch.ones(1, 4)), model(torch.ones(1, 4)))


def test_unknown_activation_names_the_valid_ones():
    with pytest.raises(ValueError, match="valid names: .*hard_sigmoid"):
        layers.Dense(2, activation="swoosh")


# -- initializers -------------------------------------------------------------------------
def test_fans_are_keras_fans():
    for shape, fans in SPEC["fans"]:
        assert list(initializers.compute_fans(shape)) == fans


@pytest.mark.parametrize("name, std", [
    ("he_normal", np.sqrt(2 / (3 * 3 * 16))), ("lecun_normal", np.sqrt(1 / (3 * 3 * 16))),
    ("glorot_normal", np.sqrt(2 / (3 * 3 * 16 + 3 * 3 * 32))),
    ("he_uniform", np.sqrt(2 / (3 * 3 * 16))), ("glorot_uniform", np.sqrt(2 / (3 * 3 * 16 + 3 * 3 * 32))),
])
def test_conv_kernel_initializer_uses_keras_fans(name, std):
    torch.manual_seed(0)
    conv = layers.Conv2D(32, 3, kernel_initializer=name)
    cnnkit.Sequential([layers.Input((12, 12, 16)), conv])
    kernel = conv.get_weights()[0]
    assert abs(kernel.std() / std - 1) < 0.05  # 4,608 draws: within 5% of Keras's std
    if name.endswith("normal"):
        assert np.abs(kernel).max() <= 2 * std / 0.8796 + 1e-6  # truncated at 2 sigma


def test_orthogonal_and_constant_initializers():
    dense = layers.Dense(6, kernel_initializer=initializers.Orthogonal(gain=2.0, seed=1),
                         bias_initializer=initializers.Constant(0.25))
    cnnkit.Sequential([layers.Input((10,)), dense])
    kernel, bias = dense.get_weights()
    np.testing.assert_allclose(kernel.T @ kernel, 4 * np.eye(6), atol=1e-5)
    assert (bias == 0.25).all()
    again = layers.Dense(6, kernel_initializer=initializers.Orthogonal(gain=2.0, seed=1))
    cnnkit.Sequential([layers.Input((10,)), again])
    np.testing.assert_array_equal(again.get_weights()[0], kernel)  # seeded: reproducible


def test_initializer_config_round_trips_by_name():
    conv = layers.Conv2D(2, 3, kernel_initializer=initializers.VarianceScaling(0.5, "fan_out", "uniform"))
    config = conv.get_config()
    assert config["kernel_initializer"] == {"class_name": "VarianceScaling", "config": {
        "scale": 0.5, "mode": "fan_out", "distribution": "uniform", "seed": None}}
    assert layers.layer_from_config("Conv2D", config).get_config() == config
    with pytest.raises(ValueError, match="unknown initializer 'os.system'"):
        initializers.get({"class_name": "os.system", "config": {}})


@pytest.mark.parametrize("kind", ["initializers", "regularizers", "constraints"])
def test_keras_saved_configs_are_read(kind):
    """What a .keras file's config holds for these objects builds the same cnnkit object."""
    module = {"initializers": initializers, "regularizers": regularizers,
              "constraints": constraints}[kind]
    for saved in SPEC["serialized"][kind]:
        obj = module.get(saved)
        assert type(obj).__name__ == saved["class_name"]
        ours = obj.get_config()
        for key, value in saved["config"].items():
            if value is not None:
                assert ours[key] == pytest.approx(value), (saved["class_name"], key)


# -- regularizers -------------------------------------------------------------------------
def test_regularizer_values_match_keras():
    w = torch.as_tensor(ARRAYS["penalties/w"])
    regs = {"l1": regularizers.get("l1"), "l2": regularizers.get("l2"), "l2_0.5": regularizers.L2(0.5),
            "l1_l2_default": regularizers.l1_l2(), "l1_l2": regularizers.L1L2(l1=0.01, l2=0.02)}
    for key, reg in regs.items():
        assert float(reg(w)) == pytest.approx(SPEC["regularizers"][key], rel=1e-5), key


def test_model_losses_match_keras():
    model = cnnkit.Sequential([
        layers.Input((5, 5, 2)),
        layers.Conv2D(3, 3, kernel_regularizer=regularizers.L2(0.01), bias_regularizer="l1",
                      activation="relu"),
        layers.Flatten(),
        layers.Dense(2, activity_regularizer=regularizers.L1L2(0.01, 0.02)),
    ])
    ws = [ARRAYS[f"model_losses/w{j}"] for j in range(4)]
    model.layers[0].set_weights(ws[:2])
    model.layers[2].set_weights(ws[2:])  # Flatten is channels-last, as Keras's: rows as Keras has them
    assert len(model.losses) == 2  # weight penalties only: no call yet, no activity penalty
    x = torch.as_tensor(ARRAYS["model_losses/x"]).permute(0, 3, 1, 2)
    model.eval()
    model(x)
    got = [float(v.detach()) for v in model.losses]  # Keras's order: activity, then weights
    np.testing.assert_allclose(got, SPEC["model_losses"], rtol=1e-5)


def _training_model():
    model = cnnkit.Sequential([
        layers.Input((5, 5, 2)),
        layers.Conv2D(3, 3, activation="relu", kernel_regularizer=regularizers.L2(0.05),
                      bias_regularizer=regularizers.L1(0.01),
                      kernel_constraint=constraints.MaxNorm(0.6, axis=[0, 1, 2])),
        layers.GlobalAveragePooling2D(),
        layers.Dense(3, activation="softmax", activity_regularizer=regularizers.L2(0.01),
                     kernel_constraint=constraints.NonNeg()),
    ])
    model.layers[0].set_weights([ARRAYS["train/w0"], ARRAYS["train/w1"]])
    model.layers[2].set_weights([ARRAYS["train/w2"], ARRAYS["train/w3"]])
    return model


def test_fit_adds_penalties_and_applies_constraints_as_keras():
    model = _training_model()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", learning_rate=0.5)
    x, y = ARRAYS["train/x"], ARRAYS["train/y"]
    assert model.evaluate(x, y, verbose=0) == pytest.approx(SPEC["train_evaluate_loss"], rel=1e-5)
    history = model.fit(x, y, batch_size=6, epochs=1, shuffle=False, verbose=0)
    assert history.history["loss"][0] == pytest.approx(SPEC["train_loss"], rel=1e-5)
    after = model.layers[0].get_weights() + model.layers[2].get_weights()
    for j, got in enumerate(after):
        np.testing.assert_allclose(got, ARRAYS[f"train/after{j}"], atol=1e-5, err_msg=f"weight {j}")
    assert (after[2] >= 0).all()
    norms = np.sqrt((after[0] ** 2).sum(axis=(0, 1, 2)))
    assert (norms <= 0.6 + 1e-5).all()


def test_regularized_model_saves_its_regularizers(tmp_path):
    model = _training_model()
    model.save(tmp_path / "m")
    again = cnnkit.load_model(tmp_path / "m")
    assert [layer.get_config() for layer in again.layers] == [layer.get_config() for layer in model.layers]
    assert isinstance(again.layers[0]._options["constraint"]["kernel"], constraints.MaxNorm)


# -- constraints --------------------------------------------------------------------------
@pytest.mark.parametrize("key, constraint", [
    ("max_norm", constraints.MaxNorm(1.0)), ("max_norm_012", constraints.max_norm(1.5, axis=[0, 1, 2])),
    ("unit_norm_012", constraints.UnitNorm(axis=[0, 1, 2])),
    ("min_max_norm", constraints.MinMaxNorm(0.5, 1.0, rate=0.5, axis=0)),
    ("non_neg", constraints.non_neg()),
])
def test_constraints_match_keras(key, constraint):
    w = torch.as_tensor(ARRAYS["penalties/w"])
    np.testing.assert_allclose(constraint(w).numpy(), ARRAYS[f"constraints/{key}"], rtol=1e-5, atol=1e-6)


def test_constraint_acts_on_keras_layout_of_conv_kernel():
    conv = layers.Conv2D(4, 3, kernel_constraint=constraints.UnitNorm(axis=[0, 1, 2]))
    cnnkit.Sequential([layers.Input((6, 6, 2)), conv])
    conv.apply_constraints()
    kernel = conv.get_weights()[0]  # (3, 3, 2, 4): one unit-norm filter per output channel
    np.testing.assert_allclose(np.sqrt((kernel ** 2).sum(axis=(0, 1, 2))), np.ones(4), rtol=1e-5)


# -- the other arguments ------------------------------------------------------------------
def test_padding_names_in_any_case():
    for padding in ("SAME", "Same", "same"):
        model = cnnkit.Sequential([layers.Input((7, 7, 1)), layers.Conv2D(2, 3, padding=padding),
                                   layers.MaxPooling2D(2, padding=padding.upper())])
        assert model.output_shape == (2, 4, 4)
    assert layers.DepthwiseConv2D(3, padding="VALID").padding == "valid"
    with pytest.raises(ValueError, match="padding must be one of 'valid', 'same'.*'full'"):
        layers.Conv2D(2, 3, padding="full")


def test_data_format_channels_last_accepted_channels_first_refused():
    model = cnnkit.Sequential([layers.Input((6, 6, 3)),
                               layers.Conv2D(2, 3, data_format="channels_last"),
                               layers.MaxPooling2D(data_format="channels_last"),
                               layers.GlobalAveragePooling2D(data_format="channels_last")])
    assert model.output_shape == (2,)
    for make in (lambda: layers.Conv2D(2, 3, data_format="channels_first"),
                 lambda: layers.UpSampling2D(data_format="channels_first"),
                 lambda: layers.SeparableConv2D(2, 3, data_format="channels_first")):
        with pytest.raises(ValueError, match="channels-last input"):
            make()


def test_conv_groups_count_and_refusal():
    model = cnnkit.Sequential([layers.Input((6, 6, 4)), layers.Conv2D(6, 3, groups=2)])
    assert model.layers[0].count_params() == 3 * 3 * 2 * 6 + 6
    with pytest.raises(ValueError, match="multiple of groups"):
        layers.Conv2D(5, 3, groups=2)
    with pytest.raises(cnnkit.layers.ShapeError, match="divisible by groups=4"):
        cnnkit.Sequential([layers.Input((6, 6, 6)), layers.Conv2D(8, 3, groups=4)])


def test_batchnorm_arguments_as_keras():
    bn = layers.BatchNormalization(axis=-1, momentum=0.9, epsilon=0.01, center=False, scale=True)
    model = cnnkit.Sequential([layers.Input((4, 4, 3)), bn])
    assert bn.bn.momentum == pytest.approx(0.1)  # Keras's 0.9 is torch's 0.1
    assert bn.bn.eps == 0.01
    assert [w.shape for w in bn.get_weights()] == [(3,), (3,), (3,)]  # gamma, mean, variance
    assert bn.count_params() == 9 and sum(p.numel() for p in bn.parameters()) == 3
    model.train()
    model(torch.rand(8, 3, 4, 4))
    assert torch.equal(bn.bn.bias, torch.zeros(3))  # no beta: stays zero, not trained
    with pytest.raises(ValueError, match="only the channel axis"):
        cnnkit.Sequential([layers.Input((4, 4, 3)), layers.BatchNormalization(axis=1)])


@pytest.mark.parametrize("key, make", [
    ("batchnorm", lambda: layers.BatchNormalization(momentum=0.9)),
    ("layernorm", lambda: layers.LayerNormalization()),
    ("groupnorm", lambda: layers.GroupNormalization(groups=3))])
def test_normalization_in_training_mode_matches_keras(key, make):
    x = ARRAYS["training/x"]
    layer = make()
    model = cnnkit.Sequential([layers.Input(x.shape[1:]), layer])
    n = len([k for k in ARRAYS.files if k.startswith(f"training/{key}/w")])
    layer.set_weights([ARRAYS[f"training/{key}/w{j}"] for j in range(n)])
    model.train()
    out = model.call(torch.as_tensor(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    np.testing.assert_allclose(out.detach().numpy(), ARRAYS[f"training/{key}/y"], atol=1e-5)
    if key == "batchnorm":  # the moving mean moves as Keras's (momentum 0.9 = torch's 0.1)
        np.testing.assert_allclose(layer.get_weights()[2], ARRAYS[f"training/{key}/after"][2],
                                   atol=1e-6)


def test_dropout_seed_repeats_masks():
    def masks(seed):
        drop = layers.Dropout(0.5, seed=seed)
        model = cnnkit.Sequential([layers.Input((100,)), drop])
        model.train()
        return [drop(torch.ones(4, 100)) for _ in range(2)]
    a, b, c = masks(3), masks(3), masks(4)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert not torch.equal(a[0], a[1]) and not torch.equal(a[0], c[0])
    assert set(a[0].unique().tolist()) == {0.0, 2.0}


def test_dropout_noise_shape_in_keras_terms():
    drop = layers.Dropout(0.5, noise_shape=(None, 1, 1, None), seed=0)
    model = cnnkit.Sequential([layers.Input((4, 4, 8)), drop])
    model.train()
    out = drop(torch.ones(3, 8, 4, 4))
    # one decision per (example, channel): every pixel of a channel kept or dropped together
    assert (out.amax(dim=(2, 3)) == out.amin(dim=(2, 3))).all()
    assert 0 < (out[:, :, 0, 0] == 0).float().mean() < 1
    assert layers.layer_from_config("Dropout", drop.get_config()).noise_shape == [None, 1, 1, None]
    with pytest.raises(cnnkit.layers.ShapeError, match="one entry per axis"):
        cnnkit.Sequential([layers.Input((4,)), layers.Dropout(0.5, noise_shape=(None, 1, 1))])


def test_input_shape_on_first_layer_of_new_layers():
    model = cnnkit.Sequential([layers.SeparableConv2D(4, 3, input_shape=(8, 8, 3)),
                               layers.LayerNormalization(), layers.GlobalAveragePooling2D()])
    assert model.input_shape == (8, 8, 3) and model.output_shape == (4,)


def test_explicit_none_arguments_mean_keras_defaults():
    conv = layers.Conv2D(2, 3, kernel_initializer=None, kernel_regularizer=None, bias_regularizer=None,
                         kernel_constraint=None, activity_regularizer=None)
    model = cnnkit.Sequential([layers.Input((5, 5, 1)), conv])
    assert model.losses == [] and not conv.has_penalties and not conv.has_constraints
    assert "kernel_regularizer" not in conv.get_config()


def test_unknown_weight_argument_is_one_clear_line():
    with pytest.raises(TypeError, match="unexpected argument 'kernal_initializer'.*kernel_initializer"):
        layers.Conv2D(2, 3, kernal_initializer="zeros")
    with pytest.raises(TypeError, match="unexpected argument 'kernel_regularizer'"):
        layers.Flatten(kernel_regularizer="l2")


def test_softmax_layer_ends_model_as_probabilities():
    model = cnnkit.Sequential([layers.Input((4,)), layers.Dense(3), layers.Softmax()])
    assert model.output_activation == "softmax"
    x = torch.rand(2, 4)
    model.eval()
    assert torch.allclose(model(x).sum(1), torch.ones(2))
    assert torch.allclose(model.forward_logits(x), model.layers[0](x))  # loss fuses softmax
