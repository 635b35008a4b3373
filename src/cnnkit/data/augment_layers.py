"""Keras augmentation layers as ``nn.Module``s: random in ``train()`` mode, identity in
``eval()`` mode, on float N×C×H×W batches.

Factors mean what they mean in Keras: a number ``f`` is the range (-f, f), a pair is
(lower, upper). ``RandomRotation``'s factor is a fraction of a full turn (0.1 -> ±36°),
positive counter-clockwise; ``RandomTranslation``'s are fractions of the height/width,
positive down/right; ``RandomZoom``'s positive values zoom out. One difference: the value
range of ``RandomBrightness``/``RandomContrast`` defaults to (0, 1), the range cnnkit's
engine feeds augmentation (Keras's default is (0, 255)).

Each layer has ``get_config()`` (its constructor arguments, so a saved Sequential can be
rebuilt as ``type(layer)(**config)``) and ``compute_output_shape(shape)`` (unchanged).
A ``seed`` gives the layer its own generator; without one it draws from torch's global
generator (``cnnkit.utils.set_random_seed`` seeds that).
"""

from __future__ import annotations

import torch
from torch import nn

from .. import keras_tensor
from . import augment_ops as ops

__all__ = ["RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom",
           "RandomContrast", "RandomBrightness"]


def _pair(factor, name: str) -> tuple[float, float]:
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2:
            raise ValueError(f"{name}: expected a number or a (lower, upper) pair, got {factor!r}")
        lo, hi = float(factor[0]), float(factor[1])
    else:
        lo, hi = -abs(float(factor)), abs(float(factor))
    if lo > hi:
        raise ValueError(f"{name}: lower bound {lo} is above upper bound {hi}")
    return lo, hi


def _channels_last(x: torch.Tensor) -> bool:
    """N×H×W×C images: 1, 3 or 4 channels last and not in front (N×C×H×W is the default)."""
    return x.ndim == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4)


def _plain(v):
    return list(v) if isinstance(v, tuple) else v


class _RandomLayer(nn.Module):
    """Shared machinery: training-only application, seeding, Keras config methods."""

    def __init__(self, seed: int | None = None, name: str | None = None):
        super().__init__()
        self.seed = seed
        self.name = name
        self._generator: torch.Generator | None = None
        self._config: dict = {}

    def _remember(self, **kwargs) -> None:
        self._config = {k: _plain(v) for k, v in kwargs.items()}

    def get_config(self) -> dict:
        return {**self._config, "seed": self.seed, "name": self.name}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def compute_output_shape(self, input_shape):
        return input_shape

    def generator(self) -> torch.Generator | None:
        if self.seed is None:
            return None
        if self._generator is None:
            self._generator = torch.Generator().manual_seed(int(self.seed))
        return self._generator

    def __call__(self, x, *args, **kwargs):
        if keras_tensor.is_symbolic(x):  # functional API: record the call (keras_tensor.py)
            return keras_tensor.symbolic_call(self, x, *args, **kwargs)
        if "training" in kwargs:  # Keras's layer(x, training=...)
            with keras_tensor.training_mode(self, kwargs.pop("training")):
                return super().__call__(x, *args, **kwargs)
        return super().__call__(x, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        if not x.is_floating_point():
            x = x.float()
        if _channels_last(x):  # a Keras-layout batch, e.g. in dataset.map(...) as Keras's docs do
            return self.transform(x.movedim(-1, -3), self.generator()).movedim(-3, -1)
        return self.transform(x, self.generator())

    def transform(self, x: torch.Tensor, generator) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self._config.items())


class RandomFlip(_RandomLayer):
    """Flip images left-right and/or up-down, each with probability 1/2."""

    MODES = ("horizontal", "vertical", "horizontal_and_vertical")

    def __init__(self, mode: str = "horizontal_and_vertical", seed: int | None = None,
                 name: str | None = None):
        super().__init__(seed, name)
        if mode not in self.MODES:
            raise ValueError(f"RandomFlip mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode
        self._remember(mode=mode)

    def transform(self, x, generator):
        return ops.random_flip(x, generator, horizontal=self.mode != "vertical",
                               vertical=self.mode != "horizontal")


class _AffineLayer(_RandomLayer):
    def __init__(self, fill_mode, interpolation, fill_value, seed, name):
        super().__init__(seed, name)
        if fill_mode not in ops.FILL_MODES:
            raise ValueError(f"fill_mode must be one of {ops.FILL_MODES}, got {fill_mode!r}")
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError(f"interpolation must be 'bilinear' or 'nearest', "
                             f"got {interpolation!r}")
        self.fill_mode, self.interpolation = fill_mode, interpolation
        self.fill_value = float(fill_value)

    def _sample(self, x, **params):
        theta = ops.affine_theta(x.shape[-2], x.shape[-1], **params)
        return ops.apply_affine(x, theta, self.fill_mode, self.fill_value, self.interpolation)


class RandomRotation(_AffineLayer):
    """Rotate by ``uniform(lower, upper) × 360°``; positive is counter-clockwise."""

    def __init__(self, factor, fill_mode: str = "reflect", interpolation: str = "bilinear",
                 seed: int | None = None, fill_value: float = 0.0, name: str | None = None):
        super().__init__(fill_mode, interpolation, fill_value, seed, name)
        self.lower, self.upper = _pair(factor, "RandomRotation factor")
        self._remember(factor=factor, fill_mode=fill_mode, interpolation=interpolation,
                       fill_value=fill_value)

    def transform(self, x, generator):
        turns = ops.uniform(x.shape[0], self.lower, self.upper, generator, x.device)
        return self._sample(x, rotation=turns * 360.0)


class RandomTranslation(_AffineLayer):
    """Shift by ``uniform`` fractions of the height (positive down) and width (right)."""

    def __init__(self, height_factor, width_factor, fill_mode: str = "reflect",
                 interpolation: str = "bilinear", seed: int | None = None,
                 fill_value: float = 0.0, name: str | None = None):
        super().__init__(fill_mode, interpolation, fill_value, seed, name)
        self.height_range = _pair(height_factor, "RandomTranslation height_factor")
        self.width_range = _pair(width_factor, "RandomTranslation width_factor")
        self._remember(height_factor=height_factor, width_factor=width_factor,
                       fill_mode=fill_mode, interpolation=interpolation, fill_value=fill_value)

    def transform(self, x, generator):
        n, _, h, w = x.shape
        dy = ops.uniform(n, *self.height_range, generator, x.device) * h
        dx = ops.uniform(n, *self.width_range, generator, x.device) * w
        return self._sample(x, shift_x=dx, shift_y=dy)


class RandomZoom(_AffineLayer):
    """Zoom by ``1 + uniform(lower, upper)``: positive zooms out, negative zooms in.

    ``width_factor=None`` keeps the aspect ratio (the height's zoom is used for both).
    """

    def __init__(self, height_factor, width_factor=None, fill_mode: str = "reflect",
                 interpolation: str = "bilinear", seed: int | None = None,
                 fill_value: float = 0.0, name: str | None = None):
        super().__init__(fill_mode, interpolation, fill_value, seed, name)
        self.height_range = _pair(height_factor, "RandomZoom height_factor")
        self.width_range = (_pair(width_factor, "RandomZoom width_factor")
                            if width_factor is not None else None)
        self._remember(height_factor=height_factor, width_factor=width_factor,
                       fill_mode=fill_mode, interpolation=interpolation, fill_value=fill_value)

    def transform(self, x, generator):
        n = x.shape[0]
        zy = 1.0 + ops.uniform(n, *self.height_range, generator, x.device)
        zx = (1.0 + ops.uniform(n, *self.width_range, generator, x.device)
              if self.width_range is not None else zy)
        return self._sample(x, zoom_x=zx, zoom_y=zy)


class RandomContrast(_RandomLayer):
    """Scale each image's deviation from its channel means by ``uniform(1-lo, 1+hi)``."""

    def __init__(self, factor, seed: int | None = None, value_range=(0.0, 1.0),
                 name: str | None = None):
        super().__init__(seed, name)
        lo, hi = ((float(factor[0]), float(factor[1])) if isinstance(factor, (tuple, list))
                  else (float(factor), float(factor)))
        if lo < 0 or hi < 0 or lo > 1:
            raise ValueError(f"RandomContrast factor must be in [0, 1] (lower) / >= 0, got {factor!r}")
        self.lower, self.upper = lo, hi
        self.value_range = tuple(value_range) if value_range is not None else None
        self._remember(factor=factor, value_range=value_range)

    def transform(self, x, generator):
        return ops.random_contrast(x, generator, (self.lower, self.upper), self.value_range)


class RandomBrightness(_RandomLayer):
    """Add ``uniform(lower, upper) × (value range)`` to each image, then clip."""

    def __init__(self, factor, value_range=(0.0, 1.0), seed: int | None = None,
                 name: str | None = None):
        super().__init__(seed, name)
        self.lower, self.upper = _pair(factor, "RandomBrightness factor")
        if self.lower < -1 or self.upper > 1:
            raise ValueError(f"RandomBrightness factor must lie in [-1, 1], got {factor!r}")
        self.value_range = tuple(value_range)
        self._remember(factor=factor, value_range=value_range)

    def transform(self, x, generator):
        return ops.random_brightness(x, generator, (self.lower, self.upper), self.value_range)
