"""The functional API's own layers: ``InputLayer`` and the merge layers (``Add``,
``Concatenate``, ``Multiply``, ``Average``, ``Maximum``, ``Minimum``, ``Subtract``).

A merge layer takes a list of tensors. Shapes inside are cnnkit's (channels first, no batch);
``Concatenate(axis=-1)`` counts its axis as Keras does, on (batch, H, W, C), and concatenates
along the matching torch axis (the channels for images).
"""

from __future__ import annotations

import torch

from ..keras_tensor import Node, to_torch_shape
from .core import Layer, ShapeError, keras_shape

__all__ = ["InputLayer", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
           "Concatenate", "add", "subtract", "multiply", "average", "maximum", "minimum",
           "concatenate", "MERGE_CLASSES"]


class InputLayer(Layer):
    """Keras's ``InputLayer``: where a functional model's input enters (identity in forward).

    ``InputLayer(shape=(H, W, C))``; ``layer.output`` is its symbolic tensor."""

    def __init__(self, shape=None, batch_size=None, dtype=None, batch_shape=None, name=None,
                 sparse=None, input_tensor=None, optional=False, **kwargs):
        super().__init__(name=name, **kwargs)
        if shape is None and batch_shape is not None:
            shape = tuple(batch_shape)[1:]
        if shape is None:
            raise ValueError("InputLayer needs a shape, e.g. InputLayer(shape=(28, 28, 1))")
        try:
            self.keras_input_shape = tuple(int(s) for s in shape)
        except (TypeError, ValueError):
            raise ValueError(f"Input shape {tuple(shape)}: give whole numbers, (height, width, "
                             "channels) for images or (features,) for vectors; None "
                             "(variable) sizes are not supported") from None
        if not self.keras_input_shape or min(self.keras_input_shape) < 1:
            raise ValueError(f"Input shape {self.keras_input_shape}: every size must be >= 1")
        self.batch_size = batch_size
        torch_shape = to_torch_shape(self.keras_input_shape)
        self.build(torch_shape)
        Node(self, [], {}, torch_shape)  # its output is the model's input tensor

    @property
    def shape(self) -> tuple:
        return self.keras_input_shape

    def forward(self, x):
        return x

    def get_config(self):
        return {**super().get_config(), "batch_shape": [None, *self.keras_input_shape]}


class _Merge(Layer):
    """Base of the merge layers: a list of same-shaped tensors in, one tensor out."""

    min_inputs = 1
    max_inputs: int | None = None

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or not input_shape or \
                not isinstance(input_shape[0], (list, tuple)):
            raise ShapeError(f"layer '{self.name}' ({type(self).__name__}) is a merge layer: call "
                             "it on a list of tensors, e.g. layers.Add()([a, b])")
        shapes = [tuple(int(d) for d in s) for s in input_shape]
        if len(shapes) < self.min_inputs or (self.max_inputs and len(shapes) > self.max_inputs):
            count = (f"exactly {self.min_inputs}" if self.min_inputs == self.max_inputs
                     else f"at least {self.min_inputs}")
            raise ShapeError(f"layer '{self.name}' ({type(self).__name__}) takes {count} inputs, "
                             f"got {len(shapes)}")
        self._check_shapes(shapes)
        self.input_shape_ = None  # several inputs: no single input shape
        self.input_shapes_ = shapes
        self.built = True

    def _check_shapes(self, shapes):
        try:
            torch.broadcast_shapes(*shapes)
        except RuntimeError:
            raise ShapeError(f"layer '{self.name}' ({type(self).__name__}) needs inputs of the same "
                             f"shape, got {', '.join(keras_shape(s) for s in shapes)}") from None

    def compute_output_shape(self, input_shape):
        return tuple(torch.broadcast_shapes(*[tuple(s) for s in input_shape]))

    def forward(self, inputs):
        if not isinstance(inputs, (list, tuple)):
            raise TypeError(f"{type(self).__name__} takes a list of tensors")
        return self._merge(list(inputs))


class Add(_Merge):
    def _merge(self, xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Subtract(_Merge):
    min_inputs = max_inputs = 2

    def _merge(self, xs):
        return xs[0] - xs[1]


class Multiply(_Merge):
    def _merge(self, xs):
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out


class Average(_Merge):
    def _merge(self, xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out / len(xs)


class Maximum(_Merge):
    def _merge(self, xs):
        out = xs[0]
        for x in xs[1:]:
            out = torch.maximum(out, x)
        return out


class Minimum(_Merge):
    def _merge(self, xs):
        out = xs[0]
        for x in xs[1:]:
            out = torch.minimum(out, x)
        return out


def torch_axis(keras_axis: int, rank: int) -> int:
    """A Keras axis on (batch, H, W, C) [or (batch, F)] -> the axis on (batch, C, H, W)."""
    axis = keras_axis % rank
    if rank == 4:
        return {0: 0, 1: 2, 2: 3, 3: 1}[axis]
    return axis


class Concatenate(_Merge):
    """``Concatenate(axis=-1)``: Keras's axis (channels last); torch's matching axis inside."""

    def __init__(self, axis: int = -1, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)

    def _dim(self, rank_without_batch: int) -> int:
        return torch_axis(self.axis, rank_without_batch + 1) - 1  # -1: shapes have no batch

    def _check_shapes(self, shapes):
        ranks = {len(s) for s in shapes}
        dim = self._dim(len(shapes[0]))
        if len(ranks) != 1 or dim < 0 or any(
                s[:dim] + s[dim + 1:] != shapes[0][:dim] + shapes[0][dim + 1:] for s in shapes):
            raise ShapeError(f"layer '{self.name}' (Concatenate) with axis={self.axis} needs inputs "
                             "whose shapes match except on that axis, got "
                             f"{', '.join(keras_shape(s) for s in shapes)}")

    def compute_output_shape(self, input_shape):
        shapes = [tuple(s) for s in input_shape]
        dim = self._dim(len(shapes[0]))
        out = list(shapes[0])
        out[dim] = sum(s[dim] for s in shapes)
        return tuple(out)

    def _merge(self, xs):
        return torch.cat(xs, dim=torch_axis(self.axis, xs[0].ndim))

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def add(inputs, **kwargs):
    """Keras's ``layers.add([a, b])``: ``Add()([a, b])``."""
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis: int = -1, **kwargs):
    return Concatenate(axis=axis, **kwargs)(inputs)


MERGE_CLASSES = {cls.__name__: cls for cls in (
    InputLayer, Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate)}
