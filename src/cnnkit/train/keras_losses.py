"""Keras's other loss classes and its per-sample loss functions, with Keras's arithmetic.

Each class is a ``cnnkit.losses.Loss``: ``per_sample(y_pred, y_true, outputs_are_logits)``
gives one value per sample and the base class weighs and reduces it as Keras's ``reduction``
says. The functions (``mean_absolute_error`` ...) take ``(y_true, y_pred)`` like Keras's and
also serve the mean metrics.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .losses import Loss
from .metric_base import one_hot_like

EPSILON = 1e-7

__all__ = ["BinaryFocalCrossentropy", "CategoricalFocalCrossentropy", "Hinge", "SquaredHinge",
           "CategoricalHinge", "Huber", "LogCosh", "KLDivergence", "Poisson", "CosineSimilarity",
           "MeanAbsolutePercentageError", "MeanSquaredLogarithmicError", "FunctionLoss",
           "mean_absolute_error", "mean_squared_error", "mean_absolute_percentage_error",
           "mean_squared_logarithmic_error", "kl_divergence", "hinge", "squared_hinge",
           "categorical_hinge", "huber", "log_cosh", "poisson", "cosine_similarity"]


def _pair(y_true, y_pred):
    return one_hot_like(y_true, y_pred).to(y_pred.dtype).reshape(y_pred.shape), y_pred


# -- per-sample functions, (y_true, y_pred) as Keras orders them ----------------------------
def mean_absolute_error(y_true, y_pred):
    y_true, y_pred = _pair(y_true, y_pred)
    return (y_pred - y_true).abs().mean(dim=-1)


def mean_squared_error(y_true, y_pred):
    y_true, y_pred = _pair(y_true, y_pred)
    return (y_pred - y_true).pow(2).mean(dim=-1)


def mean_absolute_percentage_error(y_true, y_pred):
    y_true, y_pred = _pair(y_true, y_pred)
    return 100.0 * ((y_true - y_pred) / y_true.abs().clamp(min=EPSILON)).abs().mean(dim=-1)


def mean_squared_logarithmic_error(y_true, y_pred):
    y_true, y_pred = _pair(y_true, y_pred)
    first = torch.log(y_pred.clamp(min=EPSILON) + 1.0)
    second = torch.log(y_true.clamp(min=EPSILON) + 1.0)
    return (first - second).pow(2).mean(dim=-1)


def kl_divergence(y_true, y_pred):
    y_true, y_pred = _pair(y_true, y_pred)
    y_true, y_pred = y_true.clamp(EPSILON, 1), y_pred.clamp(EPSILON, 1)
    return (y_true * torch.log(y_true / y_pred)).sum(dim=-1)


def _signed(y_true):
    """Hinge targets: 0/1 labels become -1/1, as Keras converts them."""
    is_binary = bool(((y_true == 0) | (y_true == 1)).all())
    return y_true * 2 - 1 if is_binary else y_true


def hinge(y_true, y_pred):
    y_true, y_pred = _pair(y_true, y_pred)
    return (1.0 - _signed(y_true) * y_pred).clamp(min=0).mean(dim=-1)


def squared_hinge(y_true, y_pred):
    y_true, y_pred = _pair(y_true, y_pred)
    return (1.0 - _signed(y_true) * y_pred).clamp(min=0).pow(2).mean(dim=-1)


def categorical_hinge(y_true, y_pred):
    y_true, y_pred = _pair(y_true, y_pred)
    pos = (y_true * y_pred).sum(dim=-1)
    neg = ((1.0 - y_true) * y_pred).max(dim=-1).values
    return (neg - pos + 1.0).clamp(min=0)


def huber(y_true, y_pred, delta=1.0):
    y_true, y_pred = _pair(y_true, y_pred)
    error = (y_pred - y_true).abs()
    return torch.where(error <= delta, 0.5 * error ** 2, delta * error - 0.5 * delta ** 2).mean(dim=-1)


def log_cosh(y_true, y_pred):
    y_true, y_pred = _pair(y_true, y_pred)
    x = y_pred - y_true
    return (x + F.softplus(-2.0 * x) - math.log(2.0)).mean(dim=-1)


def poisson(y_true, y_pred):
    y_true, y_pred = _pair(y_true, y_pred)
    return (y_pred - y_true * torch.log(y_pred + EPSILON)).mean(dim=-1)


def cosine_similarity(y_true, y_pred):
    y_true, y_pred = _pair(y_true, y_pred)

    def unit(v):  # keras.ops.normalize's l2: v / sqrt(max(sum(v^2), 1e-12))
        return v / torch.sqrt((v * v).sum(dim=-1, keepdim=True).clamp(min=1e-12))
    return -(unit(y_true) * unit(y_pred)).sum(dim=-1)


# -- classes ------------------------------------------------------------------------------
class _FunctionOfProbabilities(Loss):
    """A loss of (y_true, y_pred) with y_pred as the model outputs it."""

    any_targets = True  # targets need not be class indices (signed labels, regression values)
    fn = staticmethod(mean_absolute_error)

    def per_sample(self, outputs, targets, outputs_are_logits):
        return self.fn(targets, outputs)


class Hinge(_FunctionOfProbabilities):
    name = "hinge"
    fn = staticmethod(hinge)


class SquaredHinge(_FunctionOfProbabilities):
    name = "squared_hinge"
    fn = staticmethod(squared_hinge)


class CategoricalHinge(_FunctionOfProbabilities):
    name = "categorical_hinge"
    any_targets = False
    fn = staticmethod(categorical_hinge)


class LogCosh(_FunctionOfProbabilities):
    name = "log_cosh"
    fn = staticmethod(log_cosh)


class KLDivergence(_FunctionOfProbabilities):
    name = "kl_divergence"
    fn = staticmethod(kl_divergence)


class Poisson(_FunctionOfProbabilities):
    name = "poisson"
    fn = staticmethod(poisson)


class MeanAbsolutePercentageError(_FunctionOfProbabilities):
    name = "mean_absolute_percentage_error"
    fn = staticmethod(mean_absolute_percentage_error)


class MeanSquaredLogarithmicError(_FunctionOfProbabilities):
    name = "mean_squared_logarithmic_error"
    fn = staticmethod(mean_squared_logarithmic_error)


class Huber(_FunctionOfProbabilities):
    name = "huber_loss"

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(reduction=reduction, name=name)
        self.delta = float(delta)

    def per_sample(self, outputs, targets, outputs_are_logits):
        return huber(targets, outputs, self.delta)


class CosineSimilarity(_FunctionOfProbabilities):
    name = "cosine_similarity"

    def __init__(self, axis=-1, reduction="sum_over_batch_size", name=None, dtype=None):
        if axis != -1:
            raise NotImplementedError("CosineSimilarity supports axis=-1 only")
        super().__init__(reduction=reduction, name=name)

    fn = staticmethod(cosine_similarity)


class BinaryFocalCrossentropy(Loss):
    """Binary cross-entropy scaled by ``(1 - p_t) ** gamma`` (and ``alpha`` balancing)."""

    fused_activation = "sigmoid"
    name = "binary_focal_crossentropy"

    def __init__(self, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False,
                 label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(from_logits=from_logits, label_smoothing=label_smoothing, reduction=reduction,
                         name=name)
        self.apply_class_balancing, self.alpha, self.gamma = apply_class_balancing, float(alpha), float(gamma)

    def per_sample(self, outputs, targets, outputs_are_logits):
        y = targets.to(outputs.dtype).reshape(outputs.shape)
        if self.label_smoothing:
            y = y * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
        if outputs_are_logits:
            bce = F.binary_cross_entropy_with_logits(outputs, y, reduction="none")
            p = torch.sigmoid(outputs)
        else:
            p = outputs.clamp(EPSILON, 1 - EPSILON)
            bce = -(y * torch.log(p) + (1 - y) * torch.log(1 - p))
        p_t = y * p + (1 - y) * (1 - p)
        focal = (1 - p_t) ** self.gamma * bce
        if self.apply_class_balancing:
            focal = (y * self.alpha + (1 - y) * (1 - self.alpha)) * focal
        return focal.reshape(len(focal), -1).mean(dim=-1)


class CategoricalFocalCrossentropy(Loss):
    """Categorical cross-entropy scaled by ``alpha * (1 - p) ** gamma`` per class."""

    fused_activation = "softmax"
    name = "categorical_focal_crossentropy"

    def __init__(self, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(from_logits=from_logits, label_smoothing=label_smoothing, reduction=reduction,
                         name=name)
        self.alpha, self.gamma = float(alpha), float(gamma)

    def per_sample(self, outputs, targets, outputs_are_logits):
        y = one_hot_like(targets, outputs).to(outputs.dtype)
        if self.label_smoothing:
            y = y * (1 - self.label_smoothing) + self.label_smoothing / outputs.shape[-1]
        p = F.softmax(outputs, dim=-1) if outputs_are_logits else outputs
        p = (p / p.sum(dim=-1, keepdim=True)).clamp(EPSILON, 1 - EPSILON)
        return (self.alpha * (1 - p) ** self.gamma * -(y * torch.log(p))).sum(dim=-1)


class FunctionLoss(Loss):
    """A plain function ``f(y_true, y_pred) -> per-sample losses`` used as a loss, as in Keras.
    ``y_pred`` is what the model outputs; index labels reach ``f`` as one-hot rows against
    (samples, classes) outputs."""

    any_targets = True

    def __init__(self, fn, reduction="sum_over_batch_size", name=None):
        super().__init__(reduction=reduction, name=name or getattr(fn, "__name__", "loss"))
        self.fn = fn

    def per_sample(self, outputs, targets, outputs_are_logits):
        values = torch.as_tensor(self.fn(one_hot_like(targets, outputs), outputs))
        return values.reshape(len(outputs), -1).mean(dim=-1) if values.ndim > 1 else values
