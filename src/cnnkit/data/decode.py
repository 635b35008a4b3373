"""Decode one image file with Pillow into a uint8 H×W×C array of a chosen mode and size.

Photos are turned upright first: the EXIF orientation tag (what a camera writes when it was
held sideways, and what every image viewer applies) is applied with
``PIL.ImageOps.exif_transpose``, so a model sees the picture the way its owner does. Keras
does not do this (``tf.io.decode_image`` ignores EXIF): see docs/keras.md's departures.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from PIL import Image, ImageOps

__all__ = ["decode_image", "sniff_format", "exif_orientation", "COLOR_MODES", "RESAMPLE"]

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


_ORIENTATION_TAG = 0x0112
_SIDEWAYS = (5, 6, 7, 8)  # orientations that swap width and height


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation (1..8), 1 when absent or unreadable. Never loads pixels: only an
    EXIF block already read (``img.info``) or TIFF tags are looked at (Pillow's PNG
    ``getexif`` would decode the whole image to look behind the pixel data)."""
    if img.format != "TIFF" and "exif" not in img.info:
        return 1  # no EXIF block (most training images): nothing to parse
    try:
        value = int(img.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # noqa: BLE001 - a damaged EXIF block is no reason to refuse the image
        return 1
    return value if 1 <= value <= 8 else 1


def upright_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) as the image is shown, EXIF orientation applied."""
    w, h = img.size
    return (h, w) if exif_orientation(img) in _SIDEWAYS else (w, h)


def decode_image(path: str | os.PathLike, color_mode: str = "rgb",
                 size: tuple[int, int] | None = None, interpolation: str = "bilinear",
                 crop_to_aspect_ratio: bool = False, pad_to_aspect_ratio: bool = False
                 ) -> np.ndarray:
    """Read ``path`` -> uint8 H×W×C (C = 3, 1 or 4). ``size`` is (H, W); None keeps it.

    The EXIF orientation is applied first (``size`` is that of the upright picture).
    Raises whatever Pillow raises for a bad file (the callers record it and skip the file).
    Truncated files raise: ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left off on purpose, and
    the pixels are loaded here, inside the caller's ``try``, not later by NumPy.
    """
    mode = COLOR_MODES[color_mode]
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            if size is not None and img.format == "JPEG" and mode in ("RGB", "L"):
                # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when the target is that small
                # (the stored image is sideways when the orientation swaps the sides).
                sideways = exif_orientation(img) in _SIDEWAYS
                img.draft(mode, (size[0], size[1]) if sideways else (size[1], size[0]))
            img.load()  # damaged or truncated pixel data raises here
            orientation = exif_orientation(img)  # (a PNG's EXIF may follow its pixels)
            if orientation != 1:
                img = ImageOps.exif_transpose(img)
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
