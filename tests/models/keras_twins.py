"""cnnkit twins of the models in scripts/keras_golden/models.py, written with only the imports
changed (``keras`` -> ``cnnkit``), and the recorded Keras values they are compared with."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import cnnkit as keras
from cnnkit import layers

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "keras" / "models"


def residual():
    inp = keras.Input((12, 12, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    y = layers.Conv2D(8, 3, padding="same")(x)
    y = layers.BatchNormalization()(y)
    y = layers.Activation("relu")(y)
    x = layers.Add()([x, y])
    x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(5, activation="softmax")(x)
    return keras.Model(inp, out, name="residual")


def two_branch():
    inp = keras.Input((10, 10, 3))
    a = layers.Conv2D(4, 3, activation="relu")(inp)
    b = layers.Conv2D(6, 1, activation="relu")(inp)
    b = layers.Conv2D(6, 3)(b)
    x = layers.Concatenate()([a, b])
    x = layers.Flatten()(x)
    out = layers.Dense(3)(x)
    return keras.Model(inp, out, name="two_branch")


def two_inputs():
    img = keras.Input((8, 8, 1), name="image")
    vec = keras.Input((4,), name="meta")
    x = layers.Conv2D(3, 3, activation="relu")(img)
    x = layers.GlobalMaxPooling2D()(x)
    v = layers.Dense(3)(vec)
    s = layers.Subtract()([x, v])
    m = layers.Multiply()([x, v])
    mx = layers.Maximum()([s, m])
    av = layers.Average()([s, m, mx])
    out = layers.Dense(2)(layers.Concatenate()([av, mx]))
    return keras.Model([img, vec], out, name="two_inputs")


def shared():
    inp = keras.Input((6, 6, 2))
    conv = layers.Conv2D(2, 3, padding="same", name="shared_conv")
    x = conv(inp)
    x = conv(x)
    inner = keras.Sequential([layers.Conv2D(3, 1), layers.ReLU()], name="inner")
    x = inner(x)
    out = layers.Conv2D(2, 1)(x)
    return keras.Model(inp, out, name="shared")


def bn_train():
    inp = keras.Input((6, 6, 2))
    x = layers.Conv2D(3, 3)(inp)
    x = layers.BatchNormalization()(x)
    x = layers.Flatten()(x)
    x = layers.Dense(4)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    out = layers.Dense(3, activation="softmax")(x)
    return keras.Model(inp, out, name="bn_train")


class Net(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = layers.Conv2D(4, 3, activation="relu")
        self.bn = layers.BatchNormalization()
        self.pool = layers.GlobalAveragePooling2D()
        self.drop = layers.Dropout(0.5)
        self.head = layers.Dense(3)

    def call(self, x, training=False):
        x = self.bn(self.conv(x), training=training)
        return self.head(self.drop(self.pool(x), training=training))


def subclassed():
    model = Net(name="net")
    model.build((None, 9, 9, 3))
    return model


def sequential():
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(32, 3, activation="relu"), layers.BatchNormalization(),
        layers.MaxPooling2D(), layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(), layers.Flatten(), layers.Dropout(0.5),
        layers.Dense(10, activation="softmax")], name="mnist_convnet")


def nested():
    base = keras.Sequential([keras.Input((16, 16, 3)), layers.Conv2D(4, 3),
                             layers.BatchNormalization()], name="base")
    base.trainable = False
    inp = keras.Input((16, 16, 3))
    x = base(inp, training=False)
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(2)(x)
    return keras.Model(inp, out, name="transfer")


BUILDERS = {"residual": residual, "two_branch": two_branch, "two_inputs": two_inputs,
            "shared": shared, "bn_train": bn_train, "subclassed": subclassed,
            "sequential": sequential, "nested": nested}


def recorded(name: str) -> dict:
    """The arrays Keras recorded for model ``name``: x0.., w0.., out (and the step's values)."""
    with np.load(GOLDEN / f"{name}.npz") as data:
        return {k: data[k] for k in data.files}


def layouts() -> dict:
    return json.loads((GOLDEN / "layouts.json").read_text())


def inputs_of(rec: dict):
    xs = [rec[k] for k in sorted(k for k in rec if k.startswith("x"))]
    return xs if len(xs) > 1 else xs[0]


def weights_of(rec: dict, prefix: str = "w") -> list[np.ndarray]:
    keys = [k for k in rec if k.startswith(prefix) and k[len(prefix):].isdigit()]
    return [rec[k] for k in sorted(keys, key=lambda k: int(k[len(prefix):]))]
