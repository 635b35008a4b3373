"""Symbolic tensors for the functional API: ``cnnkit.Input(shape)`` and layer calls on them.

Calling a layer (or a model) on a :class:`KerasTensor` computes nothing: it builds the layer
for the input shape, records a :class:`Node` (layer, input tensors, call arguments) and returns
new KerasTensors of the output shape. ``cnnkit.Model(inputs, outputs)`` then walks the nodes
back from the outputs (``models/functional.py``) and replays them in forward.

Shapes: ``KerasTensor.shape`` is Keras's, batch axis first and channels last,
``(None, H, W, C)``; ``torch_shape`` is cnnkit's layer shape without batch, ``(C, H, W)``.
This module imports no other cnnkit module, so ``layers.py`` can import it.
"""

from __future__ import annotations

import contextlib
import itertools

import torch
from torch import nn

__all__ = ["KerasTensor", "Node", "Input", "is_symbolic", "symbolic_call", "training_mode",
           "build_on_first_call", "flatten", "GraphIOMixin"]

_tensor_ids = itertools.count()
_call_order = itertools.count()  # first symbolic call of each layer: names follow it


class SymbolicCallError(TypeError):
    """A layer or module that cannot be called on a symbolic (functional API) tensor."""


def to_torch_shape(keras_shape) -> tuple:
    """(H, W, C) -> (C, H, W); other ranks stay."""
    s = tuple(keras_shape)
    return (s[-1], *s[:-1]) if len(s) == 3 else s


def to_keras_shape(torch_shape) -> tuple:
    """(C, H, W) -> (H, W, C); other ranks stay."""
    s = tuple(torch_shape)
    return (*s[1:], s[0]) if len(s) == 3 else s


class KerasTensor:
    """A placeholder for a tensor in a graph being built: a shape and where it comes from.

    ``node`` is the :class:`Node` that produced it (None never: inputs come from an
    ``InputLayer`` node) and ``index`` which of that node's outputs it is."""

    def __init__(self, torch_shape: tuple, node: "Node | None" = None, index: int = 0,
                 name: str | None = None):
        self.torch_shape = tuple(int(s) for s in torch_shape)
        self.node = node
        self.index = index
        self.name = name or f"keras_tensor_{next(_tensor_ids)}"

    @property
    def shape(self) -> tuple:
        """Keras's shape: ``(None, H, W, C)`` or ``(None, F)``."""
        return (None, *to_keras_shape(self.torch_shape))

    @property
    def ndim(self) -> int:
        return len(self.torch_shape) + 1

    @property
    def dtype(self) -> str:
        return "float32"

    def keras_history(self) -> tuple:
        """(layer, node_index, tensor_index), as Keras's ``_keras_history``."""
        layer = self.node.layer
        return layer, layer._keras_nodes.index(self.node), self.index

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, name={self.name}>"

    def __array__(self, *args, **kwargs):
        raise SymbolicCallError(
            "a symbolic tensor from cnnkit.Input has no values; build a model with "
            "cnnkit.Model(inputs, outputs) and call it on data instead")

    def __bool__(self):
        raise SymbolicCallError("a symbolic tensor has no truth value; it only describes a shape")

    # Arithmetic between symbolic tensors is not recorded: say what to use instead.
    def _no_ops(self, *args):
        raise SymbolicCallError(
            "arithmetic on symbolic tensors is not recorded; use the merge layers "
            "(layers.Add()([a, b]), layers.Multiply(), layers.Subtract(), ...) instead")

    __add__ = __radd__ = __mul__ = __rmul__ = __sub__ = __rsub__ = __truediv__ = _no_ops
    __getitem__ = _no_ops

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", str(func))
        raise SymbolicCallError(
            f"torch.{name} got a symbolic tensor: in the functional API only cnnkit layers and "
            "models record calls; a plain torch module can be wrapped first, e.g. "
            "cnnkit.Model(module, input_shape=...) or a cnnkit.Sequential([...])")


class Node:
    """One call of ``layer`` on symbolic ``inputs`` (a KerasTensor or a list of them)."""

    def __init__(self, layer: nn.Module, inputs, kwargs: dict, outputs_shapes):
        self.layer = layer
        self.inputs = inputs
        self.kwargs = dict(kwargs)
        single = not isinstance(outputs_shapes, list)
        shapes = [outputs_shapes] if single else outputs_shapes
        self.outputs = [KerasTensor(s, self, i) for i, s in enumerate(shapes)]
        self.single_output = single
        nodes = layer.__dict__.setdefault("_keras_nodes", [])
        nodes.append(self)
        layer.__dict__.setdefault("_keras_call_order", next(_call_order))

    @property
    def input_tensors(self) -> list[KerasTensor]:
        return flatten(self.inputs)

    def output_structure(self):
        return self.outputs[0] if self.single_output else list(self.outputs)


def flatten(structure) -> list:
    if isinstance(structure, KerasTensor) or isinstance(structure, torch.Tensor):
        return [structure]
    if isinstance(structure, dict):
        return [t for v in structure.values() for t in flatten(v)]
    if isinstance(structure, (list, tuple)):
        return [t for v in structure for t in flatten(v)]
    return []


def is_symbolic(x) -> bool:
    """A KerasTensor, or a list / tuple / dict holding one (merge layers take lists)."""
    if isinstance(x, KerasTensor):
        return True
    if isinstance(x, (list, tuple, dict)):
        return any(isinstance(t, KerasTensor) for t in flatten(x))
    return False


def _shapes(x):
    """The torch shapes of a KerasTensor structure: a tuple, or a list of them."""
    if isinstance(x, KerasTensor):
        return x.torch_shape
    return [t.torch_shape for t in flatten(x)]


def output_shapes_of(layer: nn.Module, inputs, kwargs: dict):
    """Build ``layer`` for the input shapes and return its output shape(s), running nothing
    where the layer can infer shapes, else one zero batch through it in eval mode."""
    from .layers import Layer, ShapeError, keras_shape  # late: layers imports this module
    shapes = _shapes(inputs)
    if isinstance(layer, Layer):
        if not layer.built:
            layer.build(shapes)
        elif not isinstance(shapes, list) and layer.input_shape_ not in (None, tuple(shapes)):
            raise ShapeError(f"layer '{layer.name}' ({type(layer).__name__}) was built for input "
                             f"{keras_shape(layer.input_shape_)} but is now called on "
                             f"{keras_shape(shapes)}")
        out = layer.compute_output_shape(shapes)
        return [tuple(s) for s in out] if isinstance(out, list) else tuple(out)
    symbolic_shape = getattr(layer, "symbolic_output_shapes", None)
    if callable(symbolic_shape):  # a cnnkit Model used as a layer
        return symbolic_shape(shapes)
    if hasattr(layer, "compute_output_shape") and not isinstance(shapes, list):
        return tuple(layer.compute_output_shape(shapes))
    # Any other torch module: one zero batch tells its output shape.
    dummy = ([torch.zeros((1, *s)) for s in shapes] if isinstance(shapes, list)
             else torch.zeros((1, *shapes)))
    was = layer.training
    layer.eval()
    try:
        with torch.no_grad():
            out = layer(dummy, **kwargs)
    except (RuntimeError, TypeError, ValueError) as err:
        raise SymbolicCallError(f"{type(layer).__name__} cannot be called on input "
                                f"{_shape_text(shapes)}: {err}") from err
    finally:
        layer.train(was)
    if isinstance(out, (list, tuple)):
        return [tuple(o.shape[1:]) for o in out]
    return tuple(out.shape[1:])


def _shape_text(shapes) -> str:
    from .layers import keras_shape
    if isinstance(shapes, list):
        return "[" + ", ".join(keras_shape(s) for s in shapes) + "]"
    return keras_shape(shapes)


def symbolic_call(layer: nn.Module, inputs, *args, **kwargs):
    """``layer(inputs)`` on KerasTensors: build the layer, record a Node, return its outputs."""
    if args:
        raise SymbolicCallError(f"{type(layer).__name__} called on a symbolic tensor with extra "
                                "positional arguments; pass them by keyword")
    kwargs = {k: v for k, v in kwargs.items() if k not in ("mask",)}
    if isinstance(inputs, tuple):
        inputs = list(inputs)
    shapes = output_shapes_of(layer, inputs, {k: v for k, v in kwargs.items() if k != "training"})
    node = Node(layer, inputs, kwargs, shapes)
    return node.output_structure()


@contextlib.contextmanager
def training_mode(module: nn.Module, training):
    """Keras's ``layer(x, training=...)``: the module in that mode for this call only."""
    if training is None or bool(training) == module.training:
        yield
        return
    was = module.training
    module.train(bool(training))
    try:
        yield
    finally:
        module.train(was)


def build_on_first_call(layer, x) -> None:
    """A layer called on data before it was built (subclassed models) builds itself from the
    data's shape, on the data's device, as Keras layers do on their first call."""
    if layer.built or not isinstance(x, (torch.Tensor, list, tuple)):
        return
    shapes = tuple(x.shape[1:]) if isinstance(x, torch.Tensor) else [tuple(t.shape[1:]) for t in x]
    layer.build(shapes)
    device = x.device if isinstance(x, torch.Tensor) else x[0].device
    layer.to(device)


class GraphIOMixin:
    """Keras's ``layer.input`` / ``layer.output``: the symbolic tensors of the layer's first
    call in a functional graph (to build feature models: ``Model(m.input, layer.output)``)."""

    def _first_node(self, what: str) -> Node:
        nodes = self.__dict__.get("_keras_nodes")
        if not nodes:
            raise AttributeError(f"layer '{getattr(self, 'name', None)}' has no {what} yet: it "
                                 "has not been called on a symbolic tensor (cnnkit.Input)")
        return nodes[0]

    @property
    def output(self):
        return self._first_node("output").output_structure()

    @property
    def input(self):
        node = self._first_node("input")
        return node.inputs if node.inputs != [] else node.outputs[0]

    @property
    def input_shape(self):
        """Keras's shape of what the layer was built for: ``(None, H, W, C)`` (a list for a
        merge layer)."""
        if "_set_input_shape" in self.__dict__:
            return self.__dict__["_set_input_shape"]
        shapes = self.__dict__.get("input_shapes_") or self.__dict__.get("input_shape_")
        if shapes is None:
            raise AttributeError(f"layer '{getattr(self, 'name', None)}' is not built yet: it "
                                 "has no input shape")
        if isinstance(shapes, list):
            return [(None, *to_keras_shape(s)) for s in shapes]
        return (None, *to_keras_shape(shapes))

    @input_shape.setter
    def input_shape(self, value):  # a layer class may keep its own value under this name
        self.__dict__["_set_input_shape"] = value

    @property
    def output_shape(self):
        """Keras's output shape, ``(None, H, W, C)``, from the built input shape."""
        if "_set_output_shape" in self.__dict__:
            return self.__dict__["_set_output_shape"]
        shapes = self.__dict__.get("input_shapes_") or self.__dict__.get("input_shape_")
        if shapes is None:
            raise AttributeError(f"layer '{getattr(self, 'name', None)}' is not built yet: it "
                                 "has no output shape")
        return (None, *to_keras_shape(self.compute_output_shape(shapes)))

    @output_shape.setter
    def output_shape(self, value):
        self.__dict__["_set_output_shape"] = value


def Input(shape=None, batch_size=None, dtype=None, name=None, batch_shape=None, tensor=None,
          sparse=None, optional=False):
    """Keras's ``Input``: a symbolic image ``(H, W, C)`` or vector ``(F,)`` input.

    Use it to start a functional model (``cnnkit.Model(inputs, outputs)``) or a Sequential."""
    from .layers.merging import InputLayer
    if shape is None and batch_shape is not None:
        shape = tuple(batch_shape)[1:]
    if shape is None:
        raise ValueError("Input needs a shape, e.g. Input(shape=(28, 28, 1))")
    layer = InputLayer(shape=shape, batch_size=batch_size, name=name)
    return layer.output
