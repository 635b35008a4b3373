"""Keras's weight regularizers (``kernel_regularizer=regularizers.l2(1e-4)``).

A regularizer maps a weight to a scalar penalty: ``L2(l2)(w) = l2 * sum(w**2)`` (default
0.01), ``L1(l1)(w) = l1 * sum(|w|)``, ``L1L2(l1=0, l2=0)``. Layers list their penalties in
``layer.losses``; ``fit`` adds their sum to the loss (:func:`penalty_function`).
"""

from __future__ import annotations

import torch
from torch import nn

from ._serial import KerasObject, SerialRegistry

__all__ = ["Regularizer", "L1", "L2", "L1L2", "l1", "l2", "l1_l2", "get", "serialize",
           "collect_losses", "penalty_function"]


class Regularizer(KerasObject):
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def _factor(name: str, value) -> float:
    value = float(value)
    if value < 0:
        raise ValueError(f"regularization factor {name}={value} must not be negative")
    return value


class L1L2(Regularizer):
    def __init__(self, l1=0.0, l2=0.0):
        self.l1, self.l2 = _factor("l1", l1), _factor("l2", l2)

    def __call__(self, x):
        penalty = x.new_zeros(())
        if self.l1:
            penalty = penalty + self.l1 * x.abs().sum()
        if self.l2:
            penalty = penalty + self.l2 * x.square().sum()
        return penalty

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(Regularizer):
    def __init__(self, l1=0.01):
        self.l1 = _factor("l1", l1)

    def __call__(self, x):
        return self.l1 * x.abs().sum()

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    def __init__(self, l2=0.01):
        self.l2 = _factor("l2", l2)

    def __call__(self, x):
        return self.l2 * x.square().sum()

    def get_config(self):
        return {"l2": self.l2}


l1, l2, l1_l2 = L1, L2, L1L2

_REGISTRY = SerialRegistry("regularizer", Regularizer, {"l1": L1, "l2": L2, "l1_l2": L1L2})
get = _REGISTRY.get
serialize = _REGISTRY.serialize


def _penalised_layers(model: nn.Module) -> list:
    return [m for m in model.modules() if getattr(m, "has_penalties", False)]


def collect_losses(model: nn.Module) -> list[torch.Tensor]:
    """Keras's ``model.losses``, in Keras's order: every layer's activity penalty (from its
    last call), then every weight penalty (computed now)."""
    layers = _penalised_layers(model)
    return [loss for layer in layers for loss in layer.activity_losses()] + \
           [loss for layer in layers for loss in layer.weight_losses()]


def penalty_function(model: nn.Module):
    """A function returning the sum of ``model.losses`` (for the training loss), or None when
    no layer has a regularizer (the engine then adds nothing)."""
    layers = _penalised_layers(model)
    if not layers:
        return None

    def total():
        return sum(loss.float() for layer in layers for loss in layer.losses)
    return total
