"""Weights in Keras's layouts: what ``get_weights`` / ``set_weights`` / ``layer.kernel`` see.

A layer's weights are found by walking its torch sub-modules in creation order and reading
each as Keras stores it:

- ``nn.Conv2d`` kernel (out, in/groups, kh, kw) -> Keras (kh, kw, in/groups, out); a
  depthwise conv (one input channel per group) -> Keras (kh, kw, in, depth_multiplier)
- ``nn.ConvTranspose2d`` (in, out, kh, kw) -> Keras (kh, kw, out, in)
- ``nn.Linear`` (out, in) -> Keras (in, out)
- BatchNorm -> [gamma, beta, moving_mean, moving_variance] (gamma left out with
  ``scale=False``, beta with ``center=False``, as Keras does); no ``num_batches_tracked``
- anything else: parameters as they are.

A layer class may define ``keras_weight_specs()`` returning its own :class:`WeightSpec` list.
This module imports no other cnnkit module (``layers.py`` mixes :class:`KerasWeightsMixin`
into ``Layer``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

__all__ = ["WeightSpec", "weight_specs", "get_weights", "set_weights", "KerasWeightsMixin"]


def _same(a):
    return a


@dataclass
class WeightSpec:
    """One Keras weight: the torch tensor behind it and the two layout conversions."""

    name: str                      # Keras's variable name: kernel, bias, gamma, ...
    tensor: torch.Tensor           # the parameter or buffer, in torch layout
    to_keras: Callable = _same     # numpy torch layout -> numpy Keras layout
    from_keras: Callable = _same   # numpy Keras layout -> numpy torch layout
    trainable: bool = True

    @property
    def keras_shape(self) -> tuple:
        return tuple(self.to_keras(np.empty(tuple(self.tensor.shape), np.float32)).shape)

    def value(self) -> np.ndarray:
        return np.ascontiguousarray(self.to_keras(self.tensor.detach().cpu().numpy()))

    def assign(self, array) -> None:
        array = np.asarray(array, dtype=np.float32)
        if tuple(array.shape) != self.keras_shape:
            raise ValueError(f"weight '{self.name}' has Keras shape {self.keras_shape}, got an "
                             f"array of shape {tuple(array.shape)}")
        with torch.no_grad():
            self.tensor.copy_(torch.from_numpy(np.ascontiguousarray(self.from_keras(array))))


def _conv_specs(conv: nn.Conv2d) -> list[WeightSpec]:
    out_c, in_per_group, kh, kw = conv.weight.shape
    if conv.groups > 1 and in_per_group == 1 and conv.groups == conv.in_channels:
        mult = out_c // conv.groups  # depthwise: Keras (kh, kw, in, depth_multiplier)
        to_k = lambda w: w.reshape(conv.groups, mult, kh, kw).transpose(2, 3, 0, 1)  # noqa: E731
        from_k = lambda k: k.transpose(2, 3, 0, 1).reshape(out_c, 1, kh, kw)  # noqa: E731
        specs = [WeightSpec("depthwise_kernel", conv.weight, to_k, from_k)]
    else:
        specs = [WeightSpec("kernel", conv.weight, lambda w: w.transpose(2, 3, 1, 0),
                            lambda k: k.transpose(3, 2, 0, 1))]
    if conv.bias is not None:
        specs.append(WeightSpec("bias", conv.bias))
    return specs


def _batchnorm_specs(bn, scale: bool = True, center: bool = True) -> list[WeightSpec]:
    specs = []
    if bn.weight is not None and scale:
        specs.append(WeightSpec("gamma", bn.weight))
    if bn.bias is not None and center:
        specs.append(WeightSpec("beta", bn.bias))
    if getattr(bn, "running_mean", None) is not None:
        specs += [WeightSpec("moving_mean", bn.running_mean, trainable=False),
                  WeightSpec("moving_variance", bn.running_var, trainable=False)]
    return specs


def _module_specs(module: nn.Module, owner) -> list[WeightSpec]:
    if isinstance(module, nn.ConvTranspose2d):
        specs = [WeightSpec("kernel", module.weight, lambda w: w.transpose(2, 3, 1, 0),
                            lambda k: k.transpose(3, 2, 0, 1))]
        return specs + ([WeightSpec("bias", module.bias)] if module.bias is not None else [])
    if isinstance(module, nn.Conv2d):
        return _conv_specs(module)
    if isinstance(module, nn.Linear):
        specs = [WeightSpec("kernel", module.weight, lambda w: w.T, lambda k: k.T)]
        return specs + ([WeightSpec("bias", module.bias)] if module.bias is not None else [])
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return _batchnorm_specs(module, getattr(owner, "scale", True), getattr(owner, "center", True))
    if isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
        return ([WeightSpec("gamma", module.weight)] if module.weight is not None else []) + \
               ([WeightSpec("beta", module.bias)] if module.bias is not None else [])
    return [WeightSpec(name.rsplit(".", 1)[-1], p) for name, p in module.named_parameters(recurse=False)]


def _from_keras_weight(weight) -> WeightSpec:
    """A layer's own ``keras_weights()`` entry (torch-tensor conversions, layers/keras_weights.py)
    as a :class:`WeightSpec` (numpy conversions)."""
    def to_k(a, w=weight):
        return w.to_keras(torch.from_numpy(np.ascontiguousarray(a))).numpy()

    def from_k(a, w=weight):
        return w.from_keras(torch.from_numpy(np.ascontiguousarray(a))).numpy()

    trainable = isinstance(weight.tensor, nn.Parameter) and weight.tensor.requires_grad
    return WeightSpec(weight.name, weight.tensor, to_k, from_k, trainable)


def _own_specs(module: nn.Module) -> list[WeightSpec] | None:
    """The specs a layer declares itself (``keras_weight_specs()`` or ``keras_weights()``), or
    None when it declares none and its torch sub-modules are read instead."""
    own = getattr(module, "keras_weight_specs", None)
    if callable(own):
        return list(own())
    declared = getattr(type(module), "keras_weights", None)
    if declared is not None:
        from .layers.keras_weights import WeightOptions
        if declared is not WeightOptions.keras_weights:
            return [_from_keras_weight(w) for w in module.keras_weights()]
    return None


def _walk(module: nn.Module, owner: nn.Module):
    """Specs in creation order: a layer that declares its weights speaks for its sub-modules."""
    own = _own_specs(module)
    if own is not None:
        yield from own
        return
    yield from _module_specs(module, owner)
    for child in module.children():
        yield from _walk(child, owner)


def weight_specs(layer: nn.Module) -> list[WeightSpec]:
    """The Keras weights of one layer (or of a whole model), in Keras's order."""
    specs, seen = [], set()
    for spec in _walk(layer, layer):
        if id(spec.tensor) not in seen:
            seen.add(id(spec.tensor))
            specs.append(spec)
    trainable_state = {id(p): p.requires_grad for p in layer.parameters()}
    for spec in specs:
        if id(spec.tensor) in trainable_state:
            spec.trainable = trainable_state[id(spec.tensor)]
    return specs


def get_weights(layer: nn.Module) -> list[np.ndarray]:
    return [spec.value() for spec in weight_specs(layer)]


def set_weights(layer: nn.Module, weights) -> None:
    specs = weight_specs(layer)
    weights = list(weights)
    if len(weights) != len(specs):
        name = getattr(layer, "name", type(layer).__name__)
        raise ValueError(f"layer '{name}' expects {len(specs)} weights "
                         f"({', '.join(s.name for s in specs) or 'none'}), got {len(weights)}")
    for spec, w in zip(specs, weights):
        spec.assign(w)


class _WeightView:
    """``layer.kernel`` / ``layer.bias``: a Keras-layout view with ``numpy()`` and ``assign``."""

    def __init__(self, spec: WeightSpec, path: str):
        self.spec, self.path = spec, path
        self.name = spec.name
        self.trainable = spec.trainable

    @property
    def shape(self) -> tuple:
        return self.spec.keras_shape

    def numpy(self) -> np.ndarray:
        return self.spec.value()

    def __array__(self, dtype=None, copy=None):
        value = self.numpy()
        return value.astype(dtype) if dtype is not None else value

    def assign(self, value) -> None:
        self.spec.assign(value)

    @property
    def value(self) -> torch.Tensor:
        """The torch tensor behind it (torch layout)."""
        return self.spec.tensor

    def __repr__(self):
        return f"<Variable path={self.path}, shape={self.shape}, dtype=float32>"


class KerasWeightsMixin:
    """Keras's layer weight API for cnnkit layers (mixed into ``cnnkit.layers.Layer``)."""

    def _views(self, which=None) -> list[_WeightView]:
        name = getattr(self, "name", None) or type(self).__name__
        owner = {}  # tensor -> name of the innermost named layer holding it
        for module in self.modules():
            if module is not self and isinstance(getattr(module, "name", None), str):
                for t in list(module.parameters()) + list(module.buffers()):
                    owner[id(t)] = module.name
        views = [_WeightView(s, "/".join(filter(None, (name, owner.get(id(s.tensor)), s.name))))
                 for s in weight_specs(self)]
        return views if which is None else [v for v in views if v.trainable == which]

    @property
    def weights(self) -> list[_WeightView]:
        return self._views()

    @property
    def trainable_weights(self) -> list[_WeightView]:
        return self._views(True)

    @property
    def non_trainable_weights(self) -> list[_WeightView]:
        return self._views(False)

    def get_weights(self) -> list[np.ndarray]:
        return get_weights(self)

    def set_weights(self, weights) -> None:
        set_weights(self, weights)

    def _named_view(self, name: str):
        for view in self._views():
            if view.name == name:
                return view
        return None

    @property
    def kernel(self):
        if "kernel" in self.__dict__:  # a layer class that keeps its own value under the name
            return self.__dict__["kernel"]
        own = self.__dict__.get("_parameters", {}).get("kernel")
        if own is not None:  # a layer that holds its own ``kernel`` parameter keeps it
            return own
        view = self._named_view("kernel")
        if view is None:
            raise AttributeError(f"layer '{getattr(self, 'name', '')}' ({type(self).__name__}) has no "
                                 "kernel (not built yet, or a layer without one)")
        return view

    @kernel.setter
    def kernel(self, value):
        self.__dict__["kernel"] = value

    @property
    def bias(self):
        if "bias" in self.__dict__:
            return self.__dict__["bias"]
        own = self.__dict__.get("_parameters", {})
        if "bias" in own:
            return own["bias"]
        view = self._named_view("bias")
        if view is None and not getattr(self, "built", True):
            raise AttributeError(f"layer '{getattr(self, 'name', '')}' is not built yet")
        return view

    @bias.setter
    def bias(self, value):
        self.__dict__["bias"] = value
