import io

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

import model_helpers  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model():
    """The tutorial CNN at 16×16×3 with four named classes (tests/model_helpers.py)."""
    return model_helpers.tiny_model()


@pytest.fixture(scope="session")
def encode():
    """encode(size=(H, W), fmt="PNG", seed=0, zeros=False) -> image file bytes."""

    def encode(size=(20, 30), fmt="PNG", seed=0, zeros=False) -> bytes:
        pixels = np.zeros((*size, 3), np.uint8) if zeros else \
            np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format=fmt)
        return buf.getvalue()

    return encode
