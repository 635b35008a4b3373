"""Fixtures for the data tests: tiny image files, a private cache, a local HTTP server."""

from __future__ import annotations

import http.server
import io
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch) -> Path:
    """Every data test gets its own cache (never ~/.cache/cnnkit), outside its tmp_path."""
    cache = tmp_path_factory.mktemp("cnnkit-cache")
    monkeypatch.setenv("CNNKIT_CACHE", str(cache))
    monkeypatch.delenv("CNNKIT_OFFLINE", raising=False)
    return cache


def _pattern(h: int, w: int, c: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(h, w, c), dtype=np.uint8)


_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".gif": "GIF",
            ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP"}


@pytest.fixture
def write_image():
    """write_image(path, h=8, w=8, mode='RGB', fmt=None, seed=0) -> the pixel array saved."""

    def write(path, h=8, w=8, mode="RGB", fmt=None, seed=0, array=None):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if array is None:
            c = {"RGB": 3, "RGBA": 4, "L": 1, "P": 1, "CMYK": 4, "I;16": 1, "LA": 2}[mode]
            array = _pattern(h, w, c, seed)
        if mode == "I;16":
            img = Image.fromarray(array[..., 0].astype(np.uint16) * 257)
        elif mode == "P":
            img = Image.fromarray(array[..., 0], "L").convert("P")
        elif mode == "CMYK":
            img = Image.fromarray(array[..., :3], "RGB").convert("CMYK")
        elif mode == "L":
            img = Image.fromarray(array[..., 0], "L")
        else:
            img = Image.fromarray(array, mode)
        fmt = fmt or _FORMATS[path.suffix.lower()]
        img.save(path, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
        return array

    return write


@pytest.fixture
def image_folder(tmp_path, write_image):
    """root/<class>/*.png: classes 'cat' (4 images) and 'dog' (6 images), 8×8 RGB PNGs
    (lossless, so decoded pixels equal the arrays returned in ``arrays``)."""
    root = _FolderPath(tmp_path / "pets")
    arrays = {}
    for k, (cls, n) in enumerate((("cat", 4), ("dog", 6))):
        for i in range(n):
            p = root / cls / f"{i:02d}.png"
            arrays[str(p)] = write_image(p, seed=100 * k + i)
    root.arrays = arrays
    return root


class _FolderPath(type(Path())):
    """A Path that can carry the arrays written below it (``.arrays``)."""


def truncated_jpeg_bytes(h=32, w=32) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_pattern(h, w, 3, 1)).save(buf, "JPEG", quality=95)
    data = buf.getvalue()
    return data[: len(data) // 2]


@pytest.fixture
def bad_files():
    """Writers for each kind of bad file."""

    def write(kind: str, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "empty":
            path.write_bytes(b"")
        elif kind == "text":
            path.write_text("this is not an image\n")
        elif kind == "truncated":
            path.write_bytes(truncated_jpeg_bytes())
        elif kind in ("corrupt", "corrupt_data"):
            buf = io.BytesIO()
            Image.fromarray(_pattern(16, 16, 3, 2)).save(buf, "PNG")
            data = bytearray(buf.getvalue())
            if kind == "corrupt":
                data[40:80] = b"\x00" * 40  # the IDAT chunk header: Pillow cannot open it
            else:
                data[60:90] = b"\x00" * 30  # inside the compressed pixels: opens, fails to load
            path.write_bytes(bytes(data))
        else:
            raise ValueError(kind)
        return path

    return write


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    partial: set[str] = set()
    trickle: set[str] = set()  # paths sent one byte every 20 ms
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        self.hits.append(self.path)
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.path in self.partial:
            self.wfile.write(data[: len(data) // 2])  # then hang up early
            self.wfile.flush()
            self.close_connection = True
            return
        if self.path not in self.trickle:
            self.wfile.write(data)
            return
        try:
            for i in range(len(data)):
                self.wfile.write(data[i:i + 1])
                self.wfile.flush()
                time.sleep(0.02)
        except OSError:  # the client gave up
            pass

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def http_files():
    """A local HTTP server on 127.0.0.1: set ``.files[path] = bytes``; ``.partial`` paths are
    cut in half, ``.trickle`` paths sent a byte every 20 ms; ``.hits`` lists requests; ``.url``
    is the base address."""
    handler = type("Handler", (_Handler,), {"files": {}, "partial": set(), "trickle": set(),
                                            "hits": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.timeout = 5
    server.daemon_threads, server.block_on_close = True, False  # a trickle never holds shutdown
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

