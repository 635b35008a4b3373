"""Subclassed models and Keras's model API on every ``cnnkit.Model``.

``class Net(cnnkit.Model)`` assigns layers in ``__init__`` and defines ``call(self, x,
training=False)``. Its cnnkit layers build on their first call (``keras_tensor``), so the
weights exist only once a shape is known: ``model.build((None, H, W, C))``, or ``fit`` on
its first data. ``compile`` on such a model defers the optimizer until then (a torch
optimizer needs the parameters). ``training`` reaches ``call``: True in ``fit``, False in
``evaluate`` / ``predict``, as in Keras.
"""

from __future__ import annotations

import functools
import inspect

import numpy as np
import torch
from torch import nn

from ..keras_tensor import to_keras_shape
from ..layers import Layer

__all__ = ["call_with_training", "call_on_arrays", "tracked_layers", "build", "get_layer",
           "keras_outputs", "weights_pending", "finish_build", "symbolic_output_shapes"]


@functools.lru_cache(maxsize=256)
def _takes_training(call) -> bool:
    try:
        params = inspect.signature(call).parameters
    except (TypeError, ValueError):
        return False
    return "training" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def call_with_training(model, x):
    """``model.call(x, training=model.training)`` where ``call`` takes ``training``."""
    call = type(model).call
    if _takes_training(call):
        return model.call(x, training=model.training)
    return model.call(x)


def _needs_keras_layout(model) -> bool:
    """Keras-built models (Sequential, functional, subclassed) speak channels-last."""
    return getattr(model, "module", None) is None


def keras_outputs(model, out: np.ndarray) -> np.ndarray:
    """Model outputs as Keras gives them: image-shaped outputs (N, C, H, W) -> (N, H, W, C)."""
    if _needs_keras_layout(model) and isinstance(out, np.ndarray) and out.ndim == 4:
        return np.ascontiguousarray(out.transpose(0, 2, 3, 1))
    return out


def call_on_arrays(model, x, training=None):
    """``model(numpy_array)`` as in Keras: NHWC arrays in, a tensor out (channels-last for
    image outputs), in inference mode unless ``training=True``."""
    from ..data.loader import as_images
    arrays = list(x) if isinstance(x, (list, tuple)) else [x]
    inputs = getattr(model, "_inputs", None)
    expected = [t.torch_shape for t in inputs] if inputs else [model.torch_input_shape]
    if len(expected) != len(arrays):
        raise ValueError(f"model '{model.name}' takes {len(expected)} inputs, got {len(arrays)}")
    tensors = [as_images(a, shape) for a, shape in zip(arrays, expected)]
    if model.input_shape is None:
        model._set_input_shape(tuple(tensors[0].shape[1:]))
    finish_build(model, tuple(tensors[0].shape[1:]))
    device = next(iter(model.parameters()), torch.zeros(())).device
    tensors = [t.to(device) for t in tensors]
    was = model.training
    model.train(bool(training))
    try:
        with torch.set_grad_enabled(bool(training)):
            out = model.forward(tensors if len(tensors) > 1 else tensors[0])
    finally:
        model.train(was)
    if isinstance(out, torch.Tensor) and out.ndim == 4 and _needs_keras_layout(model):
        out = out.permute(0, 2, 3, 1)
    return out


def tracked_layers(model) -> list[nn.Module]:
    """Keras's ``model.layers`` for a subclassed model (its layers in assignment order) or a
    wrapped module (the module's direct children)."""
    target = model.module if getattr(model, "module", None) is not None else model
    found = []
    for name, child in target.named_children():
        if target is model and name in ("preprocess", "module"):
            continue
        if isinstance(child, nn.ModuleList) and target is model:
            found += list(child)
        else:
            found.append(child)
    return found


def get_layer(model, name=None, index=None):
    layers = list(model.layers)
    if index is not None:
        if not -len(layers) <= index < len(layers):
            raise ValueError(f"was asked for the layer at index {index} but model '{model.name}' "
                             f"has only {len(layers)} layers")
        return layers[index]
    if name is None:
        raise ValueError("get_layer needs name=... or index=...")
    for layer in layers:
        if getattr(layer, "name", None) == name:
            return layer
    names = [getattr(layer, "name", None) for layer in layers]
    raise ValueError(f"no such layer: {name!r}; model '{model.name}' has layers {names}")


def _own_build_pending(model) -> bool:
    """A subclass defines ``build(self, input_shape)`` (creating its layers there, as Keras
    allows) and it has not run yet."""
    from .base import Model
    from .functional import Functional
    from .sequential import Sequential
    own = type(model).build is not Model.build and not isinstance(model, (Sequential, Functional))
    return own and not model.__dict__.get("_own_build_done", False)


def weights_pending(model) -> bool:
    """Some cnnkit layer of a Keras-built model has no weights yet (not built)."""
    if getattr(model, "module", None) is not None:
        return False
    return _own_build_pending(model) or any(
        isinstance(m, Layer) and not m.built for m in model.modules())


def finish_build(model, torch_shape: tuple) -> None:
    """Build the layers still unbuilt with one zero batch of ``torch_shape`` (eval mode, no
    gradients, statistics untouched), then make the optimizer ``compile`` deferred."""
    if _own_build_pending(model):  # Keras runs a subclass's own build once, with the shape
        model.__dict__["_own_build_done"] = True
        model.build((None, *to_keras_shape(torch_shape)))
        if model.input_shape is None:
            model.input_shape = to_keras_shape(torch_shape)
    if weights_pending(model):
        device = next(iter(model.parameters()), None)
        device = device.device if device is not None else (model.device or torch.device("cpu"))
        was = model.training
        model.eval()
        try:
            with torch.no_grad():
                model(torch.zeros((1, *torch_shape), device=device))
        finally:
            model.train(was)
        if model.device is not None:
            model.to(model.device)
    pending = model.__dict__.get("_deferred_optimizer")
    if pending is not None:
        params = model.trainable_parameters()
        if not params:
            raise ValueError(f"model '{model.name}' has no trainable weights after building: "
                             "assign its layers as attributes in __init__ (after "
                             "super().__init__()) so that they are tracked")
        model.optimizer = pending.build(params)
        model._deferred_optimizer = None


def finish_build_from_batches(model, batches) -> None:
    """As ``finish_build``, the shape read from the first batch of a loader."""
    if not weights_pending(model) and model.__dict__.get("_deferred_optimizer") is None:
        return
    first = next(iter(batches))
    x = first[0] if isinstance(first, (list, tuple)) else first
    if model.input_shape is None:
        model._set_input_shape(tuple(x.shape[1:]))
    finish_build(model, tuple(x.shape[1:]))


def build(model, input_shape) -> None:
    """``build((None, H, W, C))`` on a subclassed or wrapped model: weights for that shape."""
    shape = tuple(input_shape)
    if shape and shape[0] is None:
        shape = shape[1:]
    if len(shape) not in (1, 3) or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(f"build({tuple(input_shape)}): give Keras's input shape with the batch "
                         "axis first, e.g. build((None, 28, 28, 1))")
    model.input_shape = shape
    finish_build(model, model.torch_input_shape)


def symbolic_output_shapes(model, shapes):
    """A model called as a layer on symbolic tensors: build it for ``shapes`` (torch layout,
    no batch) and return its output shape(s)."""
    from ..layers import ShapeError, keras_shape
    from .sequential import Sequential
    if isinstance(shapes, list):
        raise ShapeError(f"model '{model.name}' takes one input, got {len(shapes)}")
    if isinstance(model, Sequential):
        if not model.built:
            model.build((None, *to_keras_shape(shapes)))
        elif tuple(model.torch_input_shape) != tuple(shapes):
            raise ShapeError(f"model '{model.name}' takes input {keras_shape(model.torch_input_shape)} "
                             f"but is called on {keras_shape(shapes)}")
        return tuple(model.output_shape)
    if model.input_shape is None:
        model.input_shape = to_keras_shape(shapes)
    finish_build(model, tuple(shapes))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            dev = next(iter(model.parameters()), torch.zeros(())).device
            out = model(torch.zeros((1, *shapes), device=dev))
    finally:
        model.train(was)
    if isinstance(out, (list, tuple)):
        return [tuple(o.shape[1:]) for o in out]
    return tuple(out.shape[1:])


def name_layer(model, value) -> None:
    """A layer assigned to a subclassed model gets Keras's default name (``conv2d``,
    ``conv2d_1``, ...), unique within the model, when it has none."""
    if not isinstance(value, Layer) or isinstance(getattr(value, "name", None), str):
        return
    from ..layers import default_name
    counts = model.__dict__.setdefault("_layer_name_counts", {})
    base = default_name(value)
    n = counts.get(base, 0)
    counts[base] = n + 1
    value.name = base if n == 0 else f"{base}_{n}"


def symbolic_graph(model) -> tuple[list, list]:
    """([inputs], [outputs]) symbolic tensors of a Sequential: its layers called once on a
    ``cnnkit.Input`` of its input shape (their weights shared), so ``layer.output`` exists
    and ``cnnkit.Model(model.inputs, [model.get_layer(...).output, model.output])`` works."""
    from ..keras_tensor import Input
    from .sequential import Sequential
    graph = model.__dict__.get("_symbolic_graph")
    if graph is not None:
        return graph
    if not isinstance(model, Sequential):
        raise AttributeError(f"model '{model.name}' ({type(model).__name__}) has no symbolic "
                             "inputs: only functional and Sequential models do")
    model._require_built()
    inp = Input(model.input_shape)
    x = inp
    for layer in model.layers:
        x = layer(x)
    model.__dict__["_symbolic_graph"] = ([inp], [x])
    return model.__dict__["_symbolic_graph"]


def wrap_layer_lists(value):
    """A list of layers assigned to a model attribute is tracked, as in Keras (torch would
    not see the layers' weights): it becomes an ``nn.ModuleList``."""
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, nn.Module) for v in value):
        return nn.ModuleList(value)
    return value

