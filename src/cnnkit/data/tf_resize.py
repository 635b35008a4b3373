"""Resize images the way ``tf.image.resize`` does (``antialias=False``), as Keras's
``image_dataset_from_directory`` does, plus its crop (``smart_resize``) and pad
(``resize_with_pad``) variants.

TensorFlow samples with half-pixel centres and no antialiasing: shrinking an image skips
pixels instead of averaging them (Pillow's resize, which antialiases, gives other pixels).

- ``bilinear``: ``F.interpolate(mode='bilinear', align_corners=False, antialias=False)``,
  the same arithmetic as TF's ``resize_bilinear(half_pixel_centers=True)``.
- ``nearest``: ``F.interpolate(mode='nearest-exact')`` (TF's half-pixel nearest).
- ``bicubic``: Keys' cubic with a = -0.5 (torch's bicubic uses -0.75); taps outside the
  image get weight 0 and the rest are renormalised, as TF's kernel does.
- ``area``: each output pixel is the exact area-weighted mean of the input pixels its box
  covers (TF's ``resize_area``).
- ``lanczos3``, ``lanczos5``, ``gaussian``, ``mitchellcubic``: TF's ``scale_and_translate``
  kernels, unscaled (no antialias), taps outside the image dropped and renormalised.

The non-torch methods are separable: one (out, in) weight matrix per axis.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["INTERPOLATIONS", "resize", "crop_box", "pad_box", "resize_image"]

INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5",
                  "gaussian", "mitchellcubic")


def _keys_cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    x = np.abs(x)
    return np.where(x <= 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                    np.where(x < 2, ((a * x - 5 * a) * x + 8 * a) * x - 4 * a, 0.0))


def _lanczos(radius: int):
    def kernel(x):
        x = np.abs(x)
        return np.where(x < radius, np.sinc(x) * np.sinc(x / radius), 0.0)
    return kernel, float(radius)


def _mitchell(x: np.ndarray) -> np.ndarray:
    b = c = 1.0 / 3.0
    x = np.abs(x)
    near = ((12 - 9 * b - 6 * c) * x ** 3 + (-18 + 12 * b + 6 * c) * x ** 2 + (6 - 2 * b)) / 6
    far = ((-b - 6 * c) * x ** 3 + (6 * b + 30 * c) * x ** 2 + (-12 * b - 48 * c) * x
           + (8 * b + 24 * c)) / 6
    return np.where(x < 1, near, np.where(x < 2, far, 0.0))


def _gaussian(x: np.ndarray) -> np.ndarray:
    radius, sigma = 1.5, 1.5 / 3.0
    x = np.abs(x)
    return np.where(x < radius, np.exp(-x * x / (2 * sigma * sigma)), 0.0)


_KERNELS = {"lanczos3": _lanczos(3), "lanczos5": _lanczos(5), "gaussian": (_gaussian, 1.5),
            "mitchellcubic": (_mitchell, 2.0)}


@lru_cache(maxsize=512)
def _weights(method: str, n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) float32 matrix: output pixel o = sum_i W[o, i] * input pixel i."""
    scale = n_in / n_out
    w = np.zeros((n_out, n_in), np.float64)
    if method == "area":
        for o in range(n_out):
            lo, hi = o * scale, (o + 1) * scale
            for i in range(int(math.floor(lo)), min(int(math.ceil(hi)), n_in)):
                w[o, i] = max(0.0, min(hi, i + 1) - max(lo, i))
            w[o] /= w[o].sum()
        return torch.from_numpy(w.astype(np.float32))
    if method == "bicubic":
        for o in range(n_out):
            src = (o + 0.5) * scale - 0.5
            base = math.floor(src)
            taps = np.arange(base - 1, base + 3)
            k = _keys_cubic(src - taps)
            inside = (taps >= 0) & (taps < n_in)
            w[o, taps[inside]] = k[inside] / k[inside].sum()
        return torch.from_numpy(w.astype(np.float32))
    kernel, radius = _KERNELS[method]
    for o in range(n_out):
        centre = (o + 0.5) * scale  # in input pixel units, pixel i spans [i, i + 1)
        lo = max(0, int(math.ceil(centre - radius - 0.5)))
        hi = min(n_in - 1, int(math.floor(centre + radius - 0.5)))
        taps = np.arange(lo, hi + 1)
        k = kernel(taps + 0.5 - centre)
        if k.sum() != 0:
            w[o, taps] = k / k.sum()
    return torch.from_numpy(w.astype(np.float32))


def resize(img: torch.Tensor, size: tuple[int, int], interpolation: str = "bilinear"
           ) -> torch.Tensor:
    """C×H×W image (any dtype) -> float32 C×h×w, as ``tf.image.resize(antialias=False)``."""
    h, w = int(size[0]), int(size[1])
    x = img.float()
    if tuple(x.shape[-2:]) == (h, w):
        return x  # every method samples exactly the input pixels at the same size
    if interpolation == "bilinear":
        return F.interpolate(x[None], size=(h, w), mode="bilinear", align_corners=False,
                             antialias=False)[0]
    if interpolation == "nearest":
        return F.interpolate(x[None], size=(h, w), mode="nearest-exact")[0]
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    wh = _weights(interpolation, x.shape[-2], h)  # (h, H)
    ww = _weights(interpolation, x.shape[-1], w)  # (w, W)
    return torch.einsum("oh,chw,pw->cop", wh, x, ww)


def crop_box(height: int, width: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Keras's ``smart_resize`` crop: the largest centred window of the target's aspect
    ratio, as (top, left, crop_height, crop_width)."""
    th, tw = size
    f32 = np.float32
    ch = max(min(height, int(f32(width * th) / f32(tw))), 1)
    cw = max(min(width, int(f32(height * tw) / f32(th))), 1)
    return int(f32(height - ch) / f32(2)), int(f32(width - cw) / f32(2)), ch, cw


def pad_box(height: int, width: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """``tf.image.resize_with_pad``: (resized height, resized width, top pad, left pad),
    computed in float32 as TensorFlow does."""
    f32 = np.float32
    th, tw = f32(size[0]), f32(size[1])
    ratio = max(f32(width) / tw, f32(height) / th)
    rh, rw = f32(height) / ratio, f32(width) / ratio
    return (int(np.floor(rh)), int(np.floor(rw)), max(0, int(np.floor((th - rh) / f32(2)))),
            max(0, int(np.floor((tw - rw) / f32(2)))))


def resize_image(img: torch.Tensor, size: tuple[int, int], interpolation: str = "bilinear",
                 crop_to_aspect_ratio: bool = False, pad_to_aspect_ratio: bool = False
                 ) -> torch.Tensor:
    """C×H×W -> float32 C×h×w exactly as Keras's ``image_dataset_from_directory`` resizes."""
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError("only one of crop_to_aspect_ratio and pad_to_aspect_ratio can be True")
    height, width = img.shape[-2:]
    if crop_to_aspect_ratio:
        top, left, ch, cw = crop_box(height, width, size)
        return resize(img[:, top:top + ch, left:left + cw], size, interpolation)
    if pad_to_aspect_ratio:
        rh, rw, top, left = pad_box(height, width, size)
        out = torch.zeros((img.shape[0], int(size[0]), int(size[1])), dtype=torch.float32)
        out[:, top:top + rh, left:left + rw] = resize(img, (rh, rw), interpolation)
        return out
    return resize(img, size, interpolation)
