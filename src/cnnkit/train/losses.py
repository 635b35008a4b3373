"""Loss names (Keras spelling) -> callables on (outputs, targets).

Cross-entropy losses are always computed from logits (log-softmax / log-sigmoid), which is
the numerically stable form; the engine hands them the pre-activation output of a model that
ends in softmax or sigmoid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["Loss", "get", "NAMES"]


REDUCTIONS = ("sum_over_batch_size", "mean", "sum", "mean_with_sample_weight", "none", None, "auto")


class Loss:
    """A named loss. ``per_sample(outputs, targets, outputs_are_logits) -> (N,)``, then
    weighted and reduced as Keras's ``reduction`` says.

    Two calls: Keras's ``loss(y_true, y_pred, sample_weight=None)`` (y_pred as the model
    outputs it, logits with ``from_logits=True``), and the engine's
    ``loss(outputs, targets, sample_weight=..., outputs_are_logits=...)``, told by the keyword.
    """

    #: activation whose pre-activation output this loss wants ('softmax', 'sigmoid' or None)
    fused_activation: str | None = None
    #: targets may be anything (signed labels, values), not only class indices
    any_targets = False
    name = "loss"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0,
                 reduction: str | None = "sum_over_batch_size", name: str | None = None):
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {', '.join(map(str, REDUCTIONS))}, got {reduction!r}")
        self.from_logits = from_logits
        self.label_smoothing = float(label_smoothing)
        self.reduction = reduction
        if name:
            self.name = name

    def per_sample(self, outputs, targets, outputs_are_logits: bool) -> torch.Tensor:
        raise NotImplementedError

    def target_problem(self, targets: torch.Tensor) -> str | None:
        """Why this loss cannot take ``targets`` (one line saying what to change), or None."""
        return None

    def __call__(self, outputs, targets, sample_weight=None, outputs_are_logits=None):
        if outputs_are_logits is None:  # Keras's call: loss(y_true, y_pred)
            y_true, y_pred = _as_tensor(outputs), _as_tensor(targets)
            values = self.per_sample(y_pred, y_true.to(y_pred.device), self.from_logits)
            return self._reduce(values, sample_weight, keep_none=True)
        values = self.per_sample(outputs, targets, outputs_are_logits)
        return self._reduce(values, sample_weight)

    def _reduce(self, values, sample_weight, keep_none=False):
        weights = None if sample_weight is None else _as_tensor(sample_weight).to(values.device)
        if weights is not None:
            values = values * weights.reshape(len(values), *([1] * (values.ndim - 1)))
        if self.reduction in ("none", None):
            return values if keep_none else values.mean()  # training needs one number
        if self.reduction == "sum":
            return values.sum()
        if self.reduction == "mean_with_sample_weight" and weights is not None:
            return values.sum() / weights.sum().clamp(min=1e-12)
        return values.mean()  # sum_over_batch_size (Keras's default), mean

    def __repr__(self):
        return f"{type(self).__name__}(from_logits={self.from_logits})"

    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction, "from_logits": self.from_logits}


def _as_tensor(value) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    import numpy as np
    arr = np.asarray(value)
    return torch.as_tensor(arr, dtype=torch.float32 if arr.dtype.kind == "f" else None)


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

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size", name=None,
                 label_smoothing=0.0, dtype=None):
        super().__init__(from_logits=from_logits, label_smoothing=label_smoothing, reduction=reduction,
                         name=name)
        self.ignore_class = ignore_class

    def per_sample(self, outputs, targets, outputs_are_logits):
        if self.ignore_class is not None:  # ignored samples count zero, as Keras masks them
            keep = targets.reshape(len(targets), -1)[:, 0] != self.ignore_class
            safe = torch.where(keep, targets.reshape(keep.shape).long(),
                               torch.zeros_like(keep, dtype=torch.long))
            values = self._per_sample(outputs, safe, outputs_are_logits)
            self._kept = keep  # the batch mean is over the samples kept (Keras's mask)
            return torch.where(keep, values, torch.zeros_like(values))
        return self._per_sample(outputs, targets, outputs_are_logits)

    def _reduce(self, values, sample_weight, keep_none=False):
        kept = self.__dict__.pop("_kept", None)
        if kept is None or self.reduction not in ("sum_over_batch_size", "mean", "auto"):
            return super()._reduce(values, sample_weight, keep_none)
        weights = None if sample_weight is None else _as_tensor(sample_weight).to(values.device)
        values = values if weights is None else values * weights
        return values.sum() / kept.sum().clamp(min=1)

    def _per_sample(self, outputs, targets, outputs_are_logits):
        if targets.ndim == 2 and targets.shape[1] == 1:
            targets = targets[:, 0]
        if targets.ndim == 1 and targets.is_floating_point() and bool((targets == targets.round()).all()):
            targets = targets.long()
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


def _keras_losses() -> dict:
    from . import keras_losses as kl
    return {"binary_focal_crossentropy": kl.BinaryFocalCrossentropy,
            "categorical_focal_crossentropy": kl.CategoricalFocalCrossentropy,
            "hinge": kl.Hinge, "squared_hinge": kl.SquaredHinge, "categorical_hinge": kl.CategoricalHinge,
            "huber": kl.Huber, "huber_loss": kl.Huber, "log_cosh": kl.LogCosh, "logcosh": kl.LogCosh,
            "kl_divergence": kl.KLDivergence, "kld": kl.KLDivergence, "poisson": kl.Poisson,
            "cosine_similarity": kl.CosineSimilarity,
            "mape": kl.MeanAbsolutePercentageError,
            "mean_absolute_percentage_error": kl.MeanAbsolutePercentageError,
            "msle": kl.MeanSquaredLogarithmicError,
            "mean_squared_logarithmic_error": kl.MeanSquaredLogarithmicError}


def get(loss) -> Loss:
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, type) and issubclass(loss, Loss):
        return loss()
    if isinstance(loss, str):
        key = loss.lower()
        if key in _LOSSES:
            return _LOSSES[key]()
        extra = _keras_losses()
        if key not in extra:
            raise ValueError(f"unknown loss {loss!r}; valid names: {', '.join(NAMES + tuple(extra))}")
        return extra[key]()
    if isinstance(loss, torch.nn.CrossEntropyLoss):
        return SparseCategoricalCrossentropy(from_logits=True, label_smoothing=loss.label_smoothing)
    if isinstance(loss, torch.nn.MSELoss):
        return MeanSquaredError()
    if callable(loss) and not isinstance(loss, torch.nn.Module):  # Keras's f(y_true, y_pred)
        from .keras_losses import FunctionLoss
        return FunctionLoss(loss)
    raise TypeError(f"loss must be a name ({', '.join(NAMES)}) or a cnnkit.losses.Loss, got {loss!r}")
