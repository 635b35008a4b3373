"""Untrusted image bytes -> the uint8 H×W×C array a model takes, with limits.

Decoding itself is ``cnnkit.data.decode`` (the same conversion and resize that training data
gets); this module adds what bytes from a stranger need first: an allow-list of formats and a
pixel limit read from the header, before a single pixel is decoded. Errors are
``ImageError`` with a short ``code`` that the service turns into a 4xx answer.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageFile

from ..data.decode import decode_image, sniff_format, upright_size

# Formats we decode. Anything else (including Pillow's rarer plugins) is refused up front.
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")
DEFAULT_MAX_PIXELS = 40_000_000  # e.g. 8000×5000; checked from the header, before decoding
DEFAULT_MAX_REQUEST_PIXELS = 100_000_000  # all images of one request: ~eight 12-megapixel photos


class ImageError(ValueError):
    """Not a usable image. ``code``: empty, not_an_image, too_many_pixels, truncated (damaged,
    including a file of a known format cut anywhere, header or pixels)."""

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
    shape = list(shape)
    if len(shape) == 4:  # (None, H, W, C)
        shape = shape[1:]
    if len(shape) == 2:
        shape = [*shape, 1]
    if len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(f"input_shape must be (H, W, C) with positive ints, got {shape}")
    if shape[2] not in (1, 3):
        raise ValueError(f"only 1- or 3-channel models take images, not {shape[2]}")
    return tuple(shape)


def image_size(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) from the header of an allowed format, within ``max_pixels``.

    Raises ``ImageError`` for empty data, an unknown format or too many pixels.
    """
    if not data:
        raise ImageError("empty", "the upload is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=FORMATS) as img:
                w, h = upright_size(img)  # EXIF orientation applied, as decoding does
    except Image.DecompressionBombError:
        w = h = max_pixels + 1  # far beyond Pillow's own limit: reported below
    except Exception:  # noqa: BLE001 - whatever Pillow raises for bytes it cannot read
        announced = sniff_format(data[:16])
        if announced in FORMATS:  # e.g. a JPEG cut inside its header: damaged, like any cut JPEG
            raise ImageError("truncated", f"the data starts like a {announced} image but cannot be "
                                          "read: it is damaged or truncated") from None
        raise ImageError("not_an_image",
                         f"not a recognised image (accepted: {', '.join(FORMATS)})") from None
    if w * h > max_pixels:
        raise ImageError("too_many_pixels",
                         f"the image has {w}×{h} pixels; the limit is {max_pixels} pixels")
    return w, h


def refuse_truncated_loading() -> None:
    """Half-written uploads are refused only while Pillow's LOAD_TRUNCATED_IMAGES is off (it
    is a process-wide switch; cnnkit never turns it on). Raises if someone did."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is on in this process, so truncated "
                           "uploads would be padded with grey and predicted on; set it to False")


def decode_bytes(data: bytes, shape: tuple[int, int, int] | None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, channels: int = 3) -> np.ndarray:
    """Bytes -> uint8 H×W×C: at ``shape`` (H, W, C), or the image's own size with ``channels``
    when ``shape`` is None. Raises ``ImageError``."""
    refuse_truncated_loading()
    image_size(data, max_pixels)
    c = shape[2] if shape is not None else channels
    size = tuple(shape[:2]) if shape is not None else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return decode_image(io.BytesIO(data), "grayscale" if c == 1 else "rgb", size)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError("too_many_pixels", str(e)) from None  # beyond Pillow's own limit
    except Exception as e:  # noqa: BLE001 - the header was fine, the pixel data is not
        raise ImageError("truncated", f"the image data is damaged or truncated ({e})") from None


def scale_to(width: int, height: int, longest: int) -> tuple[int, int]:
    """(H, W) of an image scaled (up or down) so that its longest side is ``longest``."""
    f = longest / max(width, height)
    return max(1, round(height * f)), max(1, round(width * f))
