"""SpatialDropout2D (Dropout, with ``seed=``, is in ``core``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .core import Layer, check_data_format

__all__ = ["SpatialDropout2D"]


class SpatialDropout2D(Layer):
    """Drops whole channels (feature maps) in training, scaling the rest by 1 / (1 - rate)."""

    def __init__(self, rate, data_format=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        check_data_format(data_format, "SpatialDropout2D")
        if not 0 <= rate < 1:
            raise ValueError(f"SpatialDropout2D rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self.seed = None if seed is None else int(seed)
        self._generator: torch.Generator | None = None

    def _check_input(self, s):
        if len(s) != 3:
            raise self._shape_error("(None, height, width, channels)", s)

    def forward(self, x):
        if not self.training or not self.rate:
            return x
        if self.seed is None:
            return F.dropout2d(x, self.rate, training=True)
        if self._generator is None or self._generator.device != x.device:
            self._generator = torch.Generator(device=x.device)
            self._generator.manual_seed(self.seed)
        keep = torch.empty(x.shape[0], x.shape[1], 1, 1, device=x.device, dtype=x.dtype)
        keep.bernoulli_(1 - self.rate, generator=self._generator)
        return x * keep / (1 - self.rate)

    def get_config(self):
        config = {**super().get_config(), "rate": self.rate}
        return {**config, "seed": self.seed} if self.seed is not None else config
