"""The service bounds work per request, and every half-written image is one 4xx (issue 13 item 4)."""

import io

import numpy as np
import pytest
from PIL import Image, ImageFile

from cnnkit.serve import app as app_module
from cnnkit.serve import create_app
from cnnkit.serve.images import ImageError, decode_bytes


def _png(h, w):
    buf = io.BytesIO()
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _jpeg(h=64, w=64):
    buf = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, "JPEG", quality=90)
    return buf.getvalue()


LIMITS = {"max_pixels": 4_000_000, "max_request_pixels": 5_000_000}


def test_many_huge_images_in_a_small_request_are_refused_before_decoding(monkeypatch):
    files = [(f"{i}.png", _png(2000, 2000)) for i in range(2)]  # 8 M pixels in ~30 KB
    assert sum(len(d) for _, d in files) < 100_000
    decoded = []
    monkeypatch.setattr(app_module, "decode_bytes", lambda *a, **k: decoded.append(a))
    with pytest.raises(app_module.ApiError) as err:
        app_module._decode(files, (16, 16, 3), LIMITS)
    assert (err.value.status, err.value.code) == (413, "too_many_pixels_in_request")
    assert "8000000 pixels in all" in err.value.message and "5000000" in err.value.message
    assert decoded == []  # not one image was decoded


def test_within_the_budget_they_decode():
    out = app_module._decode([("a.png", _png(2000, 2000))], (16, 16, 3), LIMITS)
    assert out.shape == (1, 16, 16, 3)


def test_the_budget_is_configurable_and_shown(tiny_model):
    httpx = pytest.importorskip("httpx")
    from cnnkit.serve import running
    app = create_app(tiny_model, max_request_pixels=1000)
    with running(app) as url, httpx.Client(base_url=url, timeout=20) as client:
        assert client.get("/model").json()["limits"]["max_request_pixels"] == 1000
        r = client.post("/predict", files={"f": ("a.png", _png(40, 40), "image/png")})
        assert r.status_code == 413 and r.json()["error"] == "too_many_pixels_in_request"


@pytest.mark.parametrize("fraction", [0.02, 0.1, 0.3, 0.5, 0.9, 0.99])
@pytest.mark.parametrize("shape", [(64, 64, 3), (16, 16, 3), None])
def test_a_jpeg_cut_anywhere_is_truncated(fraction, shape):
    data = _jpeg()
    with pytest.raises(ImageError) as err:
        decode_bytes(data[:max(4, int(len(data) * fraction))], shape)
    assert err.value.code == "truncated"


def test_truncated_uploads_need_pillow_strict(monkeypatch, tiny_model):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        decode_bytes(_jpeg()[:500], (16, 16, 3))
    pytest.importorskip("fastapi")
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        create_app(tiny_model)
