"""The service over real HTTP: uvicorn on 127.0.0.1, an ephemeral port, bounded timeouts."""

import base64
import concurrent.futures as cf
import io

import httpx
import numpy as np
import pytest
from PIL import Image

from cnnkit.serve import create_app, running

LIMITS = dict(max_files=3, max_upload_bytes=200_000, max_pixels=300 * 300,
              max_request_pixels=2 * 300 * 300)


@pytest.fixture(scope="module")
def client(tiny_model):
    app = create_app(tiny_model, **LIMITS)
    with running(app) as url, httpx.Client(base_url=url, timeout=20) as c:
        assert url.startswith("http://127.0.0.1:")
        yield c


def one(name, data, ctype="image/png"):
    return {"file": (name, data, ctype)}


def test_health_and_model(client):
    assert client.get("/health").json()["status"] == "ok"
    info = client.get("/model").json()
    assert info["class_names"] == ["ant", "bee", "cat", "dog"]
    assert info["input"]["shape"] == [16, 16, 3] and info["input"]["dtype"] == "uint8"
    assert info["limits"] == LIMITS and info["explain"] is True and info["runtime"] == "pytorch"


def test_predict_several_images_matches_the_model(client, tiny_model, encode):
    files = [("images", ("a.png", encode(seed=1), "image/png")),
             ("images", ("b.jpg", encode((16, 16), "JPEG", seed=2), "image/jpeg"))]
    r = client.post("/predict", files=files, params={"top_k": 2})
    assert r.status_code == 200
    preds = r.json()["predictions"]
    assert [p["filename"] for p in preds] == ["a.png", "b.jpg"]
    assert all(len(p["top"]) == 2 for p in preds)
    # same answer as the model on the same decoded, resized pixels
    img = np.array(Image.open(io.BytesIO(encode(seed=1))).resize((16, 16), Image.BILINEAR))
    probs = tiny_model.predict_proba(img[None])[0]
    top = preds[0]["top"][0]
    assert top["index"] == int(probs.argmax())
    assert top["class"] == ["ant", "bee", "cat", "dog"][top["index"]]
    assert top["probability"] == pytest.approx(float(probs.max()), abs=1e-5)
    assert len(client.post("/predict", files=one("a.png", encode())).json()["predictions"][0]
               ["top"]) == 4  # default top-5, capped at the number of classes


def test_explain_returns_an_overlay(client, encode):
    r = client.post("/explain", files=one("photo.png", encode((150, 250), seed=3)))
    assert r.status_code == 200
    body = r.json()
    assert body["class_name"] == body["top"][0]["class"] and body["layer"]
    head, data = body["overlay"].split(",", 1)
    assert head == "data:image/png;base64"
    overlay = Image.open(io.BytesIO(base64.b64decode(data)))
    assert overlay.size == (320, 192)  # the upload scaled to 320 on its longest side
    chosen = client.post("/explain", files=one("p.png", encode()), params={"class_index": 2})
    assert chosen.json()["class_index"] == 2


BAD = {
    "not an image": (dict(files=one("x.png", b"hello, not a picture")), 415, "not_an_image"),
    "truncated": (dict(files=one("x.png", None)), 422, "truncated"),
    "too many pixels": (dict(files=one("x.png", "huge")), 413, "too_many_pixels"),
    "too many files": (dict(files=[("f", ("a.png", "ok", "image/png"))] * 4), 413,
                       "too_many_files"),
    "too many pixels in all": (dict(files=[("f", ("a.png", "large", "image/png"))] * 3), 413,
                               "too_many_pixels_in_request"),
    "jpeg cut in its header": (dict(files=one("x.jpg", "jpeg_head", "image/jpeg")), 422,
                               "truncated"),
    "jpeg cut in its pixels": (dict(files=one("x.jpg", "jpeg_half", "image/jpeg")), 422,
                               "truncated"),
    "empty body": (dict(content=b""), 400, "no_images"),
    "empty file": (dict(files=one("x.png", b"")), 400, "empty"),
    "no file part": (dict(files={"note": (None, "hi")}), 400, "no_images"),
    "not multipart": (dict(json={"image": "x"}), 415, "not_multipart"),
    "body too large": (dict(files=one("x.bmp", "big")), 413, "upload_too_large"),
    "broken multipart": (dict(content=b"garbage", headers={
        "content-type": "multipart/form-data; boundary=x"}), 400, "bad_multipart"),
    "bad top_k": (dict(files=one("a.png", "ok"), params={"top_k": 0}), 422,
                  "invalid_parameter"),
}


def _materialise(kwargs, encode):
    """Fill the placeholders in BAD with real bytes."""
    jpeg = encode((64, 64), "JPEG")
    real = {"ok": encode(), "huge": encode((1000, 1000), zeros=True),
            "large": encode((300, 300), zeros=True),  # 3 of them: 3 × 90,000 > 180,000 pixels
            "jpeg_head": jpeg[:120], "jpeg_half": jpeg[:len(jpeg) // 2],
            "big": encode((300, 300), "BMP"), None: encode()[:300]}

    def fix(v):
        if isinstance(v, tuple) and len(v) == 3 and v[1] in real:
            return (v[0], real[v[1]], v[2])
        return v

    out = dict(kwargs)
    if isinstance(out.get("files"), dict):
        out["files"] = {k: fix(v) for k, v in out["files"].items()}
    elif isinstance(out.get("files"), list):
        out["files"] = [(k, fix(v)) for k, v in out["files"]]
    return out


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_uploads_get_a_json_4xx_and_the_service_keeps_serving(client, encode, case):
    kwargs, status, code = BAD[case]
    r = client.post("/predict", **_materialise(kwargs, encode))
    assert r.status_code == status, r.text
    assert r.json()["error"] == code and r.json()["message"]
    assert client.post("/predict", files=one("a.png", encode())).status_code == 200


def test_chunked_body_over_the_limit_is_cut_off(client):
    def chunks():
        # a well-formed start, so the parser keeps reading until the size limit cuts it off
        yield (b'--x\r\nContent-Disposition: form-data; name="f"; filename="a.png"\r\n'
               b"Content-Type: image/png\r\n\r\n")
        for _ in range(5):
            yield b"x" * 100_000

    r = client.post("/predict", content=chunks(),
                    headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413 and r.json()["error"] == "upload_too_large"


def test_explain_takes_one_image(client, encode):
    r = client.post("/explain", files=[("f", ("a.png", encode(), "image/png"))] * 2)
    assert r.status_code == 400 and r.json()["error"] == "one_image"
    r = client.post("/explain", files=one("a.png", encode()), params={"class_index": 9})
    assert r.status_code == 422


@pytest.mark.parametrize("path", ["/../../etc/passwd", "/static/../app.py",
                                  "/%2e%2e/%2e%2e/etc/passwd", "/static/index.html",
                                  "/index.html", "/docs"])
def test_no_request_path_reaches_the_file_system(client, path):
    r = client.get(path)
    assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_page_is_served(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert 'id="file"' in r.text and "/explain" in r.text


def test_concurrent_requests_are_batched(tiny_model, encode):
    app = create_app(tiny_model, max_wait_ms=100)
    with running(app) as url, httpx.Client(base_url=url, timeout=20) as c:
        def call(i):
            return c.post("/predict", files=one(f"{i}.png", encode(seed=i))).status_code

        with cf.ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(call, range(8)))
        stats = c.get("/health").json()
    assert codes == [200] * 8
    assert stats["images"] == 8 and stats["batches"] < 8 and stats["largest_batch"] > 1


def test_serving_an_exported_model(tiny_model, encode, tmp_path):
    """TorchScript here (quick to export); ONNX files load through the same ExportedModel."""
    from cnnkit.export import export

    path = export(tiny_model, tmp_path / "m.pt", n_check=4, verbose=False).path
    with running(create_app(path)) as url, httpx.Client(base_url=url, timeout=20) as c:
        info = c.get("/model").json()
        assert info["runtime"] == "torchscript" and info["explain"] is False
        assert info["class_names"] == ["ant", "bee", "cat", "dog"]
        r = c.post("/predict", files=one("a.png", encode()))
        assert r.status_code == 200 and len(r.json()["predictions"][0]["top"]) == 4
        r = c.post("/explain", files=one("a.png", encode()))
        assert r.status_code == 501 and r.json()["error"] == "explain_unavailable"
