"""Record real Keras 3's behaviour for the model side of cnnkit (functional API, subclassing,
weights, outputs, training step with BatchNormalization, summaries).

Run with the TensorFlow venv (never in CI):

    /work/tfvenv/bin/python scripts/keras_golden/models.py

Writes tests/golden/keras/models/: ``<model>.npz`` (the input, Keras's get_weights in order,
the inference output, and for the training case the weights and loss after one SGD step),
``layouts.json`` (each model's get_weights shapes, layer names, count_params) and
``summary_<model>_<width>.txt`` (``model.summary()`` at 88/108 and at 76 characters; the
``_trainable_`` ones with ``show_trainable=True``, the Sequential's after one Adam step).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "tests" / "golden" / "keras" / "models"


def build_models(keras, layers):
    """name -> a function that builds the model in a fresh name scope."""

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
        x = conv(x)  # the same layer twice: shared weights
        inner = keras.Sequential([layers.Conv2D(3, 1), layers.ReLU()], name="inner")
        x = inner(x)
        out = layers.Conv2D(2, 1)(x)  # image-shaped output: channels-last in predict
        return keras.Model(inp, out, name="shared")

    def bn_train():
        inp = keras.Input((6, 6, 2))
        x = layers.Conv2D(3, 3)(inp)
        x = layers.BatchNormalization()(x)
        x = layers.Flatten()(x)
        x = layers.Dense(4)(x)
        x = layers.BatchNormalization()(x)  # 4 samples per statistic: n/(n-1) shows clearly
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
        model(keras.ops.zeros((1, 9, 9, 3)))
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

    return {"residual": residual, "two_branch": two_branch, "two_inputs": two_inputs,
            "shared": shared, "bn_train": bn_train, "subclassed": subclassed,
            "sequential": sequential, "nested": nested}


def record(width: int | None) -> None:
    import numpy as np
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    makers = build_models(keras, layers)
    layouts = {}
    rng = np.random.default_rng(0)
    for name, make in makers.items():
        keras.backend.clear_session()  # fresh layer names, as a new Python session has
        model = make()
        lines = []
        model.summary(print_fn=lambda text, line_break=False: lines.append(text))
        tag = "wide" if width is None else str(width)
        (OUT / f"summary_{name}_{tag}.txt").write_text("".join(lines))
        if name in ("sequential", "nested", "shared"):
            _trainable_summary(keras, np, model, name, tag)
        if width is not None:
            continue  # the narrow run only records summaries
        ins = model.inputs if hasattr(model, "inputs") and model.inputs else None
        if name == "subclassed":
            shapes = [(9, 9, 3)]
        else:
            shapes = [tuple(t.shape[1:]) for t in ins]
        x = [rng.random((4, *s), dtype=np.float32) for s in shapes]
        arg = x if len(x) > 1 else x[0]
        weights = model.get_weights()
        # Random weights (BatchNorm statistics too) so every layout is exercised.
        weights = [rng.normal(0, 0.5, w.shape).astype("float32") if "variance" not in getattr(v, "path", "")
                   else rng.uniform(0.5, 1.5, w.shape).astype("float32")
                   for w, v in zip(weights, model.weights)]
        model.set_weights(weights)
        out = np.asarray(model.predict(arg, verbose=0))
        record_ = {f"x{i}": xi for i, xi in enumerate(x)}
        record_.update({f"w{i}": w for i, w in enumerate(weights)})
        record_["out"] = out
        if name in ("bn_train", "subclassed"):
            y = np.array([0, 1, 2, 1])
            model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1),
                          loss="sparse_categorical_crossentropy" if name == "bn_train" else
                          keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            if name == "subclassed":
                model.drop.rate = 0.0  # deterministic step
            loss = model.train_on_batch(arg, y)
            record_["y"] = y
            record_["loss"] = np.float32(loss)
            for i, w in enumerate(model.get_weights()):
                record_[f"after{i}"] = w
            record_["out_after"] = np.asarray(model.predict(arg, verbose=0))
        np.savez_compressed(OUT / f"{name}.npz", **record_)
        layouts[name] = {
            "weights": [list(w.shape) for w in weights],
            "weight_paths": [v.path for v in model.weights],
            "trainable": [v.path for v in model.trainable_weights],
            "non_trainable": [v.path for v in model.non_trainable_weights],
            "layers": [layer.name for layer in model.layers],
            "count_params": int(model.count_params()),
            "output_shape": list(out.shape),
            "keras": keras.__version__,
        }
    if width is None:
        (OUT / "layouts.json").write_text(json.dumps(layouts, indent=1))


def _trainable_summary(keras, np, model, name, tag) -> None:
    """summary(show_trainable=True); the Sequential after one Adam step (its optimizer line)."""
    if name == "sequential":
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.train_on_batch(np.zeros((4, 28, 28, 1), np.float32), np.arange(4))
    lines = []
    model.summary(show_trainable=True, print_fn=lambda text, line_break=False: lines.append(text))
    (OUT / f"summary_{name}_trainable_{tag}.txt").write_text("".join(lines))
    if name in ("nested", "shared"):
        lines = []
        model.summary(expand_nested=True, print_fn=lambda text, line_break=False: lines.append(text))
        (OUT / f"summary_{name}_expanded_{tag}.txt").write_text("".join(lines))


def record_unbuilt(width) -> None:
    """A Sequential without an input shape: '?' and '0 (unbuilt)' rows."""
    import keras
    from keras import layers
    keras.backend.clear_session()
    model = keras.Sequential([layers.Conv2D(4, 3), layers.Flatten(), layers.Dense(2)], name="unbuilt")
    lines = []
    model.summary(print_fn=lambda text, line_break=False: lines.append(text))
    tag = "wide" if width is None else str(width)
    (OUT / f"summary_unbuilt_sequential_{tag}.txt").write_text("".join(lines))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    if len(sys.argv) > 1:  # child: one terminal width
        width = None if sys.argv[1] == "wide" else int(sys.argv[1])
        record(width)
        record_unbuilt(width)
        return
    for tag, columns in (("wide", "200"), ("76", "80")):
        env = {**os.environ, "COLUMNS": columns, "TF_CPP_MIN_LOG_LEVEL": "3"}
        subprocess.run([sys.executable, __file__, tag], check=True, env=env)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
