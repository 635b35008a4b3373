"""Record real Keras's outputs for the merge layers on fixed inputs.

Run with a Python that has Keras 3 (TensorFlow CPU):
    python scripts/keras_golden/merge_layers.py
writes tests/golden/keras/layers/merge.npz and merge.json (read by tests/core/test_keras_layers.py).
"""

import json
from pathlib import Path

import keras
import numpy as np

OUT = Path(__file__).resolve().parents[2] / "tests" / "golden" / "keras" / "layers"
CASES = [("Add", {}, 2), ("Add", {}, 3), ("Subtract", {}, 2), ("Multiply", {}, 3),
         ("Average", {}, 2), ("Maximum", {}, 3), ("Minimum", {}, 2),
         ("Concatenate", {"axis": -1}, 2), ("Concatenate", {"axis": 1}, 2),
         ("Concatenate", {"axis": 2}, 3)]

rng = np.random.default_rng(0)
arrays, spec = {}, []
for i, (name, kwargs, n) in enumerate(CASES):
    xs = [rng.normal(size=(2, 4, 5, 3)).astype("float32") for _ in range(n)]
    inputs = [keras.Input((4, 5, 3)) for _ in range(n)]
    model = keras.Model(inputs, getattr(keras.layers, name)(**kwargs)(inputs))
    y = model.predict(xs, verbose=0)
    for j, x in enumerate(xs):
        arrays[f"{i}/x{j}"] = x
    arrays[f"{i}/y"] = y
    spec.append({"id": i, "class_name": name, "kwargs": kwargs, "inputs": n,
                 "output_shape": list(y.shape[1:])})
np.savez_compressed(OUT / "merge.npz", **arrays)
(OUT / "merge.json").write_text(json.dumps({"keras": keras.__version__, "cases": spec}, indent=1))
print(f"{len(spec)} merge cases -> {OUT}")
