"""LeakyReLU, PReLU, ELU and Softmax layers (ReLU and Activation are in ``core``).

Keras's defaults: LeakyReLU's ``negative_slope=0.3`` (the ``leaky_relu`` activation's is 0.2),
PReLU's alpha starts at zero with one value per input element (``shared_axes`` share it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._layout import from_keras, keras_axes, keras_shape_of, torch_axes
from .core import Layer
from .keras_weights import KerasWeight

__all__ = ["LeakyReLU", "PReLU", "ELU", "Softmax"]


class LeakyReLU(Layer):
    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:  # Keras 2's spelling
            negative_slope = kwargs.pop("alpha")
        super().__init__(**kwargs)
        if negative_slope < 0:
            raise ValueError(f"LeakyReLU negative_slope must be >= 0, got {negative_slope}")
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


class ELU(Layer):
    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = float(alpha)

    def forward(self, x):
        return F.elu(x, self.alpha)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


class PReLU(Layer):
    """``max(x, 0) - alpha * max(-x, 0)`` with a learned ``alpha`` in Keras's shape."""

    weight_options = ("alpha",)
    default_initializers = {"alpha": "zeros"}

    def __init__(self, shared_axes=None, **kwargs):
        super().__init__(**kwargs)
        if shared_axes is not None and not isinstance(shared_axes, (list, tuple)):
            shared_axes = [shared_axes]
        self.shared_axes = None if shared_axes is None else [int(a) for a in shared_axes]

    def _build(self, s):
        keras = list(keras_shape_of(s))
        for axis in self.shared_axes or []:
            if not 0 < axis <= len(keras):
                raise ValueError(f"PReLU shared_axes={self.shared_axes}: axes are 1..{len(keras)} "
                                 "(the non-batch axes, channels last)")
            keras[axis - 1] = 1
        self.alpha = nn.Parameter(torch.zeros(keras))  # Keras layout

    def forward(self, x):
        alpha = from_keras(self.alpha.unsqueeze(0))  # broadcasts over the NCHW batch
        return F.relu(x) - alpha * F.relu(-x)

    def keras_weights(self):
        return [KerasWeight("alpha", self.alpha)] if self.built else []

    def get_config(self):
        return {**super().get_config(), "shared_axes": self.shared_axes}


class Softmax(Layer):
    """Softmax over Keras's ``axis`` (default the channels / features)."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else int(axis)

    @property
    def activation_name(self):
        # over the last axis it is the model's softmax output (losses fuse it, predict knows)
        return "softmax" if self.axis == -1 else None

    def forward(self, x):
        dims = torch_axes(keras_axes(self.axis, x.ndim, "Softmax"), x.ndim)
        return torch.exp(x - torch.logsumexp(x, dim=dims, keepdim=True))

    def pre_activation(self, x):
        return x if self.activation_name else self.forward(x)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
