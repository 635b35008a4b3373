"""Image bytes -> the uint8 H×W×C array a model takes, safely.

Used by the service (untrusted uploads), by ``explain`` on files, and by the exported-model
predictor. Nothing here knows about HTTP: errors are ``ImageError`` with a short ``code``
that the service turns into a 4xx answer.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

# Formats we decode. Anything else (including PIL's rarer plugins) is refused up front.
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")
DEFAULT_MAX_PIXELS = 40_000_000  # e.g. 8000×5000; checked from the header, before decoding


class ImageError(ValueError):
    """An upload or file that is not a usable image. ``code``: not_an_image, truncated,
    too_many_pixels, empty."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def model_input_shape(model, input_shape=None) -> tuple[int, int, int]:
    """The (H, W, C) a model takes: ``input_shape`` if given, else ``model.input_shape``.

    Accepts Keras layouts with or without a leading batch ``None``; a 2-tuple means one channel.
    """
    shape = input_shape if input_shape is not None else getattr(model, "input_shape", None)
    if shape is None:
        raise ValueError("the model has no input_shape; pass input_shape=(H, W, C)")
    shape = [s for s in shape]
    if len(shape) == 4:  # (None, H, W, C)
        shape = shape[1:]
    if len(shape) == 2:
        shape = [*shape, 1]
    if len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(f"input_shape must be (H, W, C) with positive ints, got {shape}")
    return tuple(shape)


def open_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode bytes fully into a PIL image (first frame), RGB or L, EXIF orientation applied.

    The pixel count is checked from the header before any pixel is decoded, so a
    decompression bomb costs nothing.
    """
    if not data:
        raise ImageError("empty", "the upload is empty")
    try:
        img = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as e:
        raise ImageError("too_many_pixels", str(e)) from None
    except Exception:
        raise ImageError("not_an_image",
                         f"not a recognised image (accepted: {', '.join(FORMATS)})") from None
    w, h = img.size
    if w * h > max_pixels:
        raise ImageError("too_many_pixels",
                         f"image is {w}×{h} = {w * h} pixels; the limit is {max_pixels}")
    try:
        img.load()  # raises on truncated data (unless PIL is told to pad; then it is padded)
        img = ImageOps.exif_transpose(img)
        if img.mode not in ("RGB", "L"):
            img = img.convert("RGB")
    except Image.DecompressionBombError as e:
        raise ImageError("too_many_pixels", str(e)) from None
    except Exception as e:
        raise ImageError("truncated", f"the image data is damaged or truncated ({e})") from None
    return img


def to_array(img: Image.Image, shape: tuple[int, int, int]) -> np.ndarray:
    """PIL image -> uint8 H×W×C at ``shape`` (bilinear resize, channel count converted)."""
    h, w, c = shape
    img = img.convert("L" if c == 1 else "RGB")
    if img.size != (w, h):
        img = img.resize((w, h), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    if c == 1:
        arr = arr[:, :, None]
    elif c != 3:
        raise ValueError(f"only 1- or 3-channel models take images, not {c}")
    return arr


def decode_image(data: bytes, shape: tuple[int, int, int],
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Bytes -> uint8 H×W×C at the model's input shape. Raises ``ImageError``."""
    return to_array(open_image(data, max_pixels), shape)


def load_image(path, shape: tuple[int, int, int], max_pixels: int = DEFAULT_MAX_PIXELS):
    """A file on disk -> uint8 H×W×C at ``shape`` (for the CLI; never used by the service)."""
    return decode_image(Path(path).read_bytes(), shape, max_pixels)
