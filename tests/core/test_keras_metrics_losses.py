"""Metrics and losses by Keras's names and classes, against values recorded from Keras 3
(scripts/keras_golden/record_metrics_losses.py -> tests/golden/keras/train/metrics_losses.json)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import cnnkit
from cnnkit import layers, losses, metrics

G = json.loads((Path(__file__).parents[1] / "golden/keras/train/metrics_losses.json").read_text())
HALF = G["half"]
W = np.array(G["w"], np.float32)
PROBS = np.array(G["probs"], np.float32)
LABELS = np.array(G["labels"])
ONE_HOT = np.eye(PROBS.shape[1], dtype=np.float32)[LABELS]
INPUTS = {"binary": (np.array(G["b_true"], np.float32), np.array(G["b_prob"], np.float32)),
          "binary_logits": (np.array(G["b_true"], np.float32), np.array(G["b_logit"], np.float32)),
          "onehot": (ONE_HOT, PROBS), "multi": (np.array(G["multi"], np.float32), PROBS),
          "sparse": (LABELS, PROBS)}
B_TRUE, B_PROB = INPUTS["binary"]
REG = (np.array(G["reg_true"], np.float32), np.array(G["reg_pred"], np.float32))
LOSS_INPUTS = {"onehot": (ONE_HOT, PROBS), "onehot_logits": (ONE_HOT, np.array(G["logits"], np.float32)),
               "sparse": (LABELS, PROBS), "sparse_logits": (LABELS, np.array(G["logits"], np.float32)),
               "binary": (B_TRUE[:, None], B_PROB[:, None]),
               "binary_logits": (B_TRUE[:, None], np.array(G["b_logit"], np.float32)[:, None]),
               "multi": (np.array(G["multi"], np.float32), PROBS),
               "signed": (B_TRUE[:, None] * 2 - 1, B_PROB[:, None]), "regress": REG}


@pytest.mark.parametrize("name", sorted(G["metrics"]))
def test_metric_class_matches_keras(name):
    record = G["metrics"][name]
    metric = getattr(metrics, record["class"])(**record["kwargs"])
    y_true, y_pred = INPUTS[record["inputs"]]
    metric.update_state(y_true[:HALF], y_pred[:HALF])
    metric.update_state(y_true[HALF:], y_pred[HALF:], sample_weight=W[HALF:] if record["weighted"] else None)
    np.testing.assert_allclose(metric.result(), record["value"], rtol=2e-5, atol=1e-6)
    metric.reset_state()
    metric.update_state(y_true, y_pred)  # and it starts over after a reset
    again = getattr(metrics, record["class"])(**record["kwargs"])
    again.update_state(y_true, y_pred)
    np.testing.assert_allclose(metric.result(), again.result())


@pytest.mark.parametrize("name", sorted(G["losses"]))
def test_loss_class_matches_keras(name):
    record = G["losses"][name]
    loss = getattr(losses, record["class"])(**record["kwargs"])
    y_true, y_pred = LOSS_INPUTS[record["inputs"]]
    np.testing.assert_allclose(np.asarray(loss(y_true, y_pred)), record["value"], rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(np.asarray(loss(y_true, y_pred, sample_weight=W)), record["weighted"],
                               rtol=2e-5, atol=2e-6)


def _compiled(record, loss, metric_specs):
    units = record["units"]
    m = cnnkit.Sequential([layers.Input((5,)), layers.Dense(units, activation=record["activation"])])
    dense = [mod for mod in m.modules() if isinstance(mod, torch.nn.Linear)][0]
    with torch.no_grad():
        dense.weight.copy_(torch.tensor(record["kernel"]).T)
        dense.bias.zero_()
    m.compile(optimizer="sgd", loss=loss, metrics=metric_specs)
    return m


@pytest.mark.parametrize("loss", sorted(G["compiled"]))
def test_metric_names_in_compile_log_keras_keys_and_values(loss):
    record = G["compiled"][loss]
    y = {"categorical_crossentropy": ONE_HOT, "sparse_categorical_crossentropy": LABELS,
         "binary_crossentropy": B_TRUE}[loss]
    m = _compiled(record, loss, record["metrics"])
    logs = m.evaluate(np.array(record["x"], np.float32), y, batch_size=4, verbose=0, return_dict=True)
    assert sorted(logs) == sorted(record["logs"])
    for key, value in record["logs"].items():
        assert logs[key] == pytest.approx(value, rel=2e-5, abs=1e-6), key


def test_plain_functions_as_loss_and_metric():
    def my_loss(y_true, y_pred):
        return ((y_true - y_pred) ** 2).mean(axis=-1) * 2.0

    def my_metric(y_true, y_pred):
        return y_pred.max(axis=-1).values

    record = G["functions"]
    m = _compiled({"units": 4, "activation": "softmax", "kernel": record["kernel"]}, my_loss, [my_metric])
    logs = m.evaluate(np.array(record["x"], np.float32), ONE_HOT, batch_size=4, verbose=0, return_dict=True)
    assert logs == pytest.approx(record["logs"], rel=2e-5)
    h = m.fit(np.array(record["x"], np.float32), ONE_HOT, epochs=1, verbose=0)
    assert set(h.history) == {"loss", "my_metric"}


def test_metrics_see_probabilities_when_the_loss_trains_on_logits():
    # a softmax model trains on its pre-activation output; AUC and precision must still see
    # the probabilities Keras's metrics see (same numbers as update_state on predict's output)
    record = G["compiled"]["categorical_crossentropy"]
    m = _compiled(record, "categorical_crossentropy", [metrics.AUC(), metrics.Precision(thresholds=0.3)])
    x = np.array(record["x"], np.float32)
    logs = m.evaluate(x, ONE_HOT, verbose=0, return_dict=True)
    auc, prec = metrics.AUC(), metrics.Precision(thresholds=0.3)
    probs = m.predict(x)
    auc.update_state(ONE_HOT, probs)
    prec.update_state(ONE_HOT, probs)
    assert logs["auc"] == pytest.approx(auc.result(), rel=1e-5)
    assert logs["precision"] == pytest.approx(prec.result(), rel=1e-5)


def test_f1_per_class_lands_in_history_as_a_list():
    record = G["compiled"]["categorical_crossentropy"]
    m = _compiled(record, "categorical_crossentropy", [metrics.F1Score()])
    h = m.fit(np.array(record["x"], np.float32), ONE_HOT, epochs=2, verbose=0)
    assert len(h.history["f1_score"]) == 2 and len(h.history["f1_score"][0]) == 4


def test_bad_metric_and_loss_arguments_say_what_is_wrong():
    with pytest.raises(ValueError, match="unknown metric 'precison'"):
        metrics.get("precison")
    with pytest.raises(ValueError, match="thresholds must be in"):
        metrics.Precision(thresholds=1.5)
    with pytest.raises(ValueError, match="average must be"):
        metrics.F1Score(average="samples")
    with pytest.raises(ValueError, match="reduction must be one of"):
        losses.CategoricalCrossentropy(reduction="avg")
    with pytest.raises(ValueError, match="unknown loss"):
        losses.get("hinge_loss_of_doom")
