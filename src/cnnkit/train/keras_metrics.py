"""Keras's confusion-matrix metrics (Precision, Recall, AUC, F1Score / FBetaScore) and mean
metrics (mae, mse, ... and plain functions), with Keras's arithmetic.

Counts accumulate on the device; ``result()`` syncs. AUC uses Keras's grid of
``num_thresholds`` thresholds and its Riemann sums (``interpolation``, ``minoring``,
``majoring``; the PR curve's interpolation of Davis & Goadrich), so the numbers are Keras's
and not an exact AUC.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import keras_losses as kl
from .metric_base import Metric, as_tensor, one_hot_like

EPSILON = 1e-7  # keras.backend.epsilon()

__all__ = ["Precision", "Recall", "AUC", "F1Score", "FBetaScore", "MeanMetricWrapper",
           "MeanAbsoluteError", "MeanSquaredError", "RootMeanSquaredError",
           "MeanAbsolutePercentageError", "MeanSquaredLogarithmicError", "KLDivergence"]


def _div_no_nan(a, b):
    return torch.where(b == 0, torch.zeros_like(a), a / torch.where(b == 0, torch.ones_like(b), b))


def _targets_predictions(y_true, y_pred, sample_weight, top_k=None, class_id=None):
    """(y_true as 0/1 floats, y_pred, per-element weights), all 2-D (samples, labels)."""
    y_pred = as_tensor(y_pred)
    y_true = one_hot_like(as_tensor(y_true).to(y_pred.device), y_pred)
    if y_pred.ndim == 1:
        y_pred = y_pred[:, None]
    y_pred = y_pred.reshape(len(y_pred), -1)
    y_true = (y_true.reshape(y_pred.shape) != 0).float()
    if sample_weight is None:
        w = torch.ones_like(y_pred)
    else:
        w = as_tensor(sample_weight).to(y_pred.device).reshape(len(y_pred), -1).expand_as(y_pred)
    if top_k is not None:  # keep each row's top k, the rest can never be positive
        kth = y_pred.topk(min(top_k, y_pred.shape[1]), dim=1).values[:, -1:]
        y_pred = torch.where(y_pred >= kth, y_pred, torch.full_like(y_pred, -math.inf))
    if class_id is not None:
        y_true, y_pred, w = y_true[:, class_id:class_id + 1], y_pred[:, class_id:class_id + 1], \
            w[:, class_id:class_id + 1]
    return y_true, y_pred, w


def _thresholds(thresholds, default):
    values = [default] if thresholds is None else (
        list(thresholds) if isinstance(thresholds, (list, tuple, np.ndarray)) else [thresholds])
    for t in values:
        if not 0 <= float(t) <= 1:
            raise ValueError(f"thresholds must be in [0, 1], got {t}")
    return values


class _Confusion(Metric):
    """TP/FP/TN/FN at each threshold: ``pred > threshold`` counts as positive."""

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        # with top_k every kept score counts as positive (Keras's default threshold is -inf then)
        self.thresholds = [-math.inf] if thresholds is None and top_k is not None else \
            _thresholds(thresholds, 0.5)
        self.top_k, self.class_id = top_k, class_id
        super().__init__(name)

    def reset(self):
        self.counts = None  # (4, T): tp, fp, tn, fn

    def update_state(self, y_true, y_pred, sample_weight=None):
        yt, yp, w = _targets_predictions(y_true, y_pred, sample_weight, self.top_k, self.class_id)
        thr = torch.tensor(self.thresholds, dtype=yp.dtype, device=yp.device)[:, None]
        pos = (yp.reshape(1, -1) > thr).float()  # (T, elements)
        yt, w = yt.reshape(1, -1), w.reshape(1, -1)
        counts = torch.stack([(pos * yt * w).sum(1), (pos * (1 - yt) * w).sum(1),
                              ((1 - pos) * (1 - yt) * w).sum(1), ((1 - pos) * yt * w).sum(1)])
        self.counts = counts if self.counts is None else self.counts + counts

    def _value(self, per_threshold):
        values = per_threshold.tolist()
        return values[0] if len(values) == 1 else values

    def result(self):
        if self.counts is None:
            return self._value(torch.zeros(len(self.thresholds)))
        return self._value(self._ratio(*self.counts))


class Precision(_Confusion):
    """``tp / (tp + fp)`` (0 when nothing is predicted positive); a list for several thresholds."""

    name = "precision"

    def _ratio(self, tp, fp, tn, fn):
        return _div_no_nan(tp, tp + fp)


class Recall(_Confusion):
    name = "recall"

    def _ratio(self, tp, fp, tn, fn):
        return _div_no_nan(tp, tp + fn)


class AUC(Metric):
    """Area under the ROC or PR curve, Keras's approximation (see the module docstring)."""

    name = "auc"

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name=None,
                 dtype=None, thresholds=None, multi_label=False, num_labels=None, label_weights=None,
                 from_logits=False):
        if str(curve).upper() not in ("ROC", "PR"):
            raise ValueError(f"AUC curve must be 'ROC' or 'PR', got {curve!r}")
        if summation_method not in ("interpolation", "minoring", "majoring"):
            raise ValueError("AUC summation_method must be 'interpolation', 'minoring' or 'majoring', "
                             f"got {summation_method!r}")
        if thresholds is not None:
            inner = sorted(float(t) for t in _thresholds(thresholds, 0.5))
            self.evenly = False
        else:
            if num_thresholds <= 1:
                raise ValueError(f"AUC num_thresholds must be > 1, got {num_thresholds}")
            inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            self.evenly = True
        self.threshold_values = [0.0 - EPSILON] + inner + [1.0 + EPSILON]
        self.num_thresholds = len(self.threshold_values)
        self.curve, self.summation_method = str(curve).upper(), summation_method
        self.multi_label, self.num_labels, self.from_logits = multi_label, num_labels, from_logits
        self.label_weights = None if label_weights is None else torch.as_tensor(label_weights,
                                                                                dtype=torch.float32)
        super().__init__(name)

    def reset(self):
        self.counts = None  # (4, T[, labels])

    def update_state(self, y_true, y_pred, sample_weight=None):
        yt, yp, w = _targets_predictions(y_true, y_pred, sample_weight)
        if self.from_logits:
            yp = torch.sigmoid(yp)
        if self.label_weights is not None and not self.multi_label:
            w = w * self.label_weights.to(w.device)[None, :]
        if not self.multi_label:
            yt, yp, w = yt.reshape(-1, 1), yp.reshape(-1, 1), w.reshape(-1, 1)
        t, labels = self.num_thresholds, yp.shape[1]
        pos_w, neg_w = yt * w, (1 - yt) * w
        if self.evenly:
            # the last threshold each prediction exceeds, then counts from the top down
            idx = (torch.ceil(yp * (t - 1)) - 1).clamp(0, t - 2).long()
            idx = torch.where(yp > self.threshold_values[0], idx, torch.full_like(idx, -1))
            flat = (idx.clamp(min=0) * labels + torch.arange(labels, device=yp.device)).reshape(-1)
            valid = (idx >= 0).reshape(-1).float()

            def above(values):
                buckets = torch.zeros(t * labels, device=yp.device).scatter_add_(
                    0, flat, values.reshape(-1) * valid).reshape(t, labels)
                return buckets.flip(0).cumsum(0).flip(0)
            tp, fp = above(pos_w), above(neg_w)
        else:
            thr = torch.tensor(self.threshold_values, dtype=yp.dtype, device=yp.device)[:, None, None]
            pred = (yp[None] > thr).float()  # (T, N, labels)
            tp, fp = (pred * pos_w[None]).sum(1), (pred * neg_w[None]).sum(1)
        fn = pos_w.sum(0)[None] - tp
        tn = neg_w.sum(0)[None] - fp
        counts = torch.stack([tp, fp, tn, fn])
        self.counts = counts if self.counts is None else self.counts + counts

    def _by_label(self, by_label):
        if not self.multi_label:
            return by_label.sum()
        if self.label_weights is None:
            return by_label.mean()
        lw = self.label_weights.to(by_label.device)
        return _div_no_nan((by_label * lw).sum(), lw.sum())

    def _interpolate_pr_auc(self, tp, fp, fn):
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = _div_no_nan(dtp, dp.clamp(min=0))
        intercept = tp[1:] - slope * p[1:]
        ratio = torch.where((p[:-1] > 0) & (p[1:] > 0), _div_no_nan(p[:-1], p[1:].clamp(min=0)),
                            torch.ones_like(p[1:]))
        increment = _div_no_nan(slope * (dtp + intercept * torch.log(ratio)), (tp[1:] + fn[1:]).clamp(min=0))
        return self._by_label(increment.sum(0))

    def result(self):
        if self.counts is None:
            return 0.0
        tp, fp, tn, fn = self.counts.double()
        if self.curve == "PR" and self.summation_method == "interpolation":
            return float(self._interpolate_pr_auc(tp, fp, fn))
        recall = _div_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _div_no_nan(fp, fp + tn), recall
        else:
            x, y = recall, _div_no_nan(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2
        elif self.summation_method == "minoring":
            heights = torch.minimum(y[:-1], y[1:])
        else:
            heights = torch.maximum(y[:-1], y[1:])
        return float(self._by_label(((x[:-1] - x[1:]) * heights).sum(0)))


class FBetaScore(Metric):
    """Keras's F-beta per class of 2-D (samples, classes) predictions, averaged by ``average``
    (None: one score per class, 'micro', 'macro', 'weighted')."""

    name = "fbeta_score"

    def __init__(self, average=None, beta=1.0, threshold=None, name=None, dtype=None):
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError(f"average must be None, 'micro', 'macro' or 'weighted', got {average!r}")
        if beta <= 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        if threshold is not None and not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.average, self.beta, self.threshold = average, float(beta), threshold
        super().__init__(name)

    def reset(self):
        self.sums = None  # tp, fp, fn, support

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = as_tensor(y_pred)
        y_true = one_hot_like(as_tensor(y_true).to(y_pred.device), y_pred)
        if y_pred.ndim != 2 or y_true.shape != y_pred.shape:
            raise ValueError(f"{type(self).__name__} takes 2-D (samples, classes) y_true and y_pred "
                             f"of one shape, got {tuple(y_true.shape)} and {tuple(y_pred.shape)}")
        if self.threshold is None:
            pred = (y_pred >= y_pred.max(dim=-1, keepdim=True).values) & (y_pred.abs() > 1e-9)
        else:
            pred = y_pred > self.threshold
        pred = pred.float()
        w = torch.ones(len(y_pred), 1, device=y_pred.device) if sample_weight is None else \
            as_tensor(sample_weight).to(y_pred.device).reshape(-1, 1)
        dims = None if self.average == "micro" else 0

        def total(v):
            v = v * w
            return v.sum() if dims is None else v.sum(0)
        sums = torch.stack([total(pred * y_true), total(pred * (1 - y_true)), total((1 - pred) * y_true),
                            total(y_true)])
        self.sums = sums if self.sums is None else self.sums + sums

    def result(self):
        if self.sums is None:
            return 0.0
        tp, fp, fn, support = self.sums.double()
        precision = tp / (tp + fp + EPSILON)
        recall = tp / (tp + fn + EPSILON)
        b2 = self.beta ** 2
        score = precision * recall / (b2 * precision + recall + EPSILON) * (1 + b2)
        if self.average == "weighted":
            score = (score * support / (support.sum() + EPSILON)).sum()
        elif self.average is not None:
            score = score.mean()
        return score.tolist()


class F1Score(FBetaScore):
    name = "f1_score"

    def __init__(self, average=None, threshold=None, name=None, dtype=None):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name)


class MeanMetricWrapper(Metric):
    """The weighted mean of ``fn(y_true, y_pred)`` (per sample or per element), Keras's way of
    making a metric from a function. ``one_hot_targets``: index labels reach ``fn`` as one-hot
    rows against (samples, classes) predictions, as Keras users' categorical code expects."""

    def __init__(self, fn, name=None, dtype=None, one_hot_targets=True, **kwargs):
        self.fn, self.fn_kwargs, self.one_hot_targets = fn, kwargs, one_hot_targets
        super().__init__(name or getattr(fn, "name", None) or getattr(fn, "__name__", "metric"))

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = as_tensor(y_pred)
        y_true = as_tensor(y_true).to(y_pred.device)
        if self.one_hot_targets:
            y_true = one_hot_like(y_true, y_pred)
        if isinstance(self.fn, kl.Loss):
            values = self.fn.per_sample(y_pred, y_true, outputs_are_logits=False)
        else:
            values = torch.as_tensor(self.fn(y_true, y_pred, **self.fn_kwargs))
        if values.ndim == 0:
            values = values.expand(len(y_pred))
        self._add_weighted(values.float(), sample_weight)


class MeanAbsoluteError(MeanMetricWrapper):
    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(kl.mean_absolute_error, name)


class MeanSquaredError(MeanMetricWrapper):
    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(kl.mean_squared_error, name)


class MeanAbsolutePercentageError(MeanMetricWrapper):
    def __init__(self, name="mean_absolute_percentage_error", dtype=None):
        super().__init__(kl.mean_absolute_percentage_error, name)


class MeanSquaredLogarithmicError(MeanMetricWrapper):
    def __init__(self, name="mean_squared_logarithmic_error", dtype=None):
        super().__init__(kl.mean_squared_logarithmic_error, name)


class KLDivergence(MeanMetricWrapper):
    def __init__(self, name="kl_divergence", dtype=None):
        super().__init__(kl.kl_divergence, name)


class RootMeanSquaredError(MeanMetricWrapper):
    """The square root of the mean squared error over every element."""

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(lambda y_true, y_pred: (y_pred - y_true.reshape(y_pred.shape)) ** 2, name)

    def result(self):
        value = super().result()
        return math.sqrt(value) if value == value else value
