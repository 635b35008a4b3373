"""Activation names (Keras spelling) -> torch modules."""

from __future__ import annotations

from torch import nn

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "softmax": lambda: nn.Softmax(dim=1),  # dim 1 is channels/features in NCHW and (N, F)
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "selu": nn.SELU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),  # Keras's default negative slope
    "swish": nn.SiLU,
    "silu": nn.SiLU,
    "softplus": nn.Softplus,
    "linear": nn.Identity,
}

NAMES = tuple(_ACTIVATIONS)


def get(name) -> nn.Module:
    """Return a fresh module for an activation name; None or 'linear' gives Identity."""
    if name is None:
        return nn.Identity()
    if isinstance(name, nn.Module):
        return name
    key = str(name).lower()
    if key not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid names: {', '.join(NAMES)}")
    return _ACTIVATIONS[key]()
