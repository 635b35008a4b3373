"""The Metric base class shared by cnnkit's metrics (``cnnkit.metrics``).

Two ways in: the engine calls ``update(outputs, targets, outputs_are_logits)`` with what the
loss saw (pre-activation outputs when the model ends in softmax/sigmoid), and Keras code
calls ``update_state(y_true, y_pred, sample_weight=None)`` with predictions as the model
gives them. ``result()`` is the only host sync.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def as_tensor(value, dtype=torch.float32) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().to(dtype)
    return torch.as_tensor(np.asarray(value), dtype=dtype)


class Metric:
    name = "metric"
    #: the model's output activation ('softmax' / 'sigmoid' / None), set by compile: the
    #: engine's pre-activation outputs get it before ``update_state`` (what Keras's metrics see)
    activation: str | None = None

    def __init__(self, name: str | None = None, dtype=None):
        if name:
            self.name = name
        self.reset()

    # -- Keras's names ------------------------------------------------------------
    def reset_state(self):
        self.reset()

    def update_state(self, y_true, y_pred, sample_weight=None):
        raise NotImplementedError(f"{type(self).__name__} has no update_state")

    def __call__(self, y_true, y_pred, sample_weight=None):
        """Keras's stand-alone use: update with one batch and return the result."""
        self.update_state(y_true, y_pred, sample_weight)
        return self.result()

    # -- the engine's call ----------------------------------------------------------
    def update(self, outputs, targets, outputs_are_logits=False):
        self.update_state(targets, self.predictions(outputs, outputs_are_logits))

    def predictions(self, outputs, outputs_are_logits):
        """What the model would output: the activation applied to pre-activation outputs."""
        if outputs_are_logits and self.activation == "softmax":
            return F.softmax(outputs, dim=-1)
        if outputs_are_logits and self.activation == "sigmoid":
            return torch.sigmoid(outputs)
        return outputs

    # -- running mean state (the accuracy family) --------------------------------------
    def reset(self):
        self.total = None
        self.count = 0

    def _add(self, value: torch.Tensor, n):
        value = value.detach()
        self.total = value if self.total is None else self.total + value
        self.count = self.count + n

    def _add_weighted(self, values: torch.Tensor, sample_weight=None):
        """Per-sample ``values``: sum(values * w) / sum(w) accumulates (w = 1 without weights)."""
        values = values.detach().float()
        if sample_weight is None:
            self._add(values.sum(), values.numel())
            return
        w = as_tensor(sample_weight).to(values.device).reshape(len(values), *([1] * (values.ndim - 1)))
        w = w.expand_as(values)
        self._add((values * w).sum(), w.sum())

    def result(self):
        if not isinstance(self.count, torch.Tensor) and not self.count:
            return float("nan")
        count = float(self.count)
        return float(self.total) / count if count else 0.0

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"


def one_hot_like(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """Integer class indices against an (N, C) prediction -> float one-hot rows (Keras's
    categorical metrics and losses take one-hot targets; cnnkit keeps labels as indices)."""
    if y_true.ndim == 1 and y_pred.ndim == 2 and y_pred.shape[1] > 1 and not y_true.is_floating_point():
        return F.one_hot(y_true.long(), y_pred.shape[1]).to(y_pred.dtype)
    if y_true.ndim == 1 and y_pred.ndim == 2 and y_pred.shape[1] > 1 and y_true.is_floating_point() \
            and bool((y_true == y_true.round()).all()):
        return F.one_hot(y_true.long(), y_pred.shape[1]).to(y_pred.dtype)
    return y_true.to(y_pred.dtype).reshape(y_pred.shape) if y_true.numel() == y_pred.numel() else y_true
