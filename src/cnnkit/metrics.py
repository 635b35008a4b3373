"""Metrics: running accuracy / top-k in training, and the evaluation report's numbers.

Running metrics accumulate on the device as tensors; reading ``result()`` is the only host
sync, so the training loop does not stall the GPU each step.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["Metric", "Accuracy", "BinaryAccuracy", "TopKCategoricalAccuracy", "get",
           "confusion_matrix", "classification_report"]


class Metric:
    name = "metric"

    def __init__(self, name: str | None = None):
        if name:
            self.name = name
        self.reset()

    def reset(self):
        self.total = None
        self.count = 0

    def _add(self, value: torch.Tensor, n: int):
        value = value.detach()
        self.total = value if self.total is None else self.total + value
        self.count += n

    def result(self) -> float:
        if not self.count:
            return float("nan")
        return float(self.total) / self.count


def _class_targets(targets: torch.Tensor) -> torch.Tensor:
    return targets.argmax(dim=1) if targets.ndim == 2 else targets.long()


class Accuracy(Metric):
    """Share of samples whose top class equals the target class."""

    name = "accuracy"

    def update(self, outputs, targets, outputs_are_logits=False):
        self._add((outputs.argmax(dim=1) == _class_targets(targets)).sum(), len(outputs))


class BinaryAccuracy(Metric):
    name = "accuracy"

    def __init__(self, name=None, threshold: float = 0.5):
        self.threshold = threshold
        super().__init__(name)

    def update(self, outputs, targets, outputs_are_logits=False):
        cut = 0.0 if outputs_are_logits else self.threshold
        if outputs_are_logits and self.threshold != 0.5:
            cut = float(np.log(self.threshold / (1 - self.threshold)))
        pred = (outputs.reshape(len(outputs), -1) > cut)
        target = targets.reshape(len(targets), -1) > 0.5
        self._add((pred == target).float().mean(dim=1).sum(), len(outputs))


class TopKCategoricalAccuracy(Metric):
    """Share of samples whose target is among the k highest scores."""

    def __init__(self, k: int = 5, name: str | None = None):
        self.k = k
        super().__init__(name or ("top_k_categorical_accuracy" if k == 5 else f"top_{k}_accuracy"))

    def update(self, outputs, targets, outputs_are_logits=False):
        k = min(self.k, outputs.shape[1])
        top = outputs.topk(k, dim=1).indices
        self._add((top == _class_targets(targets)[:, None]).any(dim=1).sum(), len(outputs))


class SparseTopKCategoricalAccuracy(TopKCategoricalAccuracy):
    def __init__(self, k: int = 5, name: str | None = None):
        super().__init__(k, name or ("sparse_top_k_categorical_accuracy" if k == 5 else f"top_{k}_accuracy"))


def get(metric, loss_name: str = "") -> Metric:
    """A fresh metric object from a Keras name or an instance (instances are reset and reused)."""
    if isinstance(metric, Metric):
        metric.reset()
        return metric
    key = str(metric).lower()
    if key in ("accuracy", "acc"):
        return BinaryAccuracy() if "binary" in loss_name else Accuracy()
    if key in ("categorical_accuracy", "sparse_categorical_accuracy"):
        return Accuracy(name=key)
    if key == "binary_accuracy":
        return BinaryAccuracy(name=key)
    if key == "top_k_categorical_accuracy":
        return TopKCategoricalAccuracy(5)
    if key == "sparse_top_k_categorical_accuracy":
        return SparseTopKCategoricalAccuracy(5)
    if key.startswith("top_") and key.endswith("_accuracy") and key[4:-9].isdigit():
        return TopKCategoricalAccuracy(int(key[4:-9]), name=key)
    raise ValueError(f"unknown metric {metric!r}; valid names: accuracy, categorical_accuracy, "
                     "sparse_categorical_accuracy, binary_accuracy, top_k_categorical_accuracy, "
                     "sparse_top_k_categorical_accuracy, top_<k>_accuracy")


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
