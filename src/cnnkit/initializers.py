"""Keras's weight initializers (``kernel_initializer="he_normal"``, ``initializers.Constant(0.1)``).

An initializer is called as in Keras, ``init(shape) -> tensor``, with the weight's shape in
Keras's layout (a conv kernel is ``(kh, kw, in, out)``), so fans and the orthogonal
flattening are Keras's. Layers fill their torch-layout weights through :meth:`Initializer.fill`,
which draws element-wise distributions straight into the torch tensor (same distribution,
no copy) and converts the others (orthogonal, identity) from Keras's layout.
"""

from __future__ import annotations

import math

import torch

from ._serial import KerasObject, SerialRegistry

__all__ = ["Initializer", "Zeros", "Ones", "Constant", "RandomNormal", "RandomUniform",
           "TruncatedNormal", "VarianceScaling", "GlorotUniform", "GlorotNormal", "HeNormal",
           "HeUniform", "LecunNormal", "LecunUniform", "Orthogonal", "Identity", "get",
           "serialize", "compute_fans"]


def compute_fans(shape, input_axes=None, output_axes=None) -> tuple[int, int]:
    """Keras's fans: (in, out) for a Dense kernel, receptive field x depth for conv kernels
    (or the products over ``input_axes`` / ``output_axes`` when both are given)."""
    shape = tuple(shape)
    if input_axes is not None and output_axes is not None:
        return (math.prod(shape[a] for a in input_axes), math.prod(shape[a] for a in output_axes))
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _generator(seed):
    if seed is None:
        return None
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    return gen


class Initializer(KerasObject):
    """Base: ``__call__(shape, dtype=None)`` returns a new tensor in Keras's layout."""

    elementwise = True  # each value drawn independently: layout does not matter

    def _draw(self, out: torch.Tensor, keras_shape: tuple) -> None:
        raise NotImplementedError

    def __call__(self, shape, dtype=None) -> torch.Tensor:
        out = torch.empty(tuple(int(s) for s in shape), dtype=dtype or torch.float32)
        with torch.no_grad():
            self._draw(out, tuple(out.shape))
        return out

    def fill(self, tensor: torch.Tensor, keras_shape, from_keras=None) -> None:
        """Fill a layer's torch-layout ``tensor`` whose Keras shape is ``keras_shape``."""
        with torch.no_grad():
            if self.elementwise or from_keras is None:
                self._draw(tensor, tuple(keras_shape))
            else:
                tensor.copy_(from_keras(self(keras_shape, dtype=tensor.dtype)))


class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = float(value)

    def _draw(self, out, keras_shape):
        out.fill_(self.value)

    def get_config(self):
        return {"value": self.value}


class Zeros(Constant):
    def __init__(self):
        super().__init__(0.0)

    def get_config(self):
        return {}


class Ones(Constant):
    def __init__(self):
        super().__init__(1.0)

    def get_config(self):
        return {}


class _Seeded(Initializer):
    def __init__(self, seed=None):
        self.seed = seed

    def get_config(self):
        return {"seed": self.seed}


class RandomNormal(_Seeded):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def _draw(self, out, keras_shape):
        out.normal_(self.mean, self.stddev, generator=_generator(self.seed))

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


class RandomUniform(_Seeded):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval, self.maxval = float(minval), float(maxval)

    def _draw(self, out, keras_shape):
        out.uniform_(self.minval, self.maxval, generator=_generator(self.seed))

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, **super().get_config()}


def _truncated_normal_(out, mean, stddev, seed):
    """Normal values redrawn outside 2 standard deviations, as Keras's truncated_normal."""
    torch.nn.init.trunc_normal_(out, mean, stddev, mean - 2 * stddev, mean + 2 * stddev,
                                generator=_generator(seed))


class TruncatedNormal(RandomNormal):
    def _draw(self, out, keras_shape):
        _truncated_normal_(out, self.mean, self.stddev, self.seed)


class VarianceScaling(_Seeded):
    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None,
                 input_axes=None, output_axes=None):
        super().__init__(seed)
        self.input_axes = None if input_axes is None else [int(a) for a in input_axes]
        self.output_axes = None if output_axes is None else [int(a) for a in output_axes]
        if scale <= 0:
            raise ValueError(f"VarianceScaling scale must be positive, got {scale}")
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"VarianceScaling mode must be fan_in, fan_out or fan_avg, got {mode!r}")
        distribution = str(distribution).lower()
        if distribution == "normal":
            distribution = "truncated_normal"
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise ValueError("VarianceScaling distribution must be truncated_normal, "
                             f"untruncated_normal or uniform, got {distribution!r}")
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def _draw(self, out, keras_shape):
        fan_in, fan_out = compute_fans(keras_shape, self.input_axes, self.output_axes)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        scale = self.scale / max(1.0, fan)
        if self.distribution == "truncated_normal":
            # 0.8796...: the std of a unit normal truncated at 2 std (Keras's constant)
            _truncated_normal_(out, 0.0, math.sqrt(scale) / 0.87962566103423978, self.seed)
        elif self.distribution == "untruncated_normal":
            out.normal_(0.0, math.sqrt(scale), generator=_generator(self.seed))
        else:
            limit = math.sqrt(3.0 * scale)
            out.uniform_(-limit, limit, generator=_generator(self.seed))

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                **super().get_config(), **self._axes_config()}

    def _axes_config(self) -> dict:
        if self.input_axes is None and self.output_axes is None:
            return {}
        return {"input_axes": self.input_axes, "output_axes": self.output_axes}


def _preset(name, scale, mode, distribution):
    class Preset(VarianceScaling):
        def __init__(self, seed=None, input_axes=None, output_axes=None):
            super().__init__(scale, mode, distribution, seed, input_axes, output_axes)

        def get_config(self):
            return {"seed": self.seed, **self._axes_config()}
    Preset.__name__ = Preset.__qualname__ = name
    return Preset


GlorotUniform = _preset("GlorotUniform", 1.0, "fan_avg", "uniform")
GlorotNormal = _preset("GlorotNormal", 1.0, "fan_avg", "truncated_normal")
HeNormal = _preset("HeNormal", 2.0, "fan_in", "truncated_normal")
HeUniform = _preset("HeUniform", 2.0, "fan_in", "uniform")
LecunNormal = _preset("LecunNormal", 1.0, "fan_in", "truncated_normal")
LecunUniform = _preset("LecunUniform", 1.0, "fan_in", "uniform")


class Orthogonal(_Seeded):
    """Keras's: QR of a normal matrix, the kernel flattened to (prod(shape[:-1]), shape[-1])."""

    elementwise = False

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = float(gain)

    def _draw(self, out, keras_shape):
        if len(keras_shape) < 2:
            raise ValueError(f"Orthogonal initializer needs a weight of 2 or more dimensions, "
                             f"got shape {keras_shape}")
        rows, cols = math.prod(keras_shape[:-1]), keras_shape[-1]
        a = torch.randn(max(rows, cols), min(rows, cols), generator=_generator(self.seed))
        q, r = torch.linalg.qr(a)
        q = q * torch.sign(torch.diagonal(r))
        if rows < cols:
            q = q.T
        out.copy_(self.gain * q.reshape(keras_shape))

    def get_config(self):
        return {"gain": self.gain, **super().get_config()}


class Identity(Initializer):
    """Keras's identity: ``gain * eye`` for a 2-D weight."""

    elementwise = False

    def __init__(self, gain=1.0):
        self.gain = float(gain)

    def _draw(self, out, keras_shape):
        if len(keras_shape) != 2:
            raise ValueError(f"Identity initializer needs a 2-D weight, got shape {keras_shape}")
        out.copy_(self.gain * torch.eye(*keras_shape))

    def get_config(self):
        return {"gain": self.gain}


_REGISTRY = SerialRegistry("initializer", Initializer, {
    "zeros": Zeros, "ones": Ones, "constant": Constant, "random_normal": RandomNormal,
    "random_uniform": RandomUniform, "truncated_normal": TruncatedNormal,
    "variance_scaling": VarianceScaling, "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal, "he_normal": HeNormal, "he_uniform": HeUniform,
    "lecun_normal": LecunNormal, "lecun_uniform": LecunUniform, "orthogonal": Orthogonal,
    "identity": Identity,
})

get = _REGISTRY.get
serialize = _REGISTRY.serialize

# Keras's function-style spellings: initializers.he_normal(seed=1)
zeros, ones, constant = Zeros, Ones, Constant
random_normal, random_uniform, truncated_normal = RandomNormal, RandomUniform, TruncatedNormal
variance_scaling, orthogonal, identity = VarianceScaling, Orthogonal, Identity
glorot_uniform, glorot_normal = GlorotUniform, GlorotNormal
he_normal, he_uniform, lecun_normal, lecun_uniform = HeNormal, HeUniform, LecunNormal, LecunUniform
