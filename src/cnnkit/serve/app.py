"""The prediction service: a FastAPI app over a model or an exported file.

    GET  /          the page: drop an image, see the top classes and the Grad-CAM overlay
    GET  /health    {"status": "ok", "batches": ..., "images": ...}
    GET  /model     class names, input spec, limits, whether /explain is available
    POST /predict   multipart, one or more images (any field name) -> top-k per image
    POST /explain   multipart, one image -> top-k and a Grad-CAM overlay as a PNG data URL

Every error is JSON ``{"error": code, "message": text}`` with a 4xx status (5xx only for a
bug), and the service keeps serving. Uploads are parsed in memory within
``max_upload_bytes``; nothing in a request names a file on this machine: the page is read
from the package once, at start.
"""

from __future__ import annotations

import base64
import io
import logging
from contextlib import asynccontextmanager
from importlib import resources

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from .batching import MicroBatcher
from .images import (DEFAULT_MAX_PIXELS, DEFAULT_MAX_REQUEST_PIXELS, ImageError, decode_bytes,
                     image_size, refuse_truncated_loading, scale_to)
from .predictors import load_predictor

log = logging.getLogger("cnnkit.serve")

# ImageError code -> HTTP status
_IMAGE_STATUS = {"empty": 400, "not_an_image": 415, "truncated": 422, "too_many_pixels": 413}
OVERLAY_SIDE = 320  # longest side of the overlay picture /explain returns


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


async def _limited(request: Request, limit: int):
    """The request body as a stream that fails with 413 once it passes ``limit`` bytes."""
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise ApiError(413, "upload_too_large", f"the request body exceeds {limit} bytes")
        yield chunk


async def _read_images(request: Request, limits: dict) -> list[tuple[str, bytes]]:
    """(filename, bytes) of every file part in a multipart body, within the limits."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limits["max_upload_bytes"]:
        raise ApiError(413, "upload_too_large",
                       f"the request body exceeds {limits['max_upload_bytes']} bytes")
    if length == "0":
        raise ApiError(400, "no_images", "the request body is empty; send multipart/form-data "
                                         "with one or more image files")
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise ApiError(415, "not_multipart", "send the images as multipart/form-data "
                                             f"(got content-type {ctype[:100]!r})")
    parser = MultiPartParser(request.headers, _limited(request, limits["max_upload_bytes"]),
                             max_files=limits["max_files"], max_fields=16)
    parser.spool_max_size = limits["max_upload_bytes"]  # uploads stay in memory, never on disk
    try:
        form = await parser.parse()
    except MultiPartException as e:
        if "Too many files" in str(e):
            raise ApiError(413, "too_many_files",
                           f"at most {limits['max_files']} images per request") from None
        raise ApiError(400, "bad_multipart", str(e)) from None
    files = []
    for _, value in form.multi_items():
        if hasattr(value, "read"):  # an UploadFile
            files.append(((value.filename or "")[:200], await value.read()))
    await form.close()
    if not files:
        raise ApiError(400, "no_images", "no image file in the request")
    return files


def _image_error(i: int, name: str, e: ImageError) -> ApiError:
    return ApiError(_IMAGE_STATUS[e.code], e.code, f"file {i} ({name or 'unnamed'}): {e}")


def _decode(files, shape, limits: dict) -> np.ndarray:
    """Every file's header is read (sizes summed against the request's pixel budget) before
    any pixel of any file is decoded."""
    total = 0
    for i, (name, data) in enumerate(files):
        try:
            w, h = image_size(data, limits["max_pixels"])
        except ImageError as e:
            raise _image_error(i, name, e) from None
        total += w * h
    if total > limits["max_request_pixels"]:
        raise ApiError(413, "too_many_pixels_in_request",
                       f"the {len(files)} images hold {total} pixels in all; the limit per request "
                       f"is {limits['max_request_pixels']}: send fewer or smaller images")
    arrays = []
    for i, (name, data) in enumerate(files):
        try:
            arrays.append(decode_bytes(data, shape, limits["max_pixels"]))
        except ImageError as e:
            raise _image_error(i, name, e) from None
    return np.stack(arrays)


def _top(probs: np.ndarray, names: list[str], k: int) -> list[dict]:
    order = np.argsort(-probs, kind="stable")[:k]
    return [{"class": names[i], "index": int(i), "probability": round(float(probs[i]), 6)}
            for i in order]


def _labels(predictor, probs: np.ndarray, names: list[str]) -> dict:
    """A multi-label model's answer: every label at or above its threshold ({} otherwise)."""
    if not getattr(predictor, "multi_label", False):
        return {}
    from ..metrics_multilabel import labels_above
    return {"labels": [{**q, "probability": round(q["probability"], 6)}
                       for q in labels_above(probs, names, predictor.thresholds)]}


def _display_copy(data: bytes, max_pixels: int) -> np.ndarray:
    """The upload scaled to OVERLAY_SIDE pixels on its longest side, RGB, for the overlay
    (small images are enlarged so the heatmap is drawn smoothly)."""
    w, h = image_size(data, max_pixels)
    return decode_bytes(data, (*scale_to(w, h, OVERLAY_SIDE), 3), max_pixels)


def _grad_cam_png(model, image: np.ndarray, display: np.ndarray, class_index) -> dict:
    """Grad-CAM on the model-size image, drawn over the display copy, as a PNG data URL."""
    from PIL import Image

    from ..explain import explain, overlay

    ex = explain(model, image, class_index)
    buf = io.BytesIO()
    Image.fromarray(overlay(display, ex.heatmaps[0])).save(buf, format="PNG")
    return {"probs": ex.probabilities[0], "class_index": int(ex.class_indices[0]),
            "layer": ex.layer,
            "overlay": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()}


def create_app(model_or_path, *, max_upload_bytes: int = 8 * 1024 * 1024, max_files: int = 16,
               max_pixels: int = DEFAULT_MAX_PIXELS,
               max_request_pixels: int = DEFAULT_MAX_REQUEST_PIXELS, top_k: int = 5,
               max_batch: int = 64, max_wait_ms: float = 2.0, input_shape=None,
               class_names=None) -> FastAPI:
    """The service over ``model_or_path``: a model, an exported .onnx / .pt file or a saved
    model folder. Limits: request body bytes, image files per request, pixels per image and
    pixels of all images of a request (both read from the headers before decoding: a small
    upload can announce huge images). Concurrent /predict requests are batched together, up
    to ``max_batch`` images, waiting at most ``max_wait_ms`` for company.
    """
    refuse_truncated_loading()
    predictor = load_predictor(model_or_path, input_shape, class_names)
    names, shape = predictor.class_names, predictor.input_shape
    default_k = min(top_k, len(names))
    limits = {"max_upload_bytes": int(max_upload_bytes), "max_files": int(max_files),
              "max_pixels": int(max_pixels), "max_request_pixels": int(max_request_pixels)}
    batcher = MicroBatcher(predictor.predict, max_batch=max_batch, max_wait=max_wait_ms / 1000)
    page = resources.files("cnnkit.serve").joinpath("static/index.html").read_text("utf-8")

    @asynccontextmanager
    async def lifespan(app):
        yield
        await batcher.close()
        batcher.shutdown()

    app = FastAPI(title="cnnkit", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.batcher = batcher
    app.state.predictor = predictor

    @app.exception_handler(ApiError)
    async def api_error(request, exc: ApiError):
        return _error(exc.status, exc.code, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc: RequestValidationError):
        msg = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return _error(422, "invalid_parameter", msg)

    @app.exception_handler(Exception)
    async def internal_error(request, exc: Exception):
        log.exception("request failed")
        return _error(500, "internal_error", f"{type(exc).__name__}: the server failed")

    def k_of(top: int | None) -> int:
        if top is None:
            return default_k
        if not 1 <= top <= len(names):
            raise ApiError(422, "invalid_parameter", f"top_k must be in [1, {len(names)}]")
        return top

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index():
        return HTMLResponse(page)

    @app.get("/health")
    async def health():
        return {"status": "ok", **batcher.stats()}

    @app.get("/model")
    async def model_info():
        return {"name": predictor.name, "runtime": predictor.runtime, "class_names": names,
                "input": {"shape": list(shape), "dtype": "uint8", "layout": "HWC",
                          "note": "any size and common format is accepted; images are "
                                  "resized to this shape"},
                "limits": limits, "top_k": default_k,
                "multi_label": bool(getattr(predictor, "multi_label", False)),
                "thresholds": getattr(predictor, "thresholds", None),
                "explain": predictor.model is not None}

    @app.post("/predict")
    async def predict(request: Request, top_k: int | None = None):
        k = k_of(top_k)
        files = await _read_images(request, limits)
        images = await run_in_threadpool(_decode, files, shape, limits)
        probs = await batcher.submit(images)
        return {"predictions": [{"filename": name, "top": _top(p, names, k),
                                 **_labels(predictor, p, names)}
                                for (name, _), p in zip(files, probs)]}

    @app.post("/explain")
    async def explain_route(request: Request, top_k: int | None = None,
                            class_index: int | None = None):
        if predictor.model is None:
            raise ApiError(501, "explain_unavailable",
                           "Grad-CAM needs the PyTorch model; this service runs an exported file")
        k = k_of(top_k)
        if class_index is not None and not 0 <= class_index < len(names):
            raise ApiError(422, "invalid_parameter",
                           f"class_index must be in [0, {len(names) - 1}]")
        files = await _read_images(request, limits)
        if len(files) != 1:
            raise ApiError(400, "one_image", "/explain takes exactly one image")
        image = (await run_in_threadpool(_decode, files, shape, limits))[0]
        display = await run_in_threadpool(_display_copy, files[0][1], limits["max_pixels"])
        result = await batcher.run(_grad_cam_png, predictor.model, image, display, class_index)
        c = result["class_index"]
        probs = result["probs"]
        if getattr(predictor, "multi_label", False):  # sigmoids, as /predict gives them
            probs = (await batcher.submit(image[None]))[0]
        return {"filename": files[0][0], "top": _top(probs, names, k),
                "class_index": c, "class_name": names[c], "layer": result["layer"],
                "overlay": result["overlay"], **_labels(predictor, probs, names)}

    return app
