"""Between the layers' torch layout and Keras's: images are NCHW inside, NHWC in Keras terms;
every other rank is the same in both (``(N, F)``, ``(N, T, F)``)."""

from __future__ import annotations

import torch


def to_keras(x: torch.Tensor) -> torch.Tensor:
    """NCHW -> NHWC (a view); other ranks unchanged."""
    return x.permute(0, 2, 3, 1) if x.ndim == 4 else x


def from_keras(x: torch.Tensor) -> torch.Tensor:
    """NHWC -> NCHW (a view); other ranks unchanged."""
    return x.permute(0, 3, 1, 2) if x.ndim == 4 else x


def keras_shape_of(shape) -> tuple:
    """Torch shape without batch -> Keras's: (C, H, W) -> (H, W, C)."""
    shape = tuple(int(s) for s in shape)
    return (shape[1], shape[2], shape[0]) if len(shape) == 3 else shape


def torch_shape_of(shape) -> tuple:
    """Keras shape without batch -> torch's: (H, W, C) -> (C, H, W)."""
    shape = tuple(int(s) for s in shape)
    return (shape[2], shape[0], shape[1]) if len(shape) == 3 else shape


def keras_axes(axis, rank: int, layer: str) -> tuple[int, ...]:
    """Keras ``axis`` (int or list; batch axis is 0; negatives count from the end) as positive
    axes of a rank-``rank`` batch (batch included), in Keras order."""
    axes = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
    out = []
    for a in axes:
        a = int(a)
        a = a + rank if a < 0 else a
        if not 0 < a < rank:
            raise ValueError(f"{layer} axis={axis!r} is outside the input's axes 1..{rank - 1} "
                             "(axis 0 is the batch)")
        out.append(a)
    return tuple(sorted(set(out)))


def torch_axes(keras_axes_: tuple[int, ...], rank: int) -> tuple[int, ...]:
    """Keras axes of an NHWC batch -> the same axes of the NCHW batch."""
    if rank != 4:
        return keras_axes_
    return tuple({0: 0, 1: 2, 2: 3, 3: 1}[a] for a in keras_axes_)
