"""Keras's single-image helpers (``keras.utils.load_img`` and friends), on Pillow, plus the
per-image loading ``flow_from_directory`` does (``load_resized``)."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from .decode import RESAMPLE, convert_mode, decode_image
from .tf_resize import crop_box, resize

__all__ = ["load_img", "img_to_array", "array_to_img", "smart_resize", "load_resized",
           "keep_aspect_box"]

_MODES = {"rgb": "RGB", "rgba": "RGBA", "grayscale": "L"}


def _check_color_mode(color_mode: str) -> str:
    if color_mode not in _MODES:
        raise ValueError(f"color_mode must be 'rgb', 'rgba' or 'grayscale', got {color_mode!r}")
    return _MODES[color_mode]


def keep_aspect_box(width: int, height: int, target_wh: tuple[int, int]):
    """``load_img(keep_aspect_ratio=True)``'s centred crop box (left, top, right, bottom)."""
    tw, th = target_wh
    ch = min(height, (width * th) // tw)
    cw = min(width, (height * tw) // th)
    top, left = (height - ch) // 2, (width - cw) // 2
    return (left, top, left + cw, top + ch)


def _resize_pil(img: Image.Image, target_size, interpolation: str, keep_aspect_ratio: bool):
    wh = (int(target_size[1]), int(target_size[0]))
    if img.size == wh:
        return img
    if interpolation not in RESAMPLE:
        raise ValueError(f"interpolation must be one of {sorted(RESAMPLE)}, got {interpolation!r}")
    box = keep_aspect_box(*img.size, wh) if keep_aspect_ratio else None
    return img.resize(wh, RESAMPLE[interpolation], box=box)


def load_img(path, color_mode: str = "rgb", target_size=None, interpolation: str = "nearest",
             keep_aspect_ratio: bool = False) -> Image.Image:
    """A PIL image in ``color_mode``, resized with Pillow to ``target_size`` (H, W)."""
    mode = _check_color_mode(color_mode)
    with Image.open(os.fspath(path)) as f:
        img = convert_mode(f, mode)
        img.load()
    return _resize_pil(img, target_size, interpolation, keep_aspect_ratio) if target_size else img


def img_to_array(img, data_format=None, dtype="float32") -> np.ndarray:
    """A PIL image -> H×W×C array (channels_first: C×H×W), float32 by default."""
    arr = np.asarray(img, dtype=dtype or "float32")
    arr = arr[..., None] if arr.ndim == 2 else arr
    return arr.transpose(2, 0, 1) if data_format == "channels_first" else arr


def array_to_img(x, data_format=None, scale: bool = True, dtype=None) -> Image.Image:
    """An H×W×C array -> a PIL image; ``scale`` stretches the values to 0..255 first."""
    x = np.asarray(x, dtype=np.float32)
    if data_format == "channels_first":
        x = x.transpose(1, 2, 0)
    if scale:
        x = x - x.min()
        top = x.max()
        x = x / top * 255 if top else x
    x = np.clip(x, 0, 255).astype(np.uint8)
    if x.shape[-1] == 1:
        return Image.fromarray(x[..., 0], "L")
    return Image.fromarray(x, "RGBA" if x.shape[-1] == 4 else "RGB")


def smart_resize(x, size, interpolation: str = "bilinear", data_format="channels_last"):
    """Keras's ``smart_resize``: centre-crop to the target aspect ratio, then resize
    (TensorFlow's arithmetic); H×W×C (or N×H×W×C) in, float32 numpy out."""
    import torch
    arr = torch.as_tensor(np.asarray(x, dtype=np.float32))
    batched = arr.ndim == 4
    nchw = arr if data_format == "channels_first" else arr.movedim(-1, -3)
    nchw = nchw if batched else nchw[None]
    top, left, ch, cw = crop_box(nchw.shape[-2], nchw.shape[-1], size)
    out = torch.stack([resize(im[:, top:top + ch, left:left + cw], size, interpolation)
                       for im in nchw])
    out = out if data_format == "channels_first" else out.movedim(-3, -1)
    return (out if batched else out[0]).numpy()


def load_resized(path: str, color_mode: str, target_size, interpolation: str,
                 keep_aspect_ratio: bool) -> np.ndarray:
    """What ``flow_from_directory`` loads for one file: uint8 H×W×C at ``target_size``
    (decoded at full size, then Pillow's resize, as Keras's ``load_img``)."""
    arr = decode_image(path, color_mode=color_mode)
    if tuple(arr.shape[:2]) == (int(target_size[0]), int(target_size[1])):
        return arr
    img = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
    out = np.asarray(_resize_pil(img, target_size, interpolation, keep_aspect_ratio))
    return out[..., None] if out.ndim == 2 else out
