import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from cnnkit.serve.images import ImageError, decode_bytes, image_size, model_input_shape, scale_to


def png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR claiming width×height, with no pixel data at all."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def encoded(pixels, fmt):
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("side", [5000, 100_000])  # under and over Pillow's own bomb limit
def test_pixel_limit_is_checked_from_the_header(side):
    with pytest.raises(ImageError) as e:
        decode_bytes(png_header(side, side), (8, 8, 3), max_pixels=1_000_000)
    assert e.value.code == "too_many_pixels"


def test_header_only_file_within_the_limit_is_truncated():
    assert image_size(png_header(20, 10)) == (20, 10)
    with pytest.raises(ImageError) as e:
        decode_bytes(png_header(20, 10), (8, 8, 3))
    assert e.value.code == "truncated"


def test_formats_outside_the_allow_list_are_refused():
    pcx = encoded(np.zeros((8, 8, 3), np.uint8), "PCX")  # Pillow reads it; we do not
    with pytest.raises(ImageError) as e:
        decode_bytes(pcx, (8, 8, 3))
    assert e.value.code == "not_an_image"
    with pytest.raises(ImageError) as e:
        decode_bytes(b"", (8, 8, 3))
    assert e.value.code == "empty"


def test_decode_to_the_model_shape():
    rgb = np.random.default_rng(0).integers(0, 256, (30, 20, 3), dtype=np.uint8)
    out = decode_bytes(encoded(rgb, "PNG"), (16, 12, 1))
    assert out.shape == (16, 12, 1) and out.dtype == np.uint8
    assert decode_bytes(encoded(rgb, "JPEG"), (8, 8, 3)).shape == (8, 8, 3)
    assert decode_bytes(encoded(rgb, "PNG"), None).shape == (30, 20, 3)  # own size


def test_model_input_shape_and_scaling():
    class M:
        input_shape = (None, 28, 28, 1)

    assert model_input_shape(M()) == (28, 28, 1)
    assert model_input_shape(None, (28, 28)) == (28, 28, 1)
    with pytest.raises(ValueError, match="input_shape"):
        model_input_shape(object())
    with pytest.raises(ValueError, match="1- or 3-channel"):
        model_input_shape(None, (8, 8, 4))
    assert scale_to(640, 480, 320) == (240, 320) and scale_to(32, 16, 320) == (160, 320)
