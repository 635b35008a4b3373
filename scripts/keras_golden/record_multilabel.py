"""Record Keras 3 training a multi-label head: ``Dense(L, activation='sigmoid')`` with
``loss='binary_crossentropy'`` on multi-hot targets, ``metrics=['binary_accuracy',
AUC(multi_label=True)]``, from fixed weights with plain SGD and no shuffling, so cnnkit's
fit, evaluate and predict can be compared number for number.

Run: /work/tfvenv/bin/python scripts/keras_golden/record_multilabel.py
Writes tests/golden/keras/multilabel/sigmoid_bce.json.
"""

import json
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import numpy as np  # noqa: E402
import keras  # noqa: E402

OUT = Path(__file__).resolve().parents[2] / "tests/golden/keras/multilabel/sigmoid_bce.json"
rng = np.random.default_rng(11)
N, H, W, L = 32, 4, 4, 3
X = rng.random((N, H, W, 1)).astype("float32")
Y = (rng.random((N, L)) < [0.2, 0.5, 0.7]).astype("float32")
X[:, :2, :2, 0] += 0.8 * Y[:, 0, None, None]       # label 0 lights the top-left corner
X[:, 2:, 2:, 0] += 0.8 * Y[:, 1, None, None]       # label 1 the bottom-right; label 2 is noise
KERNEL = (rng.normal(size=(H * W, L)) * 0.3).astype("float32")
BIAS = np.array([0.1, -0.2, 0.05], "float32")


def main():
    model = keras.Sequential([keras.Input((H, W, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(L, activation="sigmoid")])
    model.layers[-1].set_weights([KERNEL, BIAS])
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="binary_crossentropy",
                  metrics=["binary_accuracy", keras.metrics.AUC(multi_label=True, name="auc")])
    history = model.fit(X, Y, batch_size=8, epochs=3, shuffle=False, verbose=0).history
    evaluated = model.evaluate(X, Y, batch_size=32, verbose=0, return_dict=True)
    out = {"keras": keras.__version__, "x": X.tolist(), "y": Y.tolist(),
           "kernel": KERNEL.tolist(), "bias": BIAS.tolist(),
           "history": {k: [float(v) for v in vs] for k, vs in history.items()},
           "evaluate": {k: float(v) for k, v in evaluated.items()},
           "predict": model.predict(X[:4], verbose=0).tolist(),
           "final_kernel": model.layers[-1].get_weights()[0].tolist()}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1))
    print(f"wrote {OUT}: {out['history']}, {out['evaluate']}")


if __name__ == "__main__":
    main()
