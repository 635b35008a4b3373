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
