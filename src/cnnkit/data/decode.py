"""Decode one image file with Pillow into a uint8 H×W×C array of a chosen mode and size."""

from __future__ import annotations

import os
import warnings

import numpy as np
from PIL import Image, ImageOps

__all__ = ["decode_image", "sniff_format", "COLOR_MODES", "RESAMPLE"]

# leading bytes -> image format, to tell a damaged image from a file that is no image at all
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"),
               (b"GIF89a", "GIF"), (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"))


def sniff_format(head: bytes) -> str | None:
    """The image format the first bytes of a file announce, or None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return next((fmt for sig, fmt in _SIGNATURES if head.startswith(sig)), None)

# color_mode (Keras spelling) -> Pillow mode
COLOR_MODES = {"rgb": "RGB", "grayscale": "L", "rgba": "RGBA"}

# Keras interpolation names -> Pillow filters
RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "area": Image.Resampling.BOX,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
    "lanczos": Image.Resampling.LANCZOS,
    "lanczos3": Image.Resampling.LANCZOS,
    "lanczos5": Image.Resampling.LANCZOS,
}

_HIGH_DEPTH = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def _to_8bit(img: Image.Image) -> Image.Image:
    """16-bit / 32-bit integer and float images -> 8-bit 'L' (Pillow would clip, not scale)."""
    arr = np.asarray(img, dtype=np.float64)
    if img.mode.startswith("I;16") or (img.mode == "I" and arr.size and arr.max() > 255):
        arr = arr / 257.0  # 0..65535 -> 0..255
    elif img.mode == "F" and arr.size and arr.max() <= 1.0:
        arr = arr * 255.0
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")


def convert_mode(img: Image.Image, mode: str) -> Image.Image:
    """Convert to 'RGB' | 'L' | 'RGBA', handling palettes with transparency and deep modes."""
    if img.mode in _HIGH_DEPTH:
        img = _to_8bit(img)
    elif img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")  # the direct P -> RGB conversion warns and loses the key
    return img if img.mode == mode else img.convert(mode)


def decode_image(path: str | os.PathLike, color_mode: str = "rgb",
                 size: tuple[int, int] | None = None, interpolation: str = "bilinear",
                 crop_to_aspect_ratio: bool = False, pad_to_aspect_ratio: bool = False
                 ) -> np.ndarray:
    """Read ``path`` -> uint8 H×W×C (C = 3, 1 or 4). ``size`` is (H, W); None keeps it.

    Raises whatever Pillow raises for a bad file (the callers record it and skip the file).
    Truncated files raise: ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left off on purpose.
    """
    mode = COLOR_MODES[color_mode]
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            if size is not None and img.format == "JPEG" and mode in ("RGB", "L"):
                # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when the target is that small.
                img.draft(mode, (size[1], size[0]))
            img = convert_mode(img, mode)
            if size is not None and img.size != (size[1], size[0]):
                wh = (int(size[1]), int(size[0]))
                resample = RESAMPLE[interpolation]
                if crop_to_aspect_ratio:
                    img = ImageOps.fit(img, wh, method=resample)
                elif pad_to_aspect_ratio:
                    img = ImageOps.pad(img, wh, method=resample, color=0)
                else:
                    img = img.resize(wh, resample=resample)
            arr = np.asarray(img)
    return arr[..., None] if arr.ndim == 2 else arr
