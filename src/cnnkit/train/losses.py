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

    def target_problem(self, targets: torch.Tensor) -> str | None:
        """Why this loss cannot take ``targets`` (one line saying what to change), or None."""
        return None

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

    def target_problem(self, targets):
        if targets.ndim == 1:
            frac = targets[targets != targets.round()] if targets.is_floating_point() else targets[:0]
            if len(frac):
                return (f"{self.name} takes integer class indices (or one-hot rows), but the "
                        f"labels hold fractions such as {float(frac[0]):g}; give class indices 0..N-1")
            if bool((targets < 0).any()):
                return (f"{self.name} takes class indices 0..N-1, but the labels hold "
                        f"{float(targets.min()):g}; map the labels to 0..N-1")
            return None
        if targets.is_floating_point() and bool(((targets < 0) | (targets > 1)).any()):
            return (f"{self.name} takes one-hot or probability rows with values in [0, 1], but "
                    f"the labels range from {float(targets.min()):g} to {float(targets.max()):g}")
        return None

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

    def target_problem(self, targets):
        outside = (targets < 0) | (targets > 1)
        if not bool(outside.any()):
            return None
        values = torch.unique(targets[outside])
        shown = ", ".join(f"{float(v):g}" for v in values[:5]) + (", ..." if len(values) > 5 else "")
        hint = ""
        if not targets.is_floating_point() and targets.ndim == 1 and int(targets.min()) >= 0:
            n = int(targets.max()) + 1
            hint = (f"; for {n} classes use loss='sparse_categorical_crossentropy' with a last "
                    f"Dense({n}, activation='softmax')")
        return (f"binary_crossentropy takes labels 0 or 1 (or probabilities between), but found "
                f"{shown} (it would train to a negative loss){hint}")

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
