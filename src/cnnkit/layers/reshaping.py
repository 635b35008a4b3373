"""ZeroPadding2D, Cropping2D, UpSampling2D, Reshape and Permute.

Their arguments are Keras's, in channels-last terms: ``Reshape((7, 7, 4))`` makes a
(7, 7, 4) image, ``Permute((2, 1, 3))`` swaps height and width. Reshape and Permute work on
the Keras (NHWC) view of the batch and hand NCHW back, so they give Keras's numbers.
"""

from __future__ import annotations

import math

import torch.nn.functional as F

from ._layout import from_keras, keras_shape_of, to_keras, torch_shape_of
from .core import Layer, _pair, check_data_format

__all__ = ["ZeroPadding2D", "Cropping2D", "UpSampling2D", "Reshape", "Permute"]


def _two_sided(value, what: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """Keras's padding/cropping: n, (h, w) or ((top, bottom), (left, right))."""
    if isinstance(value, int):
        return (value, value), (value, value)
    value = tuple(value)
    if len(value) == 2 and all(isinstance(v, int) for v in value):
        return (value[0], value[0]), (value[1], value[1])
    if len(value) == 2:
        return _pair(value[0]), _pair(value[1])
    raise ValueError(f"{what}={value!r}: give an int, (rows, cols) or ((top, bottom), (left, right))")


class _Image2D(Layer):
    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        check_data_format(data_format, type(self).__name__)

    def _check_input(self, s):
        if len(s) != 3:
            raise self._shape_error("(None, height, width, channels)", s)


class ZeroPadding2D(_Image2D):
    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(data_format, **kwargs)
        self.padding = _two_sided(padding, "ZeroPadding2D padding")

    def compute_output_shape(self, s):
        (top, bottom), (left, right) = self.padding
        return (s[0], s[1] + top + bottom, s[2] + left + right)

    def forward(self, x):
        (top, bottom), (left, right) = self.padding
        return F.pad(x, (left, right, top, bottom))

    def get_config(self):
        return {**super().get_config(), "padding": [list(p) for p in self.padding]}


class Cropping2D(_Image2D):
    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(data_format, **kwargs)
        self.cropping = _two_sided(cropping, "Cropping2D cropping")

    def _check_input(self, s):
        super()._check_input(s)
        (top, bottom), (left, right) = self.cropping
        if top + bottom >= s[1] or left + right >= s[2]:
            raise self._shape_error(f"more than {top + bottom}x{left + right} pixels", s,
                                    "the cropping removes the whole image")

    def compute_output_shape(self, s):
        (top, bottom), (left, right) = self.cropping
        return (s[0], s[1] - top - bottom, s[2] - left - right)

    def forward(self, x):
        (top, bottom), (left, right) = self.cropping
        return x[:, :, top:x.shape[2] - bottom, left:x.shape[3] - right]

    def get_config(self):
        return {**super().get_config(), "cropping": [list(c) for c in self.cropping]}


class UpSampling2D(_Image2D):
    """Repeats rows and columns ('nearest') or resizes bilinearly with half-pixel centres
    (TensorFlow's resize, which ``F.interpolate(align_corners=False)`` matches)."""

    _MODES = {"nearest": "nearest", "bilinear": "bilinear"}

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(data_format, **kwargs)
        self.size = _pair(size)
        if interpolation not in self._MODES:
            raise ValueError(f"UpSampling2D interpolation={interpolation!r}: cnnkit supports "
                             f"{', '.join(map(repr, self._MODES))} (TensorFlow's bicubic and "
                             "lanczos kernels differ from torch's)")
        self.interpolation = interpolation

    def compute_output_shape(self, s):
        return (s[0], s[1] * self.size[0], s[2] * self.size[1])

    def forward(self, x):
        if self.interpolation == "nearest":
            return x.repeat_interleave(self.size[0], dim=2).repeat_interleave(self.size[1], dim=3)
        return F.interpolate(x, scale_factor=self.size, mode="bilinear", align_corners=False)

    def get_config(self):
        return {**super().get_config(), "size": list(self.size), "interpolation": self.interpolation}


class Reshape(Layer):
    """``Reshape(target_shape)`` in Keras terms (one entry may be -1)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(int(s) for s in target_shape)
        if sum(s == -1 for s in self.target_shape) > 1 or any(s == 0 or s < -1 for s in self.target_shape):
            raise ValueError(f"Reshape target_shape={self.target_shape}: positive sizes, with at "
                             "most one -1")

    def _resolved(self, s) -> tuple:
        total = math.prod(s)
        known = math.prod(d for d in self.target_shape if d != -1)
        if -1 in self.target_shape:
            if total % known:
                raise self._shape_error(f"a size divisible by {known}", s,
                                        f"cannot reshape {total} values to {self.target_shape}")
            return tuple(total // known if d == -1 else d for d in self.target_shape)
        if known != total:
            raise self._shape_error(f"{known} values", s,
                                    f"Reshape{self.target_shape} needs {known} values, not {total}")
        return self.target_shape

    def _check_input(self, s):
        self._resolved(s)

    def compute_output_shape(self, s):
        return torch_shape_of(self._resolved(s))

    def forward(self, x):
        target = self._resolved(x.shape[1:])
        return from_keras(to_keras(x).reshape(-1, *target))  # -1: traced exports keep any batch

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


class Permute(Layer):
    """``Permute(dims)``: dims numbered from 1 over the non-batch axes, in Keras terms."""

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        self.dims = tuple(int(d) for d in dims)
        if sorted(self.dims) != list(range(1, len(self.dims) + 1)):
            raise ValueError(f"Permute dims={self.dims} must be a permutation of "
                             f"{tuple(range(1, len(self.dims) + 1))}")

    def _check_input(self, s):
        if len(s) != len(self.dims):
            raise self._shape_error(f"{len(self.dims)} axes besides the batch", s)

    def compute_output_shape(self, s):
        keras = keras_shape_of(s)
        return torch_shape_of(tuple(keras[d - 1] for d in self.dims))

    def forward(self, x):
        return from_keras(to_keras(x).permute(0, *self.dims))

    def get_config(self):
        return {**super().get_config(), "dims": list(self.dims)}
