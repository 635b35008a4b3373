"""Keras's weight constraints (``kernel_constraint=constraints.max_norm(3)``), applied after
each optimizer step as Keras does.

A constraint maps a weight in Keras's layout to its projected value, so ``axis`` means what
it means in Keras (``axis=0`` of a Dense kernel ``(in, out)`` is the input axis; a conv kernel
is ``(kh, kw, in, out)``, so Keras's docs use ``axis=[0, 1, 2]`` there).
"""

from __future__ import annotations

import torch
from torch import nn

from ._serial import KerasObject, SerialRegistry

__all__ = ["Constraint", "MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm", "max_norm",
           "min_max_norm", "non_neg", "unit_norm", "get", "serialize", "step_function"]

_EPSILON = 1e-7  # Keras's backend.epsilon()


def _axes(axis):
    return tuple(int(a) for a in axis) if isinstance(axis, (list, tuple)) else int(axis)


class Constraint(KerasObject):
    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        return w


class _Norm(Constraint):
    def __init__(self, axis=0):
        self.axis = _axes(axis)

    def norms(self, w):
        return w.square().sum(dim=self.axis, keepdim=True).sqrt()

    def get_config(self):
        return {"axis": list(self.axis) if isinstance(self.axis, tuple) else self.axis}


class MaxNorm(_Norm):
    def __init__(self, max_value=2, axis=0):
        super().__init__(axis)
        self.max_value = float(max_value)

    def __call__(self, w):
        norms = self.norms(w)
        return w * (norms.clamp(0, self.max_value) / (_EPSILON + norms))

    def get_config(self):
        return {"max_value": self.max_value, **super().get_config()}


class MinMaxNorm(_Norm):
    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        super().__init__(axis)
        self.min_value, self.max_value, self.rate = float(min_value), float(max_value), float(rate)

    def __call__(self, w):
        norms = self.norms(w)
        desired = self.rate * norms.clamp(self.min_value, self.max_value) + (1 - self.rate) * norms
        return w * (desired / (_EPSILON + norms))

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                **super().get_config()}


class UnitNorm(_Norm):
    def __call__(self, w):
        return w / (_EPSILON + self.norms(w))


class NonNeg(Constraint):
    def __call__(self, w):
        return w.clamp(min=0)


max_norm, min_max_norm, non_neg, unit_norm = MaxNorm, MinMaxNorm, NonNeg, UnitNorm

_REGISTRY = SerialRegistry("constraint", Constraint, {
    "max_norm": MaxNorm, "min_max_norm": MinMaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm})
get = _REGISTRY.get
serialize = _REGISTRY.serialize


def step_function(model: nn.Module):
    """A function projecting every constrained weight (call after each optimizer step), or
    None when no layer has a constraint."""
    layers = [m for m in model.modules() if getattr(m, "has_constraints", False)]
    if not layers:
        return None

    def apply() -> None:
        for layer in layers:
            layer.apply_constraints()
    return apply
