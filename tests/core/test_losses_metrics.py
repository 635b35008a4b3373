"""Loss and metric names against values computed by hand. Losses called without
``outputs_are_logits`` take Keras's order, ``loss(y_true, y_pred)``."""

import math

import numpy as np
import pytest
import torch

from cnnkit import metrics
from cnnkit.train import losses

PROBS = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
LOGITS = torch.log(PROBS)  # softmax(log p) == p
TARGET = torch.tensor([0, 1])


def test_categorical_crossentropy_by_hand():
    want = -(math.log(0.7) + math.log(0.3)) / 2
    one_hot = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])
    cce = losses.get("categorical_crossentropy")
    assert cce(one_hot, PROBS).item() == pytest.approx(want, rel=1e-5)
    assert cce(LOGITS, one_hot, outputs_are_logits=True).item() == pytest.approx(want, rel=1e-5)
    # integer labels with the categorical loss work too
    assert cce(TARGET, PROBS).item() == pytest.approx(want, rel=1e-5)


def test_sparse_categorical_crossentropy_by_hand():
    want = -(math.log(0.7) + math.log(0.3)) / 2
    scce = losses.get("sparse_categorical_crossentropy")
    assert scce(LOGITS, TARGET, outputs_are_logits=True).item() == pytest.approx(want, rel=1e-5)
    # one-hot labels with the sparse loss work too
    assert scce(torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]), PROBS).item() == pytest.approx(want, rel=1e-5)
    assert losses.SparseCategoricalCrossentropy(from_logits=True)(TARGET, LOGITS).item() == pytest.approx(want, rel=1e-5)


def test_logits_path_is_stable_where_probabilities_underflow():
    logits = torch.tensor([[200.0, -200.0]])
    loss = losses.get("sparse_categorical_crossentropy")(logits, torch.tensor([1]), outputs_are_logits=True)
    assert loss.item() == pytest.approx(400.0, rel=1e-6)


def test_binary_crossentropy_by_hand():
    p = torch.tensor([[0.9], [0.2]])
    y = torch.tensor([1.0, 0.0])
    want = -(math.log(0.9) + math.log(0.8)) / 2
    bce = losses.get("binary_crossentropy")
    assert bce(y, p).item() == pytest.approx(want, rel=1e-5)
    assert bce(torch.logit(p), y, outputs_are_logits=True).item() == pytest.approx(want, rel=1e-5)


def test_mse_and_mae_by_hand():
    out = torch.tensor([[1.0, 2.0], [3.0, 5.0]])
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert losses.get("mse")(y, out).item() == pytest.approx((0 + 4 + 9 + 16) / 4)
    assert losses.get("mae")(y, out).item() == pytest.approx((0 + 2 + 3 + 4) / 4)
    # class indices against a score output become one-hot targets
    assert losses.get("mean_squared_error")(torch.tensor([0, 1]), out).item() == pytest.approx(7.25)


def test_sample_weight_and_unknown_name():
    scce = losses.get("sparse_categorical_crossentropy")
    w = torch.tensor([2.0, 0.0])
    assert scce(TARGET, PROBS, sample_weight=w).item() == pytest.approx(-2 * math.log(0.7) / 2, rel=1e-5)
    with pytest.raises(ValueError, match="valid names"):
        losses.get("hinge_loss_of_doom")


def test_accuracy_and_topk():
    out = torch.tensor([[0.1, 0.5, 0.4], [0.6, 0.3, 0.1], [0.2, 0.3, 0.5], [0.3, 0.4, 0.3]])
    y = torch.tensor([1, 1, 2, 0])
    acc = metrics.get("accuracy", "sparse_categorical_crossentropy")
    acc.update(out, y)
    assert acc.result() == pytest.approx(0.5)
    top2 = metrics.TopKCategoricalAccuracy(k=2)
    top2.update(out, y)
    assert top2.result() == pytest.approx(1.0)  # 3rd: 2 in top2; 4th: 0 ties 0.3 with 2 -> topk picks index 0 first
    top1 = metrics.get("top_1_accuracy")
    top1.update(out, torch.nn.functional.one_hot(y, 3).float())
    assert top1.result() == pytest.approx(0.5)
    k5 = metrics.get("sparse_top_k_categorical_accuracy")
    k5.update(out, y)
    assert k5.result() == 1.0  # k capped at the class count


def test_binary_accuracy_on_probabilities_and_logits():
    p = torch.tensor([[0.9], [0.4], [0.6]])
    y = torch.tensor([1.0, 1.0, 0.0])
    acc = metrics.get("accuracy", "binary_crossentropy")
    acc.update(p, y)
    assert acc.result() == pytest.approx(1 / 3)
    acc.reset()
    acc.update(torch.logit(p), y, outputs_are_logits=True)
    assert acc.result() == pytest.approx(1 / 3)


def test_confusion_matrix_and_report_by_hand():
    y_true = [0, 0, 1, 1, 2]
    y_pred = [0, 1, 1, 1, 0]
    cm = metrics.confusion_matrix(y_true, y_pred, 3)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    rep = metrics.classification_report(y_true, y_pred, ["a", "b", "c"])
    assert rep["per_class"]["a"]["precision"] == pytest.approx(0.5)
    assert rep["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert rep["per_class"]["b"]["recall"] == pytest.approx(1.0)
    assert rep["per_class"]["b"]["f1"] == pytest.approx(0.8)
    assert rep["per_class"]["c"]["f1"] == 0.0
    assert rep["accuracy"] == pytest.approx(0.6)
