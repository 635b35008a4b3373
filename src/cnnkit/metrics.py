"""Metrics by Keras's names and classes (accuracy, top-k, precision, recall, AUC, F1, mae,
mse, ...) for compile(metrics=...), and the evaluation report's numbers.

Running metrics accumulate on the device as tensors; reading ``result()`` is the only host
sync, so the training loop does not stall the GPU each step.
"""

from __future__ import annotations

import numpy as np
import torch

from .train.metric_base import Metric, as_tensor

__all__ = ["Metric", "Accuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy", "BinaryAccuracy",
           "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy", "Precision", "Recall", "AUC",
           "F1Score", "FBetaScore", "MeanAbsoluteError", "MeanSquaredError", "RootMeanSquaredError",
           "MeanAbsolutePercentageError", "MeanSquaredLogarithmicError", "KLDivergence",
           "MeanMetricWrapper", "get", "confusion_matrix", "classification_report"]


def _class_targets(targets: torch.Tensor) -> torch.Tensor:
    return targets.argmax(dim=1) if targets.ndim == 2 else targets.long()


class Accuracy(Metric):
    """Share of samples whose top class equals the target class (one-hot or index targets)."""

    name = "accuracy"

    def update(self, outputs, targets, outputs_are_logits=False):
        self._add((outputs.argmax(dim=1) == _class_targets(targets)).sum(), len(outputs))

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = as_tensor(y_pred)
        y_true = as_tensor(y_true).to(y_pred.device)
        if y_true.ndim == 2 and y_true.shape[1] == 1:
            y_true = y_true[:, 0]
        self._add_weighted((y_pred.argmax(dim=1) == _class_targets(y_true)).float(), sample_weight)


class CategoricalAccuracy(Accuracy):
    name = "categorical_accuracy"


class SparseCategoricalAccuracy(Accuracy):
    name = "sparse_categorical_accuracy"


class BinaryAccuracy(Metric):
    name = "binary_accuracy"

    def __init__(self, name=None, threshold: float = 0.5, dtype=None):
        self.threshold = threshold
        super().__init__(name)

    def update(self, outputs, targets, outputs_are_logits=False):
        cut = 0.0 if outputs_are_logits else self.threshold
        if outputs_are_logits and self.threshold != 0.5:
            cut = float(np.log(self.threshold / (1 - self.threshold)))
        pred = (outputs.reshape(len(outputs), -1) > cut)
        target = targets.reshape(len(targets), -1) > 0.5
        self._add((pred == target).float().mean(dim=1).sum(), len(outputs))

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = as_tensor(y_pred)
        y_pred = y_pred.reshape(len(y_pred), -1)
        y_true = as_tensor(y_true).to(y_pred.device).reshape(y_pred.shape)
        self._add_weighted(((y_pred > self.threshold).float() == y_true).float().mean(dim=1), sample_weight)


class TopKCategoricalAccuracy(Metric):
    """Share of samples whose target is among the k highest scores."""

    def __init__(self, k: int = 5, name: str | None = "top_k_categorical_accuracy", dtype=None):
        self.k = k
        super().__init__(name)

    def update(self, outputs, targets, outputs_are_logits=False):
        self.update_state(targets, outputs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = as_tensor(y_pred)
        y_true = as_tensor(y_true).to(y_pred.device)
        if y_true.ndim == 2 and y_true.shape[1] == 1:
            y_true = y_true[:, 0]
        k = min(self.k, y_pred.shape[1])
        top = y_pred.topk(k, dim=1).indices
        self._add_weighted((top == _class_targets(y_true)[:, None]).any(dim=1).float(), sample_weight)


class SparseTopKCategoricalAccuracy(TopKCategoricalAccuracy):
    def __init__(self, k: int = 5, name: str | None = "sparse_top_k_categorical_accuracy", dtype=None):
        super().__init__(k, name)


from .train.keras_metrics import (AUC, F1Score, FBetaScore, KLDivergence,  # noqa: E402
                                  MeanAbsoluteError, MeanAbsolutePercentageError, MeanMetricWrapper,
                                  MeanSquaredError, MeanSquaredLogarithmicError, Precision, Recall,
                                  RootMeanSquaredError)

# Keras's metric strings -> a factory(name); the log key is the string as the user wrote it
_NAMED = {
    "categorical_accuracy": lambda n: CategoricalAccuracy(name=n),
    "sparse_categorical_accuracy": lambda n: SparseCategoricalAccuracy(name=n),
    "binary_accuracy": lambda n: BinaryAccuracy(name=n),
    "top_k_categorical_accuracy": lambda n: TopKCategoricalAccuracy(5, name=n),
    "sparse_top_k_categorical_accuracy": lambda n: SparseTopKCategoricalAccuracy(5, name=n),
    "precision": lambda n: Precision(name=n),
    "recall": lambda n: Recall(name=n),
    "auc": lambda n: AUC(name=n),
    "f1_score": lambda n: F1Score(name=n),
    "mae": lambda n: MeanAbsoluteError(name=n),
    "mean_absolute_error": lambda n: MeanAbsoluteError(name=n),
    "mse": lambda n: MeanSquaredError(name=n),
    "mean_squared_error": lambda n: MeanSquaredError(name=n),
    "mape": lambda n: MeanAbsolutePercentageError(name=n),
    "mean_absolute_percentage_error": lambda n: MeanAbsolutePercentageError(name=n),
    "msle": lambda n: MeanSquaredLogarithmicError(name=n),
    "mean_squared_logarithmic_error": lambda n: MeanSquaredLogarithmicError(name=n),
    "root_mean_squared_error": lambda n: RootMeanSquaredError(name=n),
    "kld": lambda n: KLDivergence(name=n),
    "kl_divergence": lambda n: KLDivergence(name=n),
}


def get(metric, loss_name: str = "", activation: str | None = None) -> Metric:
    """A fresh metric object from a Keras name, a Metric instance (reset and reused) or a plain
    function ``f(y_true, y_pred) -> per-sample values``. ``activation`` is the model's output
    activation (see ``Metric.activation``)."""
    found = _get(metric, loss_name)
    if found.activation is None:
        found.activation = activation
    return found


def _get(metric, loss_name):
    if isinstance(metric, Metric):
        metric.reset()
        return metric
    if isinstance(metric, type) and issubclass(metric, Metric):
        return metric()
    if callable(metric):
        return MeanMetricWrapper(metric, one_hot_targets=not loss_name.startswith("sparse"))
    given = str(metric)
    key = given.lower()
    if key in ("accuracy", "acc"):
        return BinaryAccuracy(name=given) if "binary" in loss_name else Accuracy(name=given)
    if key in _NAMED:
        return _NAMED[key](given)
    if key.startswith("top_") and key.endswith("_accuracy") and key[4:-9].isdigit():
        return TopKCategoricalAccuracy(int(key[4:-9]), name=given)
    from .train import losses as losses_mod
    if key in losses_mod.NAMES:  # a loss name as a metric: its mean per sample, as in Keras
        return MeanMetricWrapper(losses_mod.get(key), name=given, one_hot_targets=False)
    raise ValueError(f"unknown metric {metric!r}; valid names: accuracy, acc, "
                     f"{', '.join(_NAMED)}, top_<k>_accuracy, a loss name, a cnnkit.metrics class "
                     "or a function f(y_true, y_pred)")


def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """Counts[i, j] = samples of true class i predicted as class j."""
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if num_classes is None:
        num_classes = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2).reshape(
        num_classes, num_classes)


def classification_report(y_true, y_pred, class_names=None, num_classes=None) -> dict:
    """Per-class precision, recall, F1 and support, with macro averages and accuracy."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    k = cm.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    tp = np.diag(cm).astype(float)
    predicted = cm.sum(axis=0).astype(float)
    support = cm.sum(axis=1).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    per_class = {
        names[i]: {"precision": float(precision[i]), "recall": float(recall[i]),
                   "f1": float(f1[i]), "support": int(support[i])}
        for i in range(k)
    }
    total = cm.sum()
    return {
        "per_class": per_class,
        "accuracy": float(tp.sum() / total) if total else float("nan"),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "confusion_matrix": cm.tolist(),
    }
