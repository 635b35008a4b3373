"""Record real Keras's layer outputs for cnnkit's layer tests (tests/core/test_keras_layers.py).

Run with the TensorFlow venv (CI never runs this; the tests read what it writes):

    /work/tfvenv/bin/python scripts/keras_golden/layers.py

For each case: a Keras layer built from the case's kwargs on a fixed random input, its
weights set to fixed random values (unless ``keep_init``: then the layer's own deterministic
initializers are what is tested), and Keras's weight names, weights, output and output shape
written to tests/golden/keras/layers/ (cases.json + layers.npz). Activations, regularizer
penalties, constraints and fan computations are recorded there too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

OUT = Path(__file__).resolve().parents[2] / "tests" / "golden" / "keras" / "layers"

IMG = (6, 6, 3)
CASES = [
    # id, Keras class, kwargs, input shape (no batch), options
    ("conv2d", "Conv2D", {"filters": 4, "kernel_size": 3}, (7, 7, 3), {}),
    ("conv2d_same_stride_relu", "Conv2D", {"filters": 4, "kernel_size": 3, "strides": 2,
                                            "padding": "same", "activation": "relu"}, (7, 7, 3), {}),
    ("conv2d_groups_dilated", "Conv2D", {"filters": 6, "kernel_size": [3, 2], "groups": 3,
                                          "dilation_rate": 2, "padding": "same"}, (9, 8, 3), {}),
    ("conv2d_ones_init", "Conv2D", {"filters": 2, "kernel_size": 2, "kernel_initializer": "ones",
                                     "bias_initializer": {"class_name": "Constant",
                                                          "config": {"value": 0.5}}},
     (4, 4, 2), {"keep_init": True}),
    ("depthwise", "DepthwiseConv2D", {"kernel_size": 3}, IMG, {}),
    ("depthwise_multiplier_same", "DepthwiseConv2D", {"kernel_size": 3, "depth_multiplier": 2,
                                                      "strides": 2, "padding": "same",
                                                      "activation": "relu6"}, (7, 7, 3), {}),
    ("depthwise_dilated", "DepthwiseConv2D", {"kernel_size": 2, "dilation_rate": 2,
                                              "use_bias": False}, IMG, {}),
    ("separable", "SeparableConv2D", {"filters": 5, "kernel_size": 3}, IMG, {}),
    ("separable_multiplier_same", "SeparableConv2D", {"filters": 4, "kernel_size": 3,
                                                      "depth_multiplier": 2, "strides": 2,
                                                      "padding": "same"}, (7, 7, 3), {}),
    ("transpose", "Conv2DTranspose", {"filters": 3, "kernel_size": 3}, (4, 4, 2), {}),
    ("transpose_same_s2", "Conv2DTranspose", {"filters": 2, "kernel_size": 3, "strides": 2,
                                              "padding": "same"}, (4, 5, 2), {}),
    ("transpose_same_k4_s2", "Conv2DTranspose", {"filters": 2, "kernel_size": 4, "strides": 2,
                                                 "padding": "same"}, (3, 4, 2), {}),
    ("transpose_valid_k2_s2", "Conv2DTranspose", {"filters": 2, "kernel_size": 2, "strides": 2},
     (3, 3, 2), {}),
    ("transpose_valid_k1_s3", "Conv2DTranspose", {"filters": 2, "kernel_size": 1, "strides": 3},
     (3, 3, 2), {}),
    ("transpose_same_outpad", "Conv2DTranspose", {"filters": 2, "kernel_size": 3, "strides": 2,
                                                  "padding": "same", "output_padding": 1},
     (3, 3, 2), {}),
    ("transpose_valid_outpad", "Conv2DTranspose", {"filters": 2, "kernel_size": 3, "strides": 2,
                                                   "output_padding": 1}, (3, 3, 2), {}),
    ("transpose_dilated", "Conv2DTranspose", {"filters": 2, "kernel_size": 3, "dilation_rate": 2,
                                              "activation": "tanh"}, (3, 3, 2), {}),
    ("maxpool", "MaxPooling2D", {"pool_size": 2}, (7, 7, 3), {}),
    ("maxpool_same", "MaxPooling2D", {"pool_size": 3, "strides": 2, "padding": "same"}, (7, 7, 3), {}),
    ("avgpool_same", "AveragePooling2D", {"pool_size": 2, "padding": "same"}, (5, 5, 3), {}),
    ("global_avg", "GlobalAveragePooling2D", {}, IMG, {}),
    ("global_max_keepdims", "GlobalMaxPooling2D", {"keepdims": True}, IMG, {}),
    ("flatten", "Flatten", {}, (2, 3, 4), {"flatten_order": True}),
    ("dense_tanh", "Dense", {"units": 5, "activation": "tanh"}, (6,), {}),
    ("dense_identity_init", "Dense", {"units": 4, "kernel_initializer": "identity",
                                      "bias_initializer": "ones"}, (4,), {"keep_init": True}),
    ("dropout", "Dropout", {"rate": 0.5, "seed": 3}, (6,), {}),
    ("spatial_dropout", "SpatialDropout2D", {"rate": 0.5}, IMG, {}),
    ("batchnorm", "BatchNormalization", {}, (4, 4, 3), {}),
    ("batchnorm_no_center", "BatchNormalization", {"center": False, "epsilon": 0.01,
                                                   "momentum": 0.9}, (4, 4, 3), {}),
    ("batchnorm_vector_no_scale", "BatchNormalization", {"scale": False, "axis": -1}, (6,), {}),
    ("layernorm", "LayerNormalization", {}, (4, 4, 3), {}),
    ("layernorm_hwc", "LayerNormalization", {"axis": [1, 2, 3]}, (3, 4, 2), {}),
    ("layernorm_hw", "LayerNormalization", {"axis": [1, 2], "epsilon": 1e-5}, (3, 4, 2), {}),
    ("layernorm_vector_no_center", "LayerNormalization", {"center": False}, (6,), {}),
    ("layernorm_rms", "LayerNormalization", {"rms_scaling": True}, (4, 4, 3), {}),
    ("groupnorm", "GroupNormalization", {"groups": 2}, (4, 4, 6), {}),
    ("groupnorm_vector", "GroupNormalization", {"groups": 3, "epsilon": 1e-5}, (6,), {}),
    ("zero_padding", "ZeroPadding2D", {"padding": 1}, (3, 4, 2), {}),
    ("zero_padding_asym", "ZeroPadding2D", {"padding": [[1, 2], [0, 3]]}, (3, 4, 2), {}),
    ("cropping", "Cropping2D", {"cropping": [[1, 0], [2, 1]]}, (5, 6, 2), {}),
    ("cropping_int", "Cropping2D", {"cropping": 1}, (5, 6, 2), {}),
    ("upsampling", "UpSampling2D", {"size": 2}, (3, 4, 2), {}),
    ("upsampling_bilinear", "UpSampling2D", {"size": [2, 3], "interpolation": "bilinear"},
     (3, 4, 2), {}),
    ("reshape_to_image", "Reshape", {"target_shape": [3, 4, 2]}, (24,), {}),
    ("reshape_image_to_vector", "Reshape", {"target_shape": [-1]}, (2, 3, 4), {}),
    ("reshape_image_to_image", "Reshape", {"target_shape": [4, 6, 1]}, (2, 3, 4), {}),
    ("reshape_image_to_sequence", "Reshape", {"target_shape": [6, 4]}, (2, 3, 4), {}),
    ("permute_hw", "Permute", {"dims": [2, 1, 3]}, (2, 3, 4), {}),
    ("permute_chw", "Permute", {"dims": [3, 1, 2]}, (2, 3, 4), {}),
    ("leaky_relu", "LeakyReLU", {}, IMG, {}),
    ("leaky_relu_slope", "LeakyReLU", {"negative_slope": 0.1}, (6,), {}),
    ("prelu", "PReLU", {}, (3, 4, 2), {}),
    ("prelu_shared", "PReLU", {"shared_axes": [1, 2]}, (3, 4, 2), {}),
    ("elu", "ELU", {"alpha": 0.5}, IMG, {}),
    ("softmax", "Softmax", {}, (3, 4, 5), {}),
    ("softmax_vector", "Softmax", {}, (6,), {}),
    ("softmax_hw", "Softmax", {"axis": [1, 2]}, (3, 4, 2), {}),
    ("relu_args", "ReLU", {"max_value": 1.5, "negative_slope": 0.1, "threshold": 0.5}, IMG, {}),
    ("rescaling", "Rescaling", {"scale": 0.5, "offset": -1.0}, IMG, {}),
]
ACTIVATIONS = ["relu", "relu6", "sigmoid", "softmax", "log_softmax", "tanh", "gelu", "elu",
               "selu", "leaky_relu", "swish", "silu", "softplus", "softsign", "hard_sigmoid",
               "hard_swish", "hard_silu", "mish", "exponential", "linear", "celu", "hard_tanh",
               "log_sigmoid", "tanh_shrink", "hard_shrink", "soft_shrink", "squareplus",
               "sparse_plus"]
for act in ACTIVATIONS:
    CASES.append((f"activation_{act}", "Activation", {"activation": act}, (3, 4, 5), {}))


def layer_kwargs(kwargs: dict) -> dict:
    """JSON kwargs -> Keras kwargs (lists for tuples are fine; configs dicts deserialized)."""
    out = dict(kwargs)
    for key, value in kwargs.items():
        if key.endswith("_initializer") and isinstance(value, dict):
            out[key] = keras.initializers.deserialize(value)
    return out


def random_weights(layer, rng):
    values = []
    for w in layer.weights:
        shape = tuple(w.shape)
        if "variance" in w.name:
            values.append(rng.uniform(0.5, 1.5, shape).astype("float32"))
        else:
            values.append((rng.standard_normal(shape) * 0.5).astype("float32"))
    return values


def record_layers(arrays: dict, cases: list) -> None:
    for i, (case_id, cls, kwargs, shape, options) in enumerate(CASES):
        rng = np.random.default_rng(1000 + i)
        x = rng.standard_normal((2, *shape)).astype("float32")
        layer = getattr(keras.layers, cls)(**layer_kwargs(kwargs))
        layer.build((None, *shape))
        if not options.get("keep_init"):
            layer.set_weights(random_weights(layer, rng))
        y = keras.ops.convert_to_numpy(layer(x, training=False))
        arrays[f"{case_id}/x"] = x
        arrays[f"{case_id}/y"] = y
        for j, w in enumerate(layer.get_weights()):
            arrays[f"{case_id}/w{j}"] = w
        cases.append({"id": case_id, "class_name": cls, "kwargs": kwargs, "input_shape": list(shape),
                      "output_shape": list(y.shape[1:]), "options": options,
                      "weight_names": [w.name for w in layer.weights],
                      "weight_shapes": [list(w.shape) for w in layer.weights]})


def record_activations(arrays: dict) -> None:
    x = np.linspace(-5, 5, 24, dtype="float32").reshape(4, 6)
    arrays["activations/x"] = x
    for name in ACTIVATIONS:
        arrays[f"activations/{name}"] = keras.ops.convert_to_numpy(keras.activations.get(name)(x))


def record_penalties(arrays: dict, extra: dict) -> None:
    rng = np.random.default_rng(7)
    w = rng.standard_normal((3, 3, 2, 4)).astype("float32")
    arrays["penalties/w"] = w
    regs = {"l1": keras.regularizers.get("l1"), "l2": keras.regularizers.get("l2"),
            "l2_0.5": keras.regularizers.L2(0.5), "l1_l2_default": keras.regularizers.l1_l2(),
            "l1_l2": keras.regularizers.L1L2(l1=0.01, l2=0.02)}
    extra["regularizers"] = {k: float(r(w)) for k, r in regs.items()}
    cons = {"max_norm": keras.constraints.MaxNorm(1.0), "max_norm_012": keras.constraints.MaxNorm(1.5, axis=[0, 1, 2]),
            "unit_norm_012": keras.constraints.UnitNorm(axis=[0, 1, 2]),
            "min_max_norm": keras.constraints.MinMaxNorm(0.5, 1.0, rate=0.5, axis=0),
            "non_neg": keras.constraints.NonNeg()}
    for k, c in cons.items():
        arrays[f"constraints/{k}"] = keras.ops.convert_to_numpy(c(w))
    extra["constraints"] = {k: c.get_config() for k, c in cons.items()}
    # layer.losses of a model: weight penalties and an activity penalty (batch-averaged)
    model = keras.Sequential([
        keras.Input((5, 5, 2)),
        keras.layers.Conv2D(3, 3, kernel_regularizer=keras.regularizers.L2(0.01),
                            bias_regularizer="l1", activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(2, activity_regularizer=keras.regularizers.L1L2(0.01, 0.02)),
    ])
    model.set_weights(random_weights(model, rng))
    x = rng.standard_normal((4, 5, 5, 2)).astype("float32")
    model(x)
    arrays["model_losses/x"] = x
    for j, value in enumerate(model.get_weights()):
        arrays[f"model_losses/w{j}"] = value
    extra["model_losses"] = [float(v) for v in model.losses]
    from keras.src.initializers.random_initializers import compute_fans
    shapes = [(5,), (4, 6), (3, 3, 2, 8), (1, 1, 16, 4), (5, 5, 3, 1)]
    extra["fans"] = [[list(s), list(compute_fans(s))] for s in shapes]


def record_training_step(arrays: dict, extra: dict) -> None:
    """One SGD step of a model with regularizers and constraints: Keras adds the penalties to
    the loss and projects constrained weights after the update."""
    rng = np.random.default_rng(11)
    model = keras.Sequential([
        keras.Input((5, 5, 2)),
        keras.layers.Conv2D(3, 3, activation="relu", kernel_regularizer=keras.regularizers.L2(0.05),
                            bias_regularizer=keras.regularizers.L1(0.01),
                            kernel_constraint=keras.constraints.MaxNorm(0.6, axis=[0, 1, 2])),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(3, activation="softmax", activity_regularizer=keras.regularizers.L2(0.01),
                           kernel_constraint=keras.constraints.NonNeg()),
    ])
    model.set_weights(random_weights(model, rng))
    x = rng.standard_normal((6, 5, 5, 2)).astype("float32")
    y = np.array([0, 1, 2, 0, 1, 2])
    for j, value in enumerate(model.get_weights()):
        arrays[f"train/w{j}"] = value
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5),
                  loss="sparse_categorical_crossentropy")
    extra["train_evaluate_loss"] = float(model.evaluate(x, y, verbose=0))
    history = model.fit(x, y, batch_size=6, epochs=1, shuffle=False, verbose=0)
    arrays["train/x"], arrays["train/y"] = x, y
    for j, value in enumerate(model.get_weights()):
        arrays[f"train/after{j}"] = value
    extra["train_loss"] = float(history.history["loss"][0])


def record_training_mode(arrays: dict) -> None:
    """Normalization layers called with training=True: batch statistics (and, for
    BatchNormalization, the moving mean after that call)."""
    rng = np.random.default_rng(21)
    x = rng.standard_normal((8, 4, 4, 6)).astype("float32") * 2 + 1
    arrays["training/x"] = x
    for key, layer in (("batchnorm", keras.layers.BatchNormalization(momentum=0.9)),
                       ("layernorm", keras.layers.LayerNormalization()),
                       ("groupnorm", keras.layers.GroupNormalization(groups=3))):
        layer.build(x.shape)
        layer.set_weights(random_weights(layer, rng))
        for j, value in enumerate(layer.get_weights()):
            arrays[f"training/{key}/w{j}"] = value
        arrays[f"training/{key}/y"] = keras.ops.convert_to_numpy(layer(x, training=True))
        arrays[f"training/{key}/after"] = np.stack(layer.get_weights())


def record_serialized(extra: dict) -> None:
    """Keras's own saved form of each initializer / regularizer / constraint (as a .keras
    file's config holds it), for cnnkit's get() to read."""
    objects = {
        "initializers": [keras.initializers.Zeros(), keras.initializers.Ones(),
                         keras.initializers.Constant(0.3), keras.initializers.RandomNormal(0.1, 0.2, seed=1),
                         keras.initializers.RandomUniform(-0.1, 0.2), keras.initializers.TruncatedNormal(),
                         keras.initializers.VarianceScaling(2.0, "fan_out", "uniform"),
                         keras.initializers.GlorotUniform(), keras.initializers.GlorotNormal(),
                         keras.initializers.HeNormal(), keras.initializers.HeUniform(),
                         keras.initializers.LecunNormal(), keras.initializers.LecunUniform(),
                         keras.initializers.Orthogonal(gain=2.0), keras.initializers.Identity(gain=0.5)],
        "regularizers": [keras.regularizers.L1(0.02), keras.regularizers.L2(0.03),
                         keras.regularizers.L1L2(0.01, 0.02)],
        "constraints": [keras.constraints.MaxNorm(3, axis=[0, 1, 2]), keras.constraints.MinMaxNorm(0.1, 2.0),
                        keras.constraints.NonNeg(), keras.constraints.UnitNorm(axis=1)],
    }
    extra["serialized"] = {kind: [keras.saving.serialize_keras_object(o) for o in objs]
                           for kind, objs in objects.items()}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    arrays, cases, extra = {}, [], {}
    record_layers(arrays, cases)
    record_activations(arrays)
    record_penalties(arrays, extra)
    record_training_step(arrays, extra)
    record_serialized(extra)
    record_training_mode(arrays)
    np.savez_compressed(OUT / "layers.npz", **arrays)
    (OUT / "cases.json").write_text(json.dumps({"keras_version": keras.__version__, "cases": cases,
                                                **extra}, indent=1))
    print(f"{len(cases)} layer cases, {len(arrays)} arrays -> {OUT}")


if __name__ == "__main__":
    main()
