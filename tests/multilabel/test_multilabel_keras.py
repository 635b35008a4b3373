"""The Keras way to multi-label: ``Dense(L, activation='sigmoid')`` and
``loss='binary_crossentropy'`` on multi-hot targets, with ``binary_accuracy`` and
``AUC(multi_label=True)``: fit, evaluate and predict as Keras 3 recorded them
(scripts/keras_golden/record_multilabel.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cnnkit import Input, Sequential, layers, metrics, optimizers

GOLDEN = Path(__file__).resolve().parents[1] / "golden/keras/multilabel/sigmoid_bce.json"


def test_sigmoid_bce_multi_hot_fit_evaluate_predict_match_keras():
    g = json.loads(GOLDEN.read_text())
    x, y = np.array(g["x"], np.float32), np.array(g["y"], np.float32)
    model = Sequential([Input(x.shape[1:]), layers.Flatten(),
                        layers.Dense(y.shape[1], activation="sigmoid")])
    model.layers[-1].set_weights([np.array(g["kernel"], np.float32),
                                  np.array(g["bias"], np.float32)])
    model.compile(optimizer=optimizers.SGD(0.5), loss="binary_crossentropy",
                  metrics=["binary_accuracy", metrics.AUC(multi_label=True, name="auc")])
    history = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history
    for key in ("loss", "binary_accuracy", "auc"):
        np.testing.assert_allclose(history[key], g["history"][key], atol=2e-5, err_msg=key)
    got = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    assert got == pytest.approx(g["evaluate"], abs=2e-5)
    np.testing.assert_allclose(model.predict(x[:4]), g["predict"], atol=2e-5)
    np.testing.assert_allclose(model.layers[-1].get_weights()[0], g["final_kernel"], atol=2e-5)


def test_fit_on_a_labels_csv_dataset_then_predict_labels(tmp_path):
    """``cnnkit.datasets.multilabel_dataset_from_csv`` straight into a Keras-style model."""
    from cnnkit import datasets
    from multilabel_builders import QUADRANTS, quadrant_images, write_csv_dataset
    ds = datasets.multilabel_dataset_from_csv(write_csv_dataset(tmp_path, n=64))
    model = Sequential([Input((16, 16, 3)), layers.AveragePooling2D(8), layers.Flatten(),
                        layers.Dense(len(QUADRANTS), activation="sigmoid")])  # quadrant means
    model.compile(optimizer=optimizers.Adam(0.05), loss="binary_crossentropy",
                  metrics=["binary_accuracy"])
    history = model.fit(ds, epochs=20, batch_size=16, verbose=0).history
    assert model.multi_label and model.class_names == sorted(QUADRANTS)
    assert history["binary_accuracy"][-1] > 0.9
    x, y = quadrant_images(16, seed=3)
    for labels, row in zip(model.predict_labels(x), y):
        assert {q["class"] for q in labels} == {QUADRANTS[j] for j in np.nonzero(row)[0]}
