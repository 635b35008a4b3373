"""DepthwiseConv2D, SeparableConv2D and Conv2DTranspose (Conv2D itself is in ``core``).

Kernels in Keras's layouts: depthwise ``(kh, kw, in, depth_multiplier)``, pointwise
``(1, 1, in * depth_multiplier, filters)``, transposed ``(kh, kw, filters, in)``. A depthwise
output channel ``i * depth_multiplier + m`` comes from input channel ``i``, as in TensorFlow.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .core import (_ActivatedLayer, _pair, _same_padding, check_data_format, padding_name)
from .keras_weights import KerasWeight, conv_kernel

__all__ = ["DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose"]


class _WindowedConv(_ActivatedLayer):
    """Kernel size, strides, Keras padding and dilation of a 2-D convolution."""

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), activation=None, use_bias=True, **kwargs):
        super().__init__(activation=activation, **kwargs)
        name = type(self).__name__
        check_data_format(data_format, name)
        self.padding = padding_name(padding, name)
        self.kernel_size = _pair(kernel_size)
        self.strides = _pair(strides)
        self.dilation_rate = _pair(dilation_rate)
        self.use_bias = bool(use_bias)
        self.pad = (0, 0, 0, 0)

    def _effective(self) -> list[int]:
        return [(k - 1) * d + 1 for k, d in zip(self.kernel_size, self.dilation_rate)]

    def _check_input(self, s):
        if len(s) != 3:
            raise self._shape_error("(None, height, width, channels)", s,
                                    f"{type(self).__name__} needs image input")
        eff = self._effective()
        if self.padding == "valid" and (s[1] < eff[0] or s[2] < eff[1]):
            raise self._shape_error(f"at least {eff[0]}x{eff[1]} pixels", s,
                                    "the image is smaller than the kernel: use padding='same'")

    def _set_same_padding(self, h, w):
        if self.padding == "same":
            top, bottom = _same_padding(h, self.kernel_size[0], self.strides[0], self.dilation_rate[0])
            left, right = _same_padding(w, self.kernel_size[1], self.strides[1], self.dilation_rate[1])
            self.pad = (left, right, top, bottom)

    def _spatial_out(self, h, w):
        if self.padding == "same":
            return math.ceil(h / self.strides[0]), math.ceil(w / self.strides[1])
        eff = self._effective()
        return (h - eff[0]) // self.strides[0] + 1, (w - eff[1]) // self.strides[1] + 1

    def get_config(self):
        return {**super().get_config(), "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding,
                "dilation_rate": list(self.dilation_rate), "use_bias": self.use_bias}


def _depthwise_kernel(tensor: torch.Tensor, multiplier: int, name: str, option: str) -> KerasWeight:
    """torch (in * m, 1, kh, kw) <-> Keras (kh, kw, in, m)."""
    channels, kh, kw = tensor.shape[0] // multiplier, tensor.shape[2], tensor.shape[3]
    return KerasWeight(
        name, tensor,
        lambda t: t[:, 0].permute(1, 2, 0).reshape(kh, kw, channels, multiplier),
        lambda a: a.reshape(kh, kw, channels * multiplier).permute(2, 0, 1).unsqueeze(1),
        option)


class DepthwiseConv2D(_WindowedConv):
    weight_options = ("depthwise", "bias")
    default_initializers = {"depthwise": "glorot_uniform", "bias": "zeros"}

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True, **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation,
                         use_bias, **kwargs)
        self.depth_multiplier = int(depth_multiplier)

    def _build(self, s):
        c, h, w = s
        self._set_same_padding(h, w)
        self.conv = nn.Conv2d(c, c * self.depth_multiplier, self.kernel_size, stride=self.strides,
                              dilation=self.dilation_rate, groups=c, bias=self.use_bias)

    def compute_output_shape(self, s):
        return (s[0] * self.depth_multiplier, *self._spatial_out(s[1], s[2]))

    def pre_activation(self, x):
        return self.conv(F.pad(x, self.pad) if any(self.pad) else x)

    def keras_weights(self):
        if not self.built:
            return []
        bias = [KerasWeight("bias", self.conv.bias)] if self.use_bias else []
        return [_depthwise_kernel(self.conv.weight, self.depth_multiplier, "kernel", "depthwise")] + bias

    def get_config(self):
        return {**super().get_config(), "depth_multiplier": self.depth_multiplier}


class SeparableConv2D(_WindowedConv):
    """Depthwise conv (strides, padding, dilation) then a 1x1 pointwise conv with the bias."""

    weight_options = ("depthwise", "pointwise", "bias")
    default_initializers = {"depthwise": "glorot_uniform", "pointwise": "glorot_uniform",
                            "bias": "zeros"}

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), depth_multiplier=1, activation=None, use_bias=True,
                 **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation,
                         use_bias, **kwargs)
        self.filters = int(filters)
        self.depth_multiplier = int(depth_multiplier)

    def _build(self, s):
        c, h, w = s
        self._set_same_padding(h, w)
        self.depthwise = nn.Conv2d(c, c * self.depth_multiplier, self.kernel_size,
                                   stride=self.strides, dilation=self.dilation_rate, groups=c,
                                   bias=False)
        self.pointwise = nn.Conv2d(c * self.depth_multiplier, self.filters, 1, bias=self.use_bias)

    @property
    def conv(self) -> nn.Conv2d:
        """The last convolution (the pointwise one): what Grad-CAM looks for as ``layer.conv``."""
        return self.pointwise

    def compute_output_shape(self, s):
        return (self.filters, *self._spatial_out(s[1], s[2]))

    def pre_activation(self, x):
        return self.pointwise(self.depthwise(F.pad(x, self.pad) if any(self.pad) else x))

    def keras_weights(self):
        if not self.built:
            return []
        bias = [KerasWeight("bias", self.pointwise.bias)] if self.use_bias else []
        return [_depthwise_kernel(self.depthwise.weight, self.depth_multiplier, "depthwise_kernel",
                                  "depthwise"),
                conv_kernel(self.pointwise.weight, "pointwise_kernel", "pointwise")] + bias

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "depth_multiplier": self.depth_multiplier}


class Conv2DTranspose(_WindowedConv):
    """Keras's transposed convolution: output ``h * stride`` ('same') or
    ``h * stride + max(k - stride, 0)`` ('valid'), or Keras's formula with ``output_padding``."""

    weight_options = ("kernel", "bias")
    default_initializers = {"kernel": "glorot_uniform", "bias": "zeros"}

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", output_padding=None,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True, **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation,
                         use_bias, **kwargs)
        self.filters = int(filters)
        self.output_padding = None if output_padding is None else _pair(output_padding)
        if self.output_padding and any(p >= s for p, s in zip(self.output_padding, self.strides)):
            raise ValueError(f"Conv2DTranspose output_padding={output_padding} must be smaller "
                             f"than strides={self.strides}")

    def _check_input(self, s):
        if len(s) != 3:
            raise self._shape_error("(None, height, width, channels)", s,
                                    "Conv2DTranspose needs image input")

    def _length(self, size: int, axis: int) -> int:
        k = self._effective()[axis]
        stride = self.strides[axis]
        if self.output_padding is None:
            return size * stride + (max(k - stride, 0) if self.padding == "valid" else 0)
        pad = k // 2 if self.padding == "same" else 0
        return (size - 1) * stride + k - 2 * pad + self.output_padding[axis]

    def _build(self, s):
        self.conv = nn.ConvTranspose2d(s[0], self.filters, self.kernel_size, stride=self.strides,
                                       dilation=self.dilation_rate, bias=self.use_bias)

    def compute_output_shape(self, s):
        return (self.filters, self._length(s[1], 0), self._length(s[2], 1))

    def pre_activation(self, x):
        # The full transposed conv, then cropped (or zero-extended at the end) to Keras's
        # length; the crop before is TensorFlow's 'same' padding of the forward conv.
        full = F.conv_transpose2d(x, self.conv.weight, None, self.strides,
                                  dilation=self.dilation_rate)
        for axis, size in ((2, x.shape[2]), (3, x.shape[3])):
            length = self._length(size, axis - 2)
            total = full.shape[axis] - length
            start = max(total, 0) // 2 if self.padding == "same" or self.output_padding else 0
            full = full.narrow(axis, start, min(length, full.shape[axis] - start))
            if full.shape[axis] < length:  # Keras's output is longer: zeros at the end
                pad = [0, 0, 0, 0]
                pad[(3 - axis) * 2 + 1] = length - full.shape[axis]
                full = F.pad(full, pad)
        if self.use_bias:
            full = full + self.conv.bias.view(1, -1, 1, 1)
        return full

    def keras_weights(self):
        if not self.built:
            return []
        bias = [KerasWeight("bias", self.conv.bias)] if self.use_bias else []
        return [conv_kernel(self.conv.weight)] + bias  # (in, out, kh, kw) -> (kh, kw, out, in)

    def get_config(self):
        config = {**super().get_config(), "filters": self.filters}
        if self.output_padding is not None:
            config["output_padding"] = list(self.output_padding)
        return config
