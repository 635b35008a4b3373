"""Preprocessing that travels with the model: scaling, normalisation, resize, channel repeat.

It is the first module of every ``cnnkit.Model``, so training, ``predict``, saved files and
exported graphs all see the same transform.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Preprocess(nn.Module):
    """uint8 pixels -> float * scale; then optional resize, channel repeat and mean/std.

    Float input is taken as already scaled (the tutorials pass ``x / 255.0``).
    Shapes: N×C×H×W in, N×C'×H'×W' out.
    """

    def __init__(self, scale: float = 1 / 255, mean=None, std=None, resize=None,
                 channels: int | None = None):
        super().__init__()
        self.scale = float(scale)
        self.resize = tuple(int(s) for s in resize) if resize else None
        self.channels = int(channels) if channels else None
        self.has_norm = mean is not None
        mean_t = torch.tensor(mean if mean is not None else [0.0], dtype=torch.float32)
        std_t = torch.tensor(std if std is not None else [1.0], dtype=torch.float32)
        # Buffers (not parameters): saved in the state dict, never trained.
        self.register_buffer("mean", mean_t.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", std_t.view(1, -1, 1, 1), persistent=False)

    def config(self) -> dict:
        return {
            "scale": self.scale,
            "mean": self.mean.flatten().tolist() if self.has_norm else None,
            "std": self.std.flatten().tolist() if self.has_norm else None,
            "resize": list(self.resize) if self.resize else None,
            "channels": self.channels,
        }

    @classmethod
    def from_config(cls, config: dict | None) -> "Preprocess":
        return cls(**(config or {}))

    def to_float(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 -> float32 scaled; float passes through. Used before augmentation."""
        if x.dtype == torch.uint8:
            return x.float().mul_(self.scale)
        return x if x.is_floating_point() else x.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.to_float(x)
        if self.resize is not None and tuple(x.shape[-2:]) != self.resize:
            x = F.interpolate(x, size=self.resize, mode="bilinear", align_corners=False,
                              antialias=False)
        if self.channels is not None and x.shape[1] != self.channels:
            if x.shape[1] != 1:
                raise ValueError(f"Preprocess: cannot turn {x.shape[1]} channels into "
                                 f"{self.channels}; only 1-channel input is repeated")
            x = x.expand(-1, self.channels, -1, -1)
        if self.has_norm:
            x = (x - self.mean) / self.std
        return x

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config().items() if v is not None)
