"""Keras's activations: functions on tensors (``cnnkit.activations.relu(x)``) and, for layers,
modules by name (``get("relu")``).

A layer's ``activation=`` may be a Keras name, one of these functions, a torch callable with a
Keras equivalent (``torch.relu``, ``F.gelu``, ``nn.ReLU()``) or any other callable. A saved
model records the activation by its name; an unnamed callable (a user lambda) runs but cannot
be saved (:func:`serialize` says so), unless it is given a name with :func:`register`.

The "feature axis" is Keras's last axis: the channel axis 1 of an NCHW image batch, the last
axis otherwise (``(N, F)`` vectors, ``(N, T, F)`` sequences in Keras order).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["get", "serialize", "register", "name_of", "relu", "relu6", "sigmoid", "softmax",
           "log_softmax", "tanh", "gelu", "elu", "selu", "leaky_relu", "swish", "silu",
           "softplus", "softsign", "hard_sigmoid", "hard_swish", "hard_silu", "mish",
           "exponential", "linear", "celu", "hard_tanh", "log_sigmoid", "tanh_shrink",
           "hard_shrink", "soft_shrink", "squareplus", "sparse_plus"]


def feature_axis(x: torch.Tensor) -> int:
    """The torch axis that Keras's ``axis=-1`` means: channels of NCHW images, else the last."""
    return 1 if x.ndim == 4 else -1


# -- the functions (Keras's signatures and defaults) ------------------------------------
def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    if threshold:
        out = torch.where(x >= threshold, x, negative_slope * (x - threshold))
    else:
        out = F.leaky_relu(x, negative_slope) if negative_slope else F.relu(x)
    return out.clamp(max=max_value) if max_value is not None else out


def relu6(x):
    return F.relu6(x)


def sigmoid(x):
    return torch.sigmoid(x)


def softmax(x, axis=-1):
    return torch.softmax(x, dim=feature_axis(x) if axis == -1 else axis)


def log_softmax(x, axis=-1):
    return torch.log_softmax(x, dim=feature_axis(x) if axis == -1 else axis)


def tanh(x):
    return torch.tanh(x)


def gelu(x, approximate=False):
    return F.gelu(x, approximate="tanh" if approximate else "none")


def elu(x, alpha=1.0):
    return F.elu(x, alpha)


def selu(x):
    return F.selu(x)


def leaky_relu(x, negative_slope=0.2):
    return F.leaky_relu(x, negative_slope)


def silu(x):
    return F.silu(x)


swish = silu


def softplus(x):
    return F.softplus(x)


def softsign(x):
    return F.softsign(x)


def hard_sigmoid(x):
    """Keras 3's: relu6(x + 3) / 6 (Keras 2's was clip(0.2 x + 0.5, 0, 1))."""
    return F.hardsigmoid(x)


def hard_silu(x):
    """x * hard_sigmoid(x)."""
    return F.hardswish(x)


hard_swish = hard_silu


def mish(x):
    return F.mish(x)


def exponential(x):
    return torch.exp(x)


def linear(x):
    return x


def celu(x, alpha=1.0):
    return F.celu(x, alpha)


def hard_tanh(x):
    return F.hardtanh(x)


def log_sigmoid(x):
    return F.logsigmoid(x)


def tanh_shrink(x):
    return F.tanhshrink(x)


def hard_shrink(x, threshold=0.5):
    return F.hardshrink(x, threshold)


def soft_shrink(x, threshold=0.5):
    return F.softshrink(x, threshold)


def squareplus(x, b=4):
    """(x + sqrt(x**2 + b)) / 2."""
    return (x + torch.sqrt(x * x + b)) / 2


def sparse_plus(x):
    """0 below -1, (x + 1)**2 / 4 between -1 and 1, x above 1."""
    return torch.where(x <= -1, torch.zeros_like(x),
                       torch.where(x >= 1, x, (x + 1) ** 2 / 4))


class _Function(nn.Module):
    """A named activation function as a module (no weights)."""

    def __init__(self, fn, name: str | None):
        super().__init__()
        self.fn = fn
        self.name = name

    def forward(self, x):
        return self.fn(x)

    def extra_repr(self):
        return self.name or getattr(self.fn, "__name__", repr(self.fn))


class _FeatureSoftmax(nn.Module):
    """Softmax / log-softmax over Keras's last axis (channels of NCHW)."""

    def __init__(self, log: bool = False):
        super().__init__()
        self.log = log

    def forward(self, x):
        return (torch.log_softmax if self.log else torch.softmax)(x, dim=feature_axis(x))


_MODULES = {  # name -> fresh module; torch's own modules where torch has the same function
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "sigmoid": nn.Sigmoid,
    "softmax": _FeatureSoftmax,
    "log_softmax": lambda: _FeatureSoftmax(log=True),
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "selu": nn.SELU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),  # Keras's default negative slope
    "swish": nn.SiLU,
    "silu": nn.SiLU,
    "softplus": nn.Softplus,
    "softsign": nn.Softsign,
    "hard_sigmoid": nn.Hardsigmoid,
    "hard_silu": nn.Hardswish,
    "hard_swish": nn.Hardswish,
    "mish": nn.Mish,
    "exponential": lambda: _Function(torch.exp, "exponential"),
    "linear": nn.Identity,
    "celu": nn.CELU,
    "hard_tanh": nn.Hardtanh,
    "log_sigmoid": nn.LogSigmoid,
    "tanh_shrink": nn.Tanhshrink,
    "hard_shrink": nn.Hardshrink,
    "soft_shrink": nn.Softshrink,
    "squareplus": lambda: _Function(squareplus, "squareplus"),
    "sparse_plus": lambda: _Function(sparse_plus, "sparse_plus"),
}

NAMES = tuple(_MODULES)

# Callables that mean a registered name: these functions, and torch's equivalents.
_CALLABLE_NAMES = {
    relu: "relu", relu6: "relu6", sigmoid: "sigmoid", softmax: "softmax",
    log_softmax: "log_softmax", tanh: "tanh", gelu: "gelu", elu: "elu", selu: "selu",
    leaky_relu: "leaky_relu", silu: "silu", softplus: "softplus", softsign: "softsign",
    hard_sigmoid: "hard_sigmoid", hard_silu: "hard_silu", mish: "mish",
    exponential: "exponential", linear: "linear", celu: "celu", hard_tanh: "hard_tanh",
    log_sigmoid: "log_sigmoid", tanh_shrink: "tanh_shrink", hard_shrink: "hard_shrink",
    soft_shrink: "soft_shrink", squareplus: "squareplus", sparse_plus: "sparse_plus",
    torch.relu: "relu", F.relu: "relu", F.relu6: "relu6", torch.sigmoid: "sigmoid",
    F.sigmoid: "sigmoid", torch.tanh: "tanh", F.tanh: "tanh", F.gelu: "gelu", F.elu: "elu",
    F.selu: "selu", torch.selu: "selu", F.silu: "silu", F.softplus: "softplus",
    F.softsign: "softsign", F.hardsigmoid: "hard_sigmoid", F.hardswish: "hard_silu",
    F.mish: "mish", torch.exp: "exponential", F.celu: "celu", F.hardtanh: "hard_tanh",
    F.logsigmoid: "log_sigmoid", F.tanhshrink: "tanh_shrink", F.hardshrink: "hard_shrink",
    F.softshrink: "soft_shrink",
}
# Module types that mean a name when built with Keras's defaults (checked in name_of).
_MODULE_NAMES = {nn.ReLU: "relu", nn.ReLU6: "relu6", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh",
                 nn.SELU: "selu", nn.SiLU: "silu", nn.Softsign: "softsign",
                 nn.Hardsigmoid: "hard_sigmoid", nn.Hardswish: "hard_silu", nn.Mish: "mish",
                 nn.Identity: "linear", nn.CELU: "celu", nn.Hardtanh: "hard_tanh",
                 nn.LogSigmoid: "log_sigmoid", nn.Tanhshrink: "tanh_shrink",
                 nn.Hardshrink: "hard_shrink", nn.Softshrink: "soft_shrink"}
_REGISTERED: dict[str, object] = {}


def register(name: str, fn) -> None:
    """Give a callable a name, so layers using it can be saved and loaded (register it again
    before loading)."""
    if not callable(fn):
        raise TypeError(f"register({name!r}, ...) needs a callable, got {fn!r}")
    if str(name).lower() in _MODULES:
        raise ValueError(f"{name!r} is a built-in activation name; choose another")
    _REGISTERED[str(name)] = fn


def name_of(identifier) -> str | None:
    """The registered name of an activation, or None for an unnamed callable."""
    if identifier is None:
        return "linear"
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in _MODULES:
            return key
        if identifier in _REGISTERED:
            return identifier
        raise ValueError(f"unknown activation {identifier!r}; valid names: {', '.join(NAMES)}")
    if isinstance(identifier, (_Function, _FeatureSoftmax)):
        return identifier.name if isinstance(identifier, _Function) else \
            ("log_softmax" if identifier.log else "softmax")
    for name, fn in _REGISTERED.items():
        if fn is identifier:
            return name
    try:
        if identifier in _CALLABLE_NAMES:
            return _CALLABLE_NAMES[identifier]
    except TypeError:  # unhashable callable
        pass
    if type(identifier) in _MODULE_NAMES and not list(identifier.parameters()):
        default = _MODULES[_MODULE_NAMES[type(identifier)]]()
        if repr(default) == repr(identifier):  # same arguments as Keras's (e.g. no inplace)
            return _MODULE_NAMES[type(identifier)]
    return None


def get(identifier) -> nn.Module:
    """A module for an activation: a Keras name, None ('linear'), or a callable."""
    if identifier is None:
        return nn.Identity()
    if isinstance(identifier, str):
        name = name_of(identifier)
        return _MODULES[name]() if name in _MODULES else _Function(_REGISTERED[name], name)
    if isinstance(identifier, nn.Module):
        return identifier
    if callable(identifier):
        name = name_of(identifier)
        return _MODULES[name]() if name in _MODULES else _Function(identifier, name)
    raise TypeError(f"activation must be a name, a callable or None, got {identifier!r}")


def serialize(identifier) -> str | None:
    """The name a saved model records (None for linear); refuses an unnamed callable."""
    name = name_of(identifier)
    if name is None:
        label = getattr(identifier, "__name__", type(identifier).__name__)
        raise ValueError(f"activation {label!r} has no registered name, and a saved model records "
                         "activations by name, never as code: use a cnnkit.activations function "
                         "or name, or cnnkit.activations.register('my_act', fn) before saving "
                         "and loading")
    return None if name == "linear" else name
