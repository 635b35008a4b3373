"""Record the Keras files and expected outputs that tests/models/test_keras_files.py reads.

Run with the TensorFlow venv (CI does not need it; the outputs are committed):

    /work/tfvenv/bin/python scripts/keras_golden/keras_files.py

Keras 2 fixture: tf_keras (Keras 2.x) is taken from ``$TF_KERAS_PATH`` when set
(``pip install --no-deps --target DIR tf_keras==2.21.0``); without it that file is kept as is.

Writes tests/golden/keras/files/: <name>.keras / .h5 / .weights.h5 and <name>.npz holding
``x`` (fixed float inputs, NHWC) and ``y`` (Keras's outputs, inference mode).
"""

from __future__ import annotations

import json
import os
import sys
import zipfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import keras  # noqa: E402
from keras import layers  # noqa: E402

OUT = Path(__file__).resolve().parents[2] / "tests" / "golden" / "keras" / "files"
RNG = np.random.default_rng(1234)


def randomize(model) -> None:
    """Non-trivial weights everywhere, BatchNorm statistics too (variances kept positive)."""
    weights = []
    for w in model.weights:
        value = RNG.normal(0, 0.5, size=w.shape).astype("float32")
        if "variance" in w.path:
            value = np.abs(value) + 0.5
        weights.append(value)
    model.set_weights(weights)


def record(name: str, model, x: np.ndarray, suffix: str = ".keras") -> None:
    model.save(OUT / f"{name}{suffix}")
    y = model.predict(x, verbose=0)
    np.savez(OUT / f"{name}.npz", x=x, y=y)
    print(f"{name}{suffix}: output {y.shape}, {(OUT / f'{name}{suffix}').stat().st_size} bytes")


def deflate(path: Path) -> None:
    """Keras stores its zip entries uncompressed; repack them deflated (same bytes inside)
    so the fixtures stay small."""
    with zipfile.ZipFile(path) as src:
        entries = [(info.filename, src.read(info)) for info in src.infolist()]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for name, data in entries:
            dst.writestr(name, data)


def images(n, h, w, c, scale=1.0):
    return (RNG.uniform(0, 1, size=(n, h, w, c)) * scale).astype("float32")


def seq_cnn():
    """Conv (same, strides) + BN + both poolings + Flatten -> Dense + Dropout + softmax head."""
    return keras.Sequential([
        keras.Input((12, 12, 3)),
        layers.Rescaling(1 / 255.0),
        layers.RandomFlip("horizontal"),
        layers.Conv2D(6, 3, strides=2, padding="same", activation="relu"),
        layers.BatchNormalization(),
        layers.MaxPooling2D(padding="same"),
        layers.Conv2D(5, 2, padding="valid"),
        layers.Activation("tanh"),
        layers.AveragePooling2D(pool_size=2, strides=1, padding="same"),
        layers.Flatten(),
        layers.Dropout(0.3),
        layers.Dense(7, activation="relu"),
        layers.Dense(4, activation="softmax"),
    ], name="seq_cnn")


def gap_cnn():
    """Global average pooling head, BN momentum/epsilon set, ReLU layer, no bias."""
    return keras.Sequential([
        keras.Input((10, 10, 2)),
        layers.Conv2D(4, (3, 2), padding="same", use_bias=False),
        layers.BatchNormalization(momentum=0.9, epsilon=1e-2),
        layers.ReLU(),
        layers.Conv2D(6, 3, dilation_rate=2, activation="elu"),
        layers.GlobalAveragePooling2D(),
        layers.Dense(3),
    ], name="gap_cnn")


def flatten_bn():
    """BatchNormalization on flattened features: its statistics follow the Flatten order."""
    return keras.Sequential([
        keras.Input((4, 5, 3)),
        layers.Conv2D(3, 1),
        layers.Flatten(),
        layers.BatchNormalization(),
        layers.Dense(2, activation="sigmoid"),
    ], name="flatten_bn")


def nested_augmentation():
    """The tutorials' data_augmentation Sequential used as the first layer."""
    augment = keras.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.1),
                                layers.RandomZoom(0.1)], name="data_augmentation")
    return keras.Sequential([
        keras.Input((8, 8, 1)), augment, layers.Conv2D(3, 3, activation="relu"),
        layers.GlobalMaxPooling2D(), layers.Dense(2, activation="softmax")], name="nested")


def functional_chain():
    """A functional model that is one straight line (loads as a Sequential)."""
    inputs = keras.Input((9, 9, 3))
    x = layers.Conv2D(4, 3, activation="relu", padding="same")(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(3, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="functional_chain")


def residual():
    """Two branches joined by Add: parsed as a graph, refused until cnnkit's functional API."""
    inputs = keras.Input((6, 6, 2))
    a = layers.Conv2D(2, 3, padding="same")(inputs)
    b = layers.Add()([inputs, a])
    outputs = layers.Dense(2)(layers.GlobalAveragePooling2D()(b))
    return keras.Model(inputs, outputs, name="residual")


def two_inputs():
    """Two inputs, a Conv2D shared by both, Concatenate, two heads (Flatten->Dense, GAP->Dense)."""
    a, b = keras.Input((6, 6, 2), name="left"), keras.Input((6, 6, 2), name="right")
    shared = layers.Conv2D(3, 3, padding="same", activation="relu")
    joined = layers.Concatenate()([shared(a), shared(b)])
    flat = layers.Dense(4, activation="softmax")(layers.Flatten()(joined))
    pooled = layers.Dense(2)(layers.GlobalAveragePooling2D()(layers.Multiply()([shared(a), shared(b)])))
    return keras.Model([a, b], [flat, pooled], name="two_inputs")


def new_layers():
    """The layers beyond today's core (cnnkit builds them from its own same-named classes)."""
    return keras.Sequential([
        keras.Input((10, 10, 3)),
        layers.ZeroPadding2D(1),
        layers.DepthwiseConv2D(3, depth_multiplier=2),
        layers.LeakyReLU(0.1),
        layers.SeparableConv2D(8, 3, padding="same", activation="relu"),
        layers.LayerNormalization(),
        layers.PReLU(),
        layers.Conv2DTranspose(4, 3, strides=2, padding="same"),
        layers.GroupNormalization(groups=2),
        layers.ELU(),
        layers.Cropping2D(2),
        layers.UpSampling2D(),
        layers.SpatialDropout2D(0.1),
        layers.Softmax(),
        layers.Permute((2, 1, 3)),
        layers.Reshape((-1, 4)),
        layers.Flatten(),
        layers.Dense(3),
    ], name="new_layers")


def xception_mini():
    """The shape of Keras's "Image classification from scratch" network, small."""
    inputs = keras.Input((16, 16, 3))
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = layers.Conv2D(8, 3, strides=2, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    previous = x
    for size in (8, 16):
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        residual = layers.Conv2D(size, 1, strides=2, padding="same")(previous)
        x = layers.add([x, residual])
        previous = x
    x = layers.SeparableConv2D(24, 3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.25)(x)
    outputs = layers.Dense(1, activation=None)(x)
    return keras.Model(inputs, outputs, name="xception_mini")


def record_multi(name: str, model, xs: list) -> None:
    model.save(OUT / f"{name}.keras")
    ys = model.predict(xs, verbose=0)
    np.savez(OUT / f"{name}.npz", **{f"x{i}": x for i, x in enumerate(xs)},
             **{f"y{i}": y for i, y in enumerate(ys)})
    print(f"{name}.keras: outputs {[y.shape for y in ys]}")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    for name, build, x in [
        ("seq_cnn", seq_cnn, images(4, 12, 12, 3, scale=255.0)),
        ("gap_cnn", gap_cnn, images(4, 10, 10, 2)),
        ("flatten_bn", flatten_bn, images(3, 4, 5, 3)),
        ("nested", nested_augmentation, images(3, 8, 8, 1)),
        ("functional_chain", functional_chain, images(3, 9, 9, 3)),
        ("residual", residual, images(2, 6, 6, 2)),
    ]:
        model = build()
        randomize(model)
        if name == "seq_cnn":
            model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                          metrics=["accuracy"])
        record(name, model, x)
        if name == "gap_cnn":  # the same model as a Keras-3-written legacy .h5
            record("gap_cnn_legacy", model, x, suffix=".h5")
        if name == "seq_cnn":  # other weights for the same architecture: load_weights
            randomize(model)
            model.save_weights(OUT / "seq_cnn_other.weights.h5")
            np.savez(OUT / "seq_cnn_other.npz", x=x, y=model.predict(x, verbose=0))

    multi = two_inputs()
    randomize(multi)
    record_multi("two_inputs", multi, [images(3, 6, 6, 2), images(3, 6, 6, 2)])

    lam = keras.Sequential([keras.Input((4, 4, 1)), layers.Lambda(lambda t: t * 2.0), layers.Flatten(),
                            layers.Dense(2)], name="with_lambda")
    lam.save(OUT / "lambda.keras")
    unknown = keras.Sequential([keras.Input((4, 4, 1)), layers.GaussianNoise(0.1), layers.Flatten(),
                                layers.ActivityRegularization(l1=0.01), layers.Dense(2)], name="unknown")
    unknown.save(OUT / "unknown.keras")
    custom_layers()
    keras_2_fixture()
    for name, build, x in [("new_layers", new_layers, images(3, 10, 10, 3)),
                           ("xception_mini", xception_mini, images(3, 16, 16, 3, scale=255.0))]:
        model = build()
        randomize(model)
        record(name, model, x)
    regularized = keras.Sequential([
        keras.Input((6, 6, 1)),
        layers.Conv2D(2, 3, kernel_regularizer=keras.regularizers.L2(0.01)),
        layers.Flatten(),
        layers.Dense(2, kernel_constraint=keras.constraints.MaxNorm(2.0))], name="regularized")
    randomize(regularized)
    x = images(2, 6, 6, 1)
    regularized.save(OUT / "regularized.keras")
    regularized(x)
    np.savez(OUT / "regularized.npz", x=x, y=regularized.predict(x, verbose=0),
             penalty=float(sum(float(loss) for loss in regularized.losses)))
    for path in OUT.glob("*.keras"):
        deflate(path)
    (OUT / "versions.json").write_text(json.dumps({"keras": keras.__version__}, indent=1))


def custom_layers() -> None:
    """Custom layer classes: their code is not in the file, even when one is called Dense."""
    @keras.saving.register_keras_serializable(package="mine")
    class Scale(layers.Layer):
        def call(self, x):
            return x * 2.0

    class Dense(layers.Dense):  # a user's class that shadows Keras's name
        pass

    model = keras.Sequential([keras.Input((4,)), Scale(), Dense(2)], name="custom")
    model.save(OUT / "custom.keras")


def keras_2_fixture() -> None:
    """A file written by Keras 2 itself (tf_keras): its own config spelling and h5 layout."""
    path = os.environ.get("TF_KERAS_PATH")
    if not path:
        print("TF_KERAS_PATH not set: keeping the committed Keras 2 fixture")
        return
    sys.path.insert(0, path)
    import tf_keras
    from tf_keras import layers as l2
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential([
        l2.Conv2D(4, 3, padding="same", activation="relu", input_shape=(8, 8, 3)),
        l2.BatchNormalization(), l2.MaxPooling2D(), l2.Conv2D(3, 2, strides=2),
        l2.Flatten(), l2.Dropout(0.2), l2.Dense(5, activation="softmax")], name="keras2_cnn")
    weights = [RNG.normal(0, 0.5, size=w.shape).astype("float32") for w in model.weights]
    for i, w in enumerate(model.weights):
        if "variance" in w.name:
            weights[i] = np.abs(weights[i]) + 0.5
    model.set_weights(weights)
    x = images(3, 8, 8, 3)
    model.save(OUT / "keras2_cnn.h5")
    np.savez(OUT / "keras2_cnn.npz", x=x, y=model.predict(x, verbose=0))
    model.save_weights(OUT / "keras2_cnn_weights.h5")
    inputs = tf_keras.Input((6, 6, 2))
    conv = l2.Conv2D(2, 3, padding="same")(inputs)
    joined = l2.Add()([inputs, conv])
    outputs = l2.Dense(3, activation="softmax")(l2.Flatten()(l2.MaxPooling2D()(joined)))
    residual = tf_keras.Model(inputs, outputs, name="keras2_residual")
    residual.set_weights([RNG.normal(0, 0.5, size=w.shape).astype("float32") for w in residual.weights])
    x = images(2, 6, 6, 2)
    residual.save(OUT / "keras2_residual.h5")
    np.savez(OUT / "keras2_residual.npz", x=x, y=residual.predict(x, verbose=0))
    print("keras2_cnn.h5, keras2_residual.h5 written by tf_keras", tf_keras.__version__)


if __name__ == "__main__":
    main()
