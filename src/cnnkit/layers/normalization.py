"""LayerNormalization and GroupNormalization (BatchNormalization is in ``core``).

``axis`` is Keras's (channels-last: -1 is the channel axis of an image). Both use the biased
variance and ``epsilon=1e-3``, as Keras does; gamma and beta have Keras's shapes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._layout import from_keras, keras_axes, keras_shape_of, to_keras
from .core import Layer
from .keras_weights import KerasWeight

__all__ = ["LayerNormalization", "GroupNormalization"]


class _Normalization(Layer):
    weight_options = ("gamma", "beta")
    default_initializers = {"gamma": "ones", "beta": "zeros"}

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, **kwargs):
        super().__init__(**kwargs)
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else int(axis)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)

    def _make_weights(self, shape: tuple) -> None:
        self.gamma = nn.Parameter(torch.ones(shape)) if self.scale else None
        self.beta = nn.Parameter(torch.zeros(shape)) if self.center else None

    def keras_weights(self):
        gamma, beta = getattr(self, "gamma", None), getattr(self, "beta", None)
        return ([KerasWeight("gamma", gamma)] if gamma is not None else []) + \
               ([KerasWeight("beta", beta)] if beta is not None else [])

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale}


class LayerNormalization(_Normalization):
    """Normalizes each example over ``axis`` (default the channels), on the Keras view.

    ``rms_scaling=True`` is Keras 3's (deprecated there): ``x / sqrt(var + epsilon) * gamma``,
    no centering and no beta."""

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, rms_scaling=False,
                 **kwargs):
        super().__init__(axis, epsilon, center and not rms_scaling, scale, **kwargs)
        self.rms_scaling = bool(rms_scaling)

    def _build(self, s):
        keras = keras_shape_of(s)
        self.axes = keras_axes(self.axis, len(keras) + 1, "LayerNormalization")
        self._make_weights(tuple(keras[a - 1] for a in self.axes))
        # gamma/beta broadcast over the Keras-view batch: 1 on the axes not normalized
        self._broadcast = tuple(keras[a - 1] if a in self.axes else 1
                                for a in range(1, len(keras) + 1))

    def forward(self, x):
        xk = to_keras(x)
        var, mean = torch.var_mean(xk, dim=self.axes, keepdim=True, correction=0)
        out = (xk if self.rms_scaling else xk - mean) * torch.rsqrt(var + self.epsilon)
        if self.gamma is not None:
            out = out * self.gamma.reshape(self._broadcast)
        if self.beta is not None:
            out = out + self.beta.reshape(self._broadcast)
        return from_keras(out)

    def get_config(self):
        config = super().get_config()
        return {**config, "rms_scaling": True} if self.rms_scaling else config


class GroupNormalization(_Normalization):
    """Splits the channels into ``groups`` consecutive groups (as Keras does) and normalizes
    each group over its channels and pixels."""

    def __init__(self, groups=32, axis=-1, epsilon=1e-3, center=True, scale=True, **kwargs):
        super().__init__(axis, epsilon, center, scale, **kwargs)
        self.groups = int(groups)

    def _check_input(self, s):
        rank = len(s) + 1
        if keras_axes(self.axis, rank, "GroupNormalization") != (rank - 1,):
            raise ValueError(f"GroupNormalization axis={self.axis!r}: only the channel axis (-1) "
                             "is supported")
        channels = s[0] if len(s) == 3 else s[-1]
        if channels % self.groups:
            raise self._shape_error(f"channels divisible by groups={self.groups}", s,
                                    "choose groups that divide the channel count")

    def _build(self, s):
        self._make_weights(((s[0] if len(s) == 3 else s[-1]),))

    def forward(self, x):
        # F.group_norm wants channels on axis 1: NCHW images and (N, C) already have them
        moved = x.ndim == 3
        xc = x.transpose(1, 2) if moved else x
        out = F.group_norm(xc, self.groups, self.gamma, self.beta, self.epsilon)
        return out.transpose(1, 2) if moved else out

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}

