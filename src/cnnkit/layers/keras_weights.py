"""Each layer's weights as Keras sees them, and the per-weight Keras arguments.

A layer lists its weights with :meth:`WeightOptions.keras_weights`: Keras's name, the torch
tensor (a parameter or a BatchNorm buffer) and the conversion between torch's layout and
Keras's (a conv kernel is ``(out, in, kh, kw)`` in torch, ``(kh, kw, in, out)`` in Keras).
From that list follow ``get_weights()`` / ``set_weights()`` in Keras's layouts and order, the
``<weight>_initializer`` / ``_regularizer`` / ``_constraint`` arguments (which act on the Keras
view, so fans and ``axis`` mean what they mean in Keras), ``layer.losses`` and
``apply_constraints()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .. import constraints as constraints_mod
from .. import initializers as initializers_mod
from .. import regularizers as regularizers_mod

_KINDS = {"initializer": initializers_mod, "regularizer": regularizers_mod,
          "constraint": constraints_mod}


def _identity(t):
    return t


@dataclass
class KerasWeight:
    name: str                      # Keras's weight name: kernel, bias, gamma, moving_mean, ...
    tensor: torch.Tensor           # torch layout
    to_keras: Callable = _identity  # torch layout -> Keras layout (a view where possible)
    from_keras: Callable = _identity
    option: str | None = None      # argument prefix (kernel_initializer...); default: name

    @property
    def prefix(self) -> str:
        return self.option or self.name

    @property
    def keras_shape(self) -> tuple:
        return tuple(self.to_keras(self.tensor).shape)


def permuted(name: str, tensor: torch.Tensor, perm: tuple, option: str | None = None):
    """A weight whose Keras layout is ``tensor.permute(perm)``."""
    inverse = tuple(int(i) for i in np.argsort(perm))
    return KerasWeight(name, tensor, lambda t: t.permute(perm), lambda a: a.permute(inverse),
                       option)


def conv_kernel(tensor: torch.Tensor, name: str = "kernel", option: str | None = None):
    """torch (out, in, kh, kw) <-> Keras (kh, kw, in, out)."""
    return permuted(name, tensor, (2, 3, 1, 0), option)


def dense_kernel(tensor: torch.Tensor):
    """torch (out, in) <-> Keras (in, out)."""
    return permuted("kernel", tensor, (1, 0))


class WeightOptions:
    """Mixin for :class:`cnnkit.layers.Layer`: Keras's per-weight arguments and layouts."""

    weight_options: tuple[str, ...] = ()          # prefixes this layer takes arguments for
    default_initializers: dict[str, str] = {}     # prefix -> initializer the layer starts with

    def _init_weight_options(self, activity_regularizer, options: dict) -> None:
        self._options = {kind: {} for kind in _KINDS}
        for key, value in options.items():
            prefix, _, kind = key.rpartition("_")
            if kind not in _KINDS or prefix not in self.weight_options:
                takes = ", ".join(f"{p}_{k}" for p in self.weight_options for k in _KINDS)
                raise TypeError(f"{type(self).__name__} got an unexpected argument {key!r}"
                                + (f"; its weight arguments are {takes}" if takes else ""))
            if value is not None:  # None (Keras's default, as saved configs spell it): nothing
                self._options[kind][prefix] = _KINDS[kind].get(value)
        self.activity_regularizer = regularizers_mod.get(activity_regularizer)
        self._activity_losses: list[torch.Tensor] = []

    def keras_weights(self) -> list[KerasWeight]:
        """The layer's weights in Keras's order (empty before build and for weightless layers)."""
        return []

    # get_weights / set_weights / weights: keras_layout.KerasWeightsMixin reads keras_weights()

    # -- initializers --------------------------------------------------------------------
    def _apply_initializers(self) -> None:
        for spec in self.keras_weights():
            init = self._options["initializer"].get(spec.prefix)
            if init is None and spec.prefix in self.default_initializers:
                init = initializers_mod.get(self.default_initializers[spec.prefix])
            if init is None:
                continue
            if isinstance(init, initializers_mod.Initializer):
                init.fill(spec.tensor, spec.keras_shape, spec.from_keras)
            else:  # a plain function f(shape, dtype=None), as Keras allows
                with torch.no_grad():
                    value = torch.as_tensor(np.asarray(init(spec.keras_shape)), dtype=spec.tensor.dtype)
                    spec.tensor.copy_(spec.from_keras(value))

    # -- regularizers (layer.losses) ---------------------------------------------------------
    @property
    def has_penalties(self) -> bool:
        return bool(self._options["regularizer"]) or self.activity_regularizer is not None

    @property
    def losses(self) -> list[torch.Tensor]:
        """Keras's ``layer.losses``: the activity penalty of the layer's last call (divided by
        its batch size), then the penalties of its trainable weights, computed now."""
        return self.activity_losses() + self.weight_losses()

    def activity_losses(self) -> list[torch.Tensor]:
        return list(self._activity_losses)

    def weight_losses(self) -> list[torch.Tensor]:
        regs = self._options["regularizer"]
        return [regs[spec.prefix](spec.to_keras(spec.tensor)) for spec in self.keras_weights()
                if spec.prefix in regs and spec.tensor.requires_grad]

    def _record_activity(self, output: torch.Tensor) -> None:
        if self.activity_regularizer is not None and torch.is_tensor(output):
            penalty = self.activity_regularizer(output)
            self._activity_losses = [penalty / output.shape[0] if output.ndim else penalty]

    # -- constraints -----------------------------------------------------------------------
    @property
    def has_constraints(self) -> bool:
        return bool(self._options["constraint"])

    def apply_constraints(self) -> None:
        """Project each constrained weight (Keras does this after every optimizer step)."""
        cons = self._options["constraint"]
        with torch.no_grad():
            for spec in self.keras_weights():
                if spec.prefix in cons:
                    spec.tensor.copy_(spec.from_keras(cons[spec.prefix](spec.to_keras(spec.tensor))))

    # -- config ------------------------------------------------------------------------------
    def weight_options_config(self) -> dict:
        config = {}
        for kind, chosen in self._options.items():
            for prefix, obj in chosen.items():
                config[f"{prefix}_{kind}"] = _KINDS[kind].serialize(obj)
        if self.activity_regularizer is not None:
            config["activity_regularizer"] = regularizers_mod.serialize(self.activity_regularizer)
        return config
