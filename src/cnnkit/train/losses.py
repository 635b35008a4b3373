"""Loss names (Keras spelling) -> callables on (outputs, targets).

Cross-entropy losses are always computed from logits (log-softmax / log-sigmoid), which is
the numerically stable form; the engine hands them the pre-activation output of a model that
ends in softmax or sigmoid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["Loss", "get", "NAMES"]


class Loss:
    """A named loss. ``per_sample(outputs, targets) -> (N,)`` then weighted mean."""

    #: activation whose pre-activation output this loss wants ('softmax', 'sigmoid' or None)
    fused_activation: str | None = None
    name = "loss"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0,
                 reduction: str = "mean"):
        self.from_logits = from_logits
        self.label_smoothing = float(label_smoothing)
        self.reduction = reduction

    def per_sample(self, outputs, targets, outputs_are_logits: bool) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, outputs, targets, sample_weight=None, outputs_are_logits=None):
        if outputs_are_logits is None:
            outputs_are_logits = self.from_logits
        values = self.per_sample(outputs, targets, outputs_are_logits)
        if sample_weight is not None:
            values = values * sample_weight
        return values.mean() if self.reduction == "mean" else values.sum()

    def __repr__(self):
        return f"{type(self).__name__}(from_logits={self.from_logits})"


def _as_log_probs(outputs, outputs_are_logits):
    if outputs_are_logits:
        return F.log_softmax(outputs, dim=1)
    # Probabilities from a model we cannot see inside: clip like Keras does.
    return torch.log(outputs.clamp(1e-7, 1 - 1e-7))


class CategoricalCrossentropy(Loss):
    """Targets one-hot (or soft) rows; integer class indices are accepted too."""

    fused_activation = "softmax"
    name = "categorical_crossentropy"

    def per_sample(self, outputs, targets, outputs_are_logits):
        logp = _as_log_probs(outputs, outputs_are_logits)
        if targets.dtype != torch.float32 or targets.ndim == 1:
            targets = F.one_hot(targets.long(), logp.shape[1]).to(logp.dtype)
        if self.label_smoothing:
            targets = targets * (1 - self.label_smoothing) + self.label_smoothing / logp.shape[1]
        return -(targets * logp).sum(dim=1)


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Targets integer class indices; one-hot rows are accepted too."""

    name = "sparse_categorical_crossentropy"

    def per_sample(self, outputs, targets, outputs_are_logits):
        if targets.ndim == 1 and outputs_are_logits and not targets.is_floating_point():
            return F.cross_entropy(outputs, targets, reduction="none",
                                   label_smoothing=self.label_smoothing)
        return super().per_sample(outputs, targets, outputs_are_logits)


class BinaryCrossentropy(Loss):
    fused_activation = "sigmoid"
    name = "binary_crossentropy"

    def per_sample(self, outputs, targets, outputs_are_logits):
        targets = targets.to(outputs.dtype).reshape(outputs.shape)
        if self.label_smoothing:
            targets = targets * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
        if outputs_are_logits:
            values = F.binary_cross_entropy_with_logits(outputs, targets, reduction="none")
        else:
            values = F.binary_cross_entropy(outputs.clamp(1e-7, 1 - 1e-7), targets, reduction="none")
        return values.flatten(1).mean(dim=1)


class _Regression(Loss):
    def _targets(self, outputs, targets):
        if not targets.is_floating_point() and targets.ndim == 1 and outputs.ndim == 2 and outputs.shape[1] > 1:
            targets = F.one_hot(targets, outputs.shape[1])  # class indices vs. a class-score output
        return targets.to(outputs.dtype).reshape(outputs.shape)


class MeanSquaredError(_Regression):
    name = "mse"

    def per_sample(self, outputs, targets, outputs_are_logits):
        return (outputs - self._targets(outputs, targets)).pow(2).flatten(1).mean(dim=1)


class MeanAbsoluteError(_Regression):
    name = "mae"

    def per_sample(self, outputs, targets, outputs_are_logits):
        return (outputs - self._targets(outputs, targets)).abs().flatten(1).mean(dim=1)


_LOSSES = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    # PyTorch spelling, for plain-module users
    "cross_entropy": SparseCategoricalCrossentropy,
}
NAMES = tuple(_LOSSES)


def get(loss) -> Loss:
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str):
        key = loss.lower()
        if key not in _LOSSES:
            raise ValueError(f"unknown loss {loss!r}; valid names: {', '.join(NAMES)}")
        return _LOSSES[key]()
    if isinstance(loss, torch.nn.CrossEntropyLoss):
        return SparseCategoricalCrossentropy(from_logits=True, label_smoothing=loss.label_smoothing)
    if isinstance(loss, torch.nn.MSELoss):
        return MeanSquaredError()
    raise TypeError(f"loss must be a name ({', '.join(NAMES)}) or a cnnkit.losses.Loss, got {loss!r}")
