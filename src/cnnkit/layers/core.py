"""Keras-named layers. Each constructor returns a ``torch.nn.Module``.

Shapes inside are PyTorch's: a layer sees ``(C, H, W)`` for images or ``(F,)`` for vectors
(batch axis left out). ``build(shape)`` creates the weights once the input shape is known;
``compute_output_shape(shape)`` answers without running anything. Weights start as Keras
starts them (Glorot-uniform kernels, zero biases), so tutorial results carry over.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import nn

from .. import activations
from .. import keras_layout, keras_tensor
from .keras_weights import KerasWeight, WeightOptions, conv_kernel, dense_kernel

__all__ = [
    "Layer", "Input", "Conv2D", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
    "GlobalMaxPooling2D", "Flatten", "Dense", "Dropout", "BatchNormalization", "Activation",
    "ReLU", "Rescaling", "ShapeError",
    "RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom", "RandomContrast",
    "RandomBrightness",
]


class ShapeError(ValueError):
    """A layer got an input shape it cannot take; the message names the layer and both shapes."""


def keras_shape(shape) -> str:
    """Torch shape without batch, (C, H, W) or (F,), as Keras prints it: (None, H, W, C)."""
    shape = tuple(shape)
    if len(shape) == 3:
        shape = (shape[1], shape[2], shape[0])
    return "(" + ", ".join(["None"] + [str(s) for s in shape]) + ")"


def _pair(v) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    v = tuple(int(i) for i in v)
    if len(v) != 2:
        raise ValueError(f"expected an int or a pair of ints, got {v}")
    return v


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower().replace("2_d", "2d")


def _same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's 'same' padding (extra pixel at the end) -> (before, after)."""
    effective = (kernel - 1) * dilation + 1
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def padding_name(padding, layer: str, allowed=("valid", "same")) -> str:
    """Keras's padding names in any case ('SAME', 'Valid')."""
    name = str(padding).lower()
    if name not in allowed:
        raise ValueError(f"{layer} padding must be one of {', '.join(map(repr, allowed))} "
                         f"(any case), got {padding!r}")
    return name


def check_data_format(data_format, layer: str) -> None:
    """Keras's ``data_format``: inputs are channels-last (None means the same)."""
    if data_format not in (None, "channels_last"):
        raise ValueError(f"{layer} data_format={data_format!r}: cnnkit's Keras layers take "
                         "channels-last input (N, H, W, C); pass data_format='channels_last' "
                         "or leave it out, and give the model (H, W, C) images")


def _glorot_uniform_(weight: torch.Tensor, fan_in: int, fan_out: int) -> None:
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        weight.uniform_(-limit, limit)


# Keras dtype policies a layer may take (``dtype=``), and the autocast dtype each computes in.
_POLICY_DTYPES = {"float32": torch.float32, "mixed_bfloat16": torch.bfloat16,
                  "mixed_float16": torch.float16}
_POLICY_ALIASES = {"fp32": "float32", "bf16": "mixed_bfloat16", "bfloat16": "mixed_bfloat16",
                   "fp16": "mixed_float16", "float16": "mixed_float16"}


def dtype_policy(dtype) -> str | None:
    """Normalise a layer's ``dtype=`` (Keras policy name, alias or torch dtype) or raise."""
    if dtype is None:
        return None
    if isinstance(dtype, torch.dtype):
        dtype = {v: k for k, v in _POLICY_DTYPES.items()}.get(dtype, str(dtype))
    name = _POLICY_ALIASES.get(str(dtype), str(dtype))
    if name not in _POLICY_DTYPES:
        raise ValueError(f"dtype={dtype!r}: a layer computes in one of {sorted(_POLICY_DTYPES)} "
                         "(or None to follow the model's precision)")
    return name


class Layer(WeightOptions, keras_layout.KerasWeightsMixin, keras_tensor.GraphIOMixin, nn.Module):
    """Base of the Keras-named layers: a module that builds itself from its input shape.

    ``dtype=`` is the layer's precision policy, as in Keras: ``'float32'`` keeps the layer in
    full precision inside a model compiled with ``precision='bf16'`` (e.g. the Dense
    classifier), ``'mixed_bfloat16'`` / ``'mixed_float16'`` run only this layer
    under autocast. Weights stay float32 either way. ``None`` follows the model.

    Keras's per-weight arguments (``kernel_initializer``, ``bias_regularizer``,
    ``kernel_constraint``, ...) and ``activity_regularizer`` are handled by
    :class:`~cnnkit.layers.keras_weights.WeightOptions`, for the weights a layer lists.
    """

    def __init__(self, name: str | None = None, input_shape=None, trainable: bool = True,
                 dtype=None, activity_regularizer=None, **weight_options):
        super().__init__()
        self._init_weight_options(activity_regularizer, weight_options)
        self.name = name
        self.declared_input_shape = tuple(input_shape) if input_shape is not None else None
        self.built = False
        self.input_shape_: tuple | None = None  # torch layout, no batch axis
        self._trainable = trainable
        self.dtype_policy = dtype_policy(dtype)

    # -- precision policy --------------------------------------------------------------
    def run_in_policy(self, fn, x: torch.Tensor) -> torch.Tensor:
        """``fn(x)`` under this layer's ``dtype`` policy (just ``fn(x)`` without one)."""
        if self.dtype_policy is None:
            return fn(x)
        dtype = _POLICY_DTYPES[self.dtype_policy]
        if dtype is torch.float32:
            scope = torch.autocast(x.device.type, enabled=False)
            if x.is_floating_point() and x.dtype != torch.float32:
                x = x.float()
        else:
            scope = torch.autocast(x.device.type, dtype=dtype)
        with scope:
            return fn(x)

    def __call__(self, x, *args, **kwargs):
        if keras_tensor.is_symbolic(x):  # functional API: record the call, compute nothing
            return keras_tensor.symbolic_call(self, x, *args, **kwargs)
        if "training" in kwargs:  # Keras's layer(x, training=...): that mode for this call
            with keras_tensor.training_mode(self, kwargs.pop("training")):
                return self(x, *args, **kwargs)
        keras_tensor.build_on_first_call(self, x)
        if self.dtype_policy is None:
            out = super().__call__(x, *args, **kwargs)
        else:
            out = self.run_in_policy(lambda t: super(Layer, self).__call__(t, *args, **kwargs), x)
        if self.activity_regularizer is not None:
            self._record_activity(out)
        return out

    def policy_pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`pre_activation` under the layer's precision policy (for callers that skip
        ``__call__``, as Sequential does to fuse activations or return logits)."""
        z = self.run_in_policy(self.pre_activation, x)
        if self.activity_regularizer is not None:  # Keras regularizes the activated output
            self._record_activity(getattr(self, "activation", lambda t: t)(z))
        return z

    # -- shape inference -------------------------------------------------------------
    def build(self, input_shape: tuple) -> None:
        input_shape = tuple(int(s) for s in input_shape)
        self._check_input(input_shape)
        from ..train.sanity import check_weights_fit
        check_weights_fit(self, input_shape)  # refuse weights that cannot fit, before allocating
        self._build(input_shape)
        self.input_shape_ = input_shape
        self.built = True
        self._apply_initializers()
        if not self._trainable:
            self.trainable = False

    def _check_input(self, input_shape: tuple) -> None:
        """Raise ShapeError when the input shape does not fit this layer."""

    def _build(self, input_shape: tuple) -> None:
        """Create the weights; layers without weights need nothing."""

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def _shape_error(self, expected: str, got: tuple, hint: str = "") -> ShapeError:
        msg = (f"layer '{self.name}' ({type(self).__name__}) expects input {expected} "
               f"but got {keras_shape(got)}")
        return ShapeError(msg + (f"; {hint}" if hint else ""))

    # -- Keras-style bookkeeping -----------------------------------------------------
    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        """Keras's ``layer.trainable = False``: parameters frozen and BatchNorm in inference mode."""
        from ..models.transfer import set_trainable
        self._trainable = bool(value)
        set_trainable(self, self._trainable)

    def count_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def non_trainable_state_count(self) -> int:
        """State Keras counts as non-trainable params (BatchNorm moving statistics)."""
        return 0

    def get_config(self) -> dict:
        config = {"name": self.name}
        if not self._trainable:
            config["trainable"] = False
        if self.dtype_policy is not None:
            config["dtype"] = self.dtype_policy
        return {**config, **self.weight_options_config()}

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        """Output before the final activation (logits); layers without one return forward."""
        return self.forward(x)

    @property
    def activation_name(self) -> str | None:
        return None


class _ActivatedLayer(Layer):
    """A layer with an ``activation=`` argument applied after its main op."""

    def __init__(self, activation=None, **kwargs):
        super().__init__(**kwargs)
        _init_activation(self, activation)

    @property
    def activation_name(self):
        return self._activation_name

    def forward(self, x):
        return self.activation(self.pre_activation(x))

    def get_config(self):
        return {**super().get_config(), "activation": _activation_config(self)}


def _init_activation(layer: Layer, activation) -> None:
    """Name (None for linear or an unnamed callable) and module of ``activation=``."""
    name = activations.name_of(activation)
    layer._activation_name = None if name == "linear" else name
    layer._activation_unnamed = name is None
    layer._activation_label = getattr(activation, "__name__", repr(activation))
    layer.activation = activations.get(activation)


def _activation_config(layer: Layer) -> str | None:
    if layer._activation_unnamed:
        raise ValueError(f"layer '{layer.name}': activation {layer._activation_label!r} has no "
                         "registered name, and a saved model records activations by name, never "
                         "as code: pass a cnnkit.activations function or name, or call "
                         "cnnkit.activations.register('my_act', fn) before saving and loading")
    return layer._activation_name


class InputSpec:
    """``Input((H, W, C))``: declares the input shape in Keras layout. Not a module."""

    def __init__(self, shape, name: str | None = None, batch_size: int | None = None,
                 dtype=None):
        self.shape = tuple(int(s) for s in shape)
        if len(self.shape) not in (1, 3):
            raise ValueError(f"Input shape {self.shape}: give (height, width, channels) for "
                             "images or (features,) for vectors")
        self.name = name
        self.batch_size = batch_size


def Input(shape=None, name: str | None = None, batch_size: int | None = None, dtype=None, **kwargs):
    """Keras ``Input``: a symbolic tensor of shape (H, W, C) (see cnnkit.keras_tensor)."""
    return keras_tensor.Input(shape, name=name, batch_size=batch_size, dtype=dtype, **kwargs)


def keras_to_torch_shape(shape) -> tuple:
    """(H, W, C) -> (C, H, W); (F,) stays."""
    shape = tuple(int(s) for s in shape)
    return (shape[2], shape[0], shape[1]) if len(shape) == 3 else shape


class Conv2D(_ActivatedLayer):
    weight_options = ("kernel", "bias")

    def __init__(self, filters: int, kernel_size, strides=(1, 1), padding: str = "valid",
                 activation=None, use_bias: bool = True, dilation_rate=(1, 1), groups: int = 1,
                 data_format=None, **kwargs):
        super().__init__(activation=activation, **kwargs)
        check_data_format(data_format, "Conv2D")
        self.padding = padding_name(padding, "Conv2D")
        self.filters = int(filters)
        self.kernel_size = _pair(kernel_size)
        self.strides = _pair(strides)
        self.use_bias = use_bias
        self.dilation_rate = _pair(dilation_rate)
        self.groups = int(groups)
        if self.groups < 1 or self.filters % self.groups:
            raise ValueError(f"Conv2D groups={groups}: filters ({self.filters}) must be a multiple "
                             "of groups (a positive int)")
        self.pad = (0, 0, 0, 0)

    def _check_input(self, s):
        if len(s) != 3:
            raise self._shape_error("(None, height, width, channels)", s,
                                    "Conv2D needs image input; check the Input shape")
        c, h, w = s
        if c % self.groups:
            raise self._shape_error(f"channels divisible by groups={self.groups}", s)
        eff = [(k - 1) * d + 1 for k, d in zip(self.kernel_size, self.dilation_rate)]
        if self.padding == "valid" and (h < eff[0] or w < eff[1]):
            raise self._shape_error(f"at least {eff[0]}x{eff[1]} pixels", s,
                                    "the image is smaller than the kernel: use padding='same' "
                                    "or remove a pooling layer before it")

    def _build(self, s):
        c, h, w = s
        if self.padding == "same":
            top, bottom = _same_padding(h, self.kernel_size[0], self.strides[0], self.dilation_rate[0])
            left, right = _same_padding(w, self.kernel_size[1], self.strides[1], self.dilation_rate[1])
            self.pad = (left, right, top, bottom)
        self.conv = nn.Conv2d(c, self.filters, self.kernel_size, stride=self.strides,
                              dilation=self.dilation_rate, groups=self.groups, bias=self.use_bias)
        kh, kw = self.kernel_size
        _glorot_uniform_(self.conv.weight, c // self.groups * kh * kw, self.filters * kh * kw)
        if self.use_bias:
            nn.init.zeros_(self.conv.bias)

    def compute_output_shape(self, s):
        c, h, w = s
        if self.padding == "same":
            return (self.filters, math.ceil(h / self.strides[0]), math.ceil(w / self.strides[1]))
        eff = [(k - 1) * d + 1 for k, d in zip(self.kernel_size, self.dilation_rate)]
        return (self.filters, (h - eff[0]) // self.strides[0] + 1, (w - eff[1]) // self.strides[1] + 1)

    def pre_activation(self, x):
        if any(self.pad):
            x = F.pad(x, self.pad)
        return self.conv(x)

    def keras_weights(self):
        if not self.built:
            return []
        bias = [KerasWeight("bias", self.conv.bias)] if self.use_bias else []
        return [conv_kernel(self.conv.weight)] + bias

    def get_config(self):
        config = {**super().get_config(), "filters": self.filters, "kernel_size": list(self.kernel_size),
                  "strides": list(self.strides), "padding": self.padding, "use_bias": self.use_bias,
                  "dilation_rate": list(self.dilation_rate)}
        return {**config, "groups": self.groups} if self.groups != 1 else config


class _Pooling2D(Layer):
    def __init__(self, pool_size=(2, 2), strides=None, padding: str = "valid", data_format=None,
                 **kwargs):
        super().__init__(**kwargs)
        check_data_format(data_format, type(self).__name__)
        self.padding = padding_name(padding, type(self).__name__)
        self.pool_size = _pair(pool_size)
        self.strides = _pair(strides) if strides is not None else self.pool_size
        self.pad = (0, 0, 0, 0)

    def _check_input(self, s):
        if len(s) != 3:
            raise self._shape_error("(None, height, width, channels)", s)
        if self.padding == "valid" and (s[1] < self.pool_size[0] or s[2] < self.pool_size[1]):
            raise self._shape_error(f"at least {self.pool_size[0]}x{self.pool_size[1]} pixels", s,
                                    "the feature map is already smaller than the pool")

    def _build(self, s):
        if self.padding == "same":
            top, bottom = _same_padding(s[1], self.pool_size[0], self.strides[0])
            left, right = _same_padding(s[2], self.pool_size[1], self.strides[1])
            self.pad = (left, right, top, bottom)

    def compute_output_shape(self, s):
        c, h, w = s
        if self.padding == "same":
            return (c, math.ceil(h / self.strides[0]), math.ceil(w / self.strides[1]))
        return (c, (h - self.pool_size[0]) // self.strides[0] + 1,
                (w - self.pool_size[1]) // self.strides[1] + 1)

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size),
                "strides": list(self.strides), "padding": self.padding}


class MaxPooling2D(_Pooling2D):
    def forward(self, x):
        if any(self.pad):
            x = F.pad(x, self.pad, value=float("-inf"))
        return F.max_pool2d(x, self.pool_size, self.strides)


class AveragePooling2D(_Pooling2D):
    def forward(self, x):
        if not any(self.pad):
            return F.avg_pool2d(x, self.pool_size, self.strides)
        # 'same': average over the real pixels only, as Keras does.
        ones = torch.ones_like(x[:1, :1])
        total = F.avg_pool2d(F.pad(x, self.pad), self.pool_size, self.strides)
        count = F.avg_pool2d(F.pad(ones, self.pad), self.pool_size, self.strides)
        return total / count


class _GlobalPooling2D(Layer):
    def __init__(self, keepdims: bool = False, data_format=None, **kwargs):
        super().__init__(**kwargs)
        check_data_format(data_format, type(self).__name__)
        self.keepdims = keepdims

    def _check_input(self, s):
        if len(s) != 3:
            raise self._shape_error("(None, height, width, channels)", s)

    def compute_output_shape(self, s):
        return (s[0], 1, 1) if self.keepdims else (s[0],)

    def get_config(self):
        return {**super().get_config(), "keepdims": self.keepdims}


class GlobalAveragePooling2D(_GlobalPooling2D):
    def forward(self, x):
        return x.mean(dim=(2, 3), keepdim=self.keepdims)


class GlobalMaxPooling2D(_GlobalPooling2D):
    def forward(self, x):
        return x.amax(dim=(2, 3), keepdim=self.keepdims)


class Flatten(Layer):
    """Flattens channels-last, as Keras does, so a Dense kernel after it is Keras's; models
    saved before this option flattened channels-first (``data_format='channels_first'``)."""

    def __init__(self, data_format: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = data_format or "channels_last"
        if self.data_format not in ("channels_last", "channels_first"):
            raise ValueError(f"Flatten data_format must be 'channels_last' or 'channels_first', "
                             f"got {data_format!r}")

    def compute_output_shape(self, s):
        return (math.prod(s),)

    def forward(self, x):
        if x.ndim == 4 and self.data_format == "channels_last":
            x = x.permute(0, 2, 3, 1)  # a view of channels_last memory: no copy
        return x.flatten(1)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class Dense(_ActivatedLayer):
    weight_options = ("kernel", "bias")

    def __init__(self, units: int, activation=None, use_bias: bool = True, **kwargs):
        super().__init__(activation=activation, **kwargs)
        self.units = int(units)
        self.use_bias = use_bias

    def _check_input(self, s):
        if len(s) != 1:
            raise self._shape_error("(None, features)", s,
                                    "add Flatten() or GlobalAveragePooling2D() before it")

    def _build(self, s):
        self.linear = nn.Linear(s[0], self.units, bias=self.use_bias)
        _glorot_uniform_(self.linear.weight, s[0], self.units)
        if self.use_bias:
            nn.init.zeros_(self.linear.bias)

    def compute_output_shape(self, s):
        return (self.units,)

    def pre_activation(self, x):
        return self.linear(x)

    def keras_weights(self):
        if not self.built:
            return []
        return [dense_kernel(self.linear.weight)] + (
            [KerasWeight("bias", self.linear.bias)] if self.use_bias else [])

    def get_config(self):
        return {**super().get_config(), "units": self.units, "use_bias": self.use_bias}


class Dropout(Layer):
    """Keras's Dropout; ``seed=`` gives the layer its own generator, so the masks repeat from
    run to run (not Keras's masks: the generators differ). ``noise_shape`` is in Keras's
    terms: ``(None, 1, 1, None)`` drops whole channels of an image."""

    def __init__(self, rate: float, noise_shape=None, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self.noise_shape = None if noise_shape is None else \
            [None if d is None else int(d) for d in noise_shape]
        self.seed = None if seed is None else int(seed)
        self.dropout = nn.Dropout(self.rate)
        self._generator: torch.Generator | None = None

    def _check_input(self, s):
        if self.noise_shape is not None and len(self.noise_shape) != len(s) + 1:
            raise self._shape_error(f"{len(self.noise_shape) - 1} axes besides the batch", s,
                                    f"noise_shape={self.noise_shape} has one entry per axis")

    def _mask_shape(self, x) -> list[int]:
        keras = [x.shape[0], *x.shape[2:], x.shape[1]] if x.ndim == 4 else list(x.shape)
        shape = [k if d is None else d for d, k in zip(self.noise_shape or [None] * x.ndim, keras)]
        return [shape[0], shape[3], shape[1], shape[2]] if x.ndim == 4 else shape

    def forward(self, x):
        if (self.seed is None and self.noise_shape is None) or not self.training or not self.rate:
            return self.dropout(x)
        generator = None
        if self.seed is not None:
            if self._generator is None or self._generator.device != x.device:
                self._generator = torch.Generator(device=x.device)
                self._generator.manual_seed(self.seed)
            generator = self._generator
        keep = torch.empty(self._mask_shape(x), device=x.device, dtype=x.dtype)
        keep.bernoulli_(1 - self.rate, generator=generator)
        return x * keep / (1 - self.rate)

    def get_config(self):
        config = {**super().get_config(), "rate": self.rate}
        if self.noise_shape is not None:
            config["noise_shape"] = self.noise_shape
        return {**config, "seed": self.seed} if self.seed is not None else config


class BatchNormalization(Layer):
    """Keras's BatchNormalization over the channel axis (momentum 0.99 = torch's 0.01).

    ``axis`` is Keras's: -1 (or the last axis' index) is the channel axis, the only one
    supported. ``center=False`` / ``scale=False`` drop beta / gamma from the weights, as in
    Keras (they stay in the state dict as constant buffers, so saved files keep their keys).
    """

    weight_options = ("gamma", "beta", "moving_mean", "moving_variance")

    def __init__(self, axis=-1, momentum: float = 0.99, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            axis = axis[0] if len(axis) == 1 else axis
        if not isinstance(axis, int):
            raise ValueError(f"BatchNormalization axis={axis!r}: cnnkit normalizes over one axis, "
                             "the channel axis (axis=-1)")
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = center
        self.scale = scale

    def _check_input(self, s):
        if self.axis not in (-1, len(s)):
            raise ValueError(f"layer '{self.name}' (BatchNormalization) axis={self.axis} on input "
                             f"{keras_shape(s)}: only the channel axis (axis=-1 or {len(s)}) is "
                             "supported")

    def _build(self, s):
        bn = nn.BatchNorm2d if len(s) == 3 else nn.BatchNorm1d
        self.bn = bn(s[0], eps=self.epsilon, momentum=1 - self.momentum, affine=True)
        for keep, name, value in ((self.scale, "weight", 1.0), (self.center, "bias", 0.0)):
            if not keep:  # not a weight in Keras: a constant buffer with the same key
                delattr(self.bn, name)
                self.bn.register_buffer(name, torch.full((s[0],), value))

    def keras_weights(self):
        if not self.built:
            return []
        affine = ([KerasWeight("gamma", self.bn.weight)] if self.scale else []) + \
                 ([KerasWeight("beta", self.bn.bias)] if self.center else [])
        return affine + [KerasWeight("moving_mean", self.bn.running_mean),
                         KerasWeight("moving_variance", self.bn.running_var)]

    def non_trainable_state_count(self):
        return self.bn.running_mean.numel() + self.bn.running_var.numel()

    def count_params(self):
        return super().count_params() + self.non_trainable_state_count()

    def forward(self, x):
        if not (self.training and self.bn.track_running_stats):
            return self.bn(x)
        old_var = self.bn.running_var.detach().clone()
        out = self.bn(x)
        # torch moves the moving variance towards the unbiased batch variance, Keras towards
        # the biased one (n-1 vs n); undo the difference so a training step matches Keras.
        n = x.numel() // x.shape[1]
        with torch.no_grad():  # .data: autograd saved the buffer, its backward never reads it
            var = self.bn.running_var.data
            var.sub_((var - (1 - self.bn.momentum) * old_var) / n)
        return out

    def get_config(self):
        config = {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon,
                  "center": self.center, "scale": self.scale}
        return {**config, "axis": self.axis} if self.axis != -1 else config


class Activation(_ActivatedLayer):
    """Keras's ``Activation(fn)``: the activation alone (its main op is the identity)."""

    def __init__(self, activation, **kwargs):
        super().__init__(activation=activation, **kwargs)

    def pre_activation(self, x):
        return x


class ReLU(Layer):
    def __init__(self, max_value: float | None = None, negative_slope: float = 0.0,
                 threshold: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.max_value = max_value
        self.negative_slope = float(negative_slope)
        self.threshold = float(threshold)

    def forward(self, x):
        if self.threshold:
            out = torch.where(x >= self.threshold, x, self.negative_slope * (x - self.threshold))
        else:
            out = F.leaky_relu(x, self.negative_slope) if self.negative_slope else F.relu(x)
        if self.max_value is not None:
            out = out.clamp(max=self.max_value)
        return out

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value,
                "negative_slope": self.negative_slope, "threshold": self.threshold}


class Rescaling(Layer):
    """x * scale + offset. As a model's first layer it means: feed raw 0..255 pixels."""

    def __init__(self, scale: float, offset: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)
        self.offset = float(offset)

    def forward(self, x):
        return x * self.scale + self.offset

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


def _augmentation_layer(name):
    def make(*args, **kwargs):
        from ..data import augment
        return getattr(augment, name)(*args, **kwargs)
    make.__name__ = name
    make.__doc__ = f"Keras's {name}, active in training only (see cnnkit.data.augment)."
    return make


RandomFlip = _augmentation_layer("RandomFlip")
RandomRotation = _augmentation_layer("RandomRotation")
RandomTranslation = _augmentation_layer("RandomTranslation")
RandomZoom = _augmentation_layer("RandomZoom")
RandomContrast = _augmentation_layer("RandomContrast")
RandomBrightness = _augmentation_layer("RandomBrightness")

AUGMENTATION_LAYERS = ("RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom",
                       "RandomContrast", "RandomBrightness")
LAYER_CLASSES = {cls.__name__: cls for cls in (
    Conv2D, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, Flatten,
    Dense, Dropout, BatchNormalization, Activation, ReLU, Rescaling)}


def layer_from_config(class_name: str, config: dict) -> nn.Module:
    """Rebuild a layer from the name and config saved by ``Sequential.get_config``."""
    if class_name == "Flatten" and "data_format" not in config:
        config = {**config, "data_format": "channels_first"}  # saved before channels-last
    if class_name in LAYER_CLASSES:
        return LAYER_CLASSES[class_name](**config)
    if class_name == "ZooModel":  # a zoo backbone inside a Sequential (transfer learning)
        from ..models.transfer import ZooModel
        return ZooModel.from_config(config)
    if class_name in AUGMENTATION_LAYERS:  # a fixed list: a file never names what to look up
        from ..data import augment
        return getattr(augment, class_name)(**config)
    raise ValueError(f"unknown layer type {class_name!r} in the saved model; "
                     f"known: {', '.join(sorted([*LAYER_CLASSES, *AUGMENTATION_LAYERS]))}")


def default_name(layer: nn.Module) -> str:
    return _snake(type(layer).__name__)
