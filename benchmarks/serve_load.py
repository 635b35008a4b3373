"""A bounded load test of the prediction service on 127.0.0.1.

The service runs in a child process (``cnnkit.serve.running`` on an ephemeral port of
127.0.0.1) over seed 003's CIFAR-10 CNN, saved and loaded the normal way (or ``--model PATH``:
a saved model folder or an exported .onnx / .pt). Concurrent clients send one PNG each per
POST /predict (held-out CIFAR-10 images; random pixels when the dataset is absent). Bad
uploads are mixed into the same run and must get their documented 4xx and JSON error code:
not an image, truncated, too many pixels, too many files, an empty body, a body over the
limit. Bounded: ``--requests`` in all and ``--seconds`` of wall time at most.

Prints requests/s, p50/p90/p99 latency, failed requests (any good request not answered 200
with a prediction), bad uploads answered as expected, and the server's batching figures.
Exit status 1 on any failure.

    python benchmarks/serve_load.py [--requests 2000] [--concurrency 16] [--seconds 120]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CIFAR_CLASSES, cifar10, load_note  # noqa: E402

LIMITS = dict(max_upload_bytes=1_000_000, max_files=8, max_pixels=2048 * 2048)


def png(pixels: np.ndarray) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def serve_child(model_path: str) -> None:
    """Child process: serve ``model_path``, print the URL, stop when stdin closes."""
    from cnnkit.serve import create_app, running

    with running(create_app(model_path, **LIMITS), timeout=120) as url:
        print(url, flush=True)
        sys.stdin.read()


def bad_uploads() -> list[tuple[str, dict, int, str]]:
    """(name, httpx request kwargs, expected status, expected error code)."""
    ok = png(np.zeros((32, 32, 3), np.uint8))
    huge = png(np.zeros((3000, 3000, 3), np.uint8))  # 9 Mpx in ~30 kB
    noise = np.random.default_rng(1).integers(0, 256, 1_200_000, dtype=np.uint8).tobytes()
    return [
        ("not an image", {"files": {"file": ("a.png", b"GIF? no: plain text", "image/png")}},
         415, "not_an_image"),
        ("truncated", {"files": {"file": ("a.png", png(np.full((64, 64, 3), 7, np.uint8))[:90],
                                          "image/png")}}, 422, "truncated"),
        ("too many pixels", {"files": {"file": ("big.png", huge, "image/png")}}, 413,
         "too_many_pixels"),
        ("too many files", {"files": [("file", (f"{i}.png", ok, "image/png")) for i in range(9)]},
         413, "too_many_files"),
        ("empty body", {"content": b""}, 400, "no_images"),
        ("body over the limit", {"files": {"file": ("n.png", noise, "image/png")}}, 413,
         "upload_too_large"),
    ]


async def load(url, images, args) -> dict:
    import httpx

    bad = bad_uploads()
    latencies, failures, bad_results = [], [], []
    plan = list(range(args.requests))
    deadline = time.monotonic() + args.seconds
    timeout = httpx.Timeout(30.0)
    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        async def worker():
            while plan and time.monotonic() < deadline:
                i = plan.pop()
                if args.bad_every and i % args.bad_every == 0:
                    name, kwargs, status, code = bad[(i // args.bad_every) % len(bad)]
                    try:
                        r = await client.post("/predict", **kwargs)
                        got = (r.status_code, r.json().get("error"))
                    except Exception as e:  # noqa: BLE001
                        got = (None, repr(e))
                    bad_results.append((name, got == (status, code), got))
                    continue
                data = images[i % len(images)]
                t0 = time.perf_counter()
                try:
                    r = await client.post("/predict", files={"file": (f"{i}.png", data,
                                                                      "image/png")})
                    ok = r.status_code == 200 and len(r.json()["predictions"][0]["top"]) > 0
                    detail = r.status_code
                except Exception as e:  # noqa: BLE001
                    ok, detail = False, repr(e)
                latencies.append(time.perf_counter() - t0)
                if not ok:
                    failures.append(detail)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        wall = time.perf_counter() - t0
        health = (await client.get("/health")).json()
    return {"latencies": latencies, "failures": failures, "bad": bad_results, "wall": wall,
            "health": health, "unsent": len(plan)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000, help="requests in all (bounded)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=120, help="wall-time bound")
    ap.add_argument("--bad-every", type=int, default=25, help="every n-th request is a bad upload")
    ap.add_argument("--model", help="saved model folder or exported file (default: seed 003 CNN)")
    ap.add_argument("--serve", help=argparse.SUPPRESS)  # child-process mode
    args = ap.parse_args(argv)
    if args.serve:
        return serve_child(args.serve)

    try:
        _, (x_val, _) = cifar10()
        pick = np.random.default_rng(0).choice(len(x_val), 200, replace=False)
        pixels, what = x_val[pick], "held-out CIFAR-10 images"
    except (FileNotFoundError, OSError):
        pixels, what = np.random.default_rng(0).integers(0, 256, (200, 32, 32, 3), np.uint8), \
            "random 32x32 images"
    images = [png(p) for p in pixels]

    with tempfile.TemporaryDirectory() as tmp:
        model_path = args.model
        if model_path is None:
            import torch

            from cnnkit.models.registry import create
            torch.manual_seed(3)
            model = create("simple-cnn", num_classes=10)
            model.class_names = CIFAR_CLASSES
            model_path = str(Path(tmp) / "simple-cnn")
            model.save(model_path)
        child = subprocess.Popen([sys.executable, __file__, "--serve", model_path],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            url = child.stdout.readline().strip()
            if not url.startswith("http://127.0.0.1:"):
                raise SystemExit(f"the service did not start (got {url!r})")
            print(f"serve_load: {url}, model {Path(model_path).name}, {what}, "
                  f"{args.concurrency} concurrent clients, at most {args.requests} requests "
                  f"and {args.seconds:.0f} s; {load_note()}")
            res = asyncio.run(load(url, images, args))
        finally:
            child.stdin.close()
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()

    lat = np.array(res["latencies"]) * 1000
    good = len(lat)
    bad_ok = sum(ok for _, ok, _ in res["bad"])
    total = good + len(res["bad"])
    print(f"requests: {total} in {res['wall']:.1f} s = {total / res['wall']:.1f} requests/s "
          f"({good} predictions, {len(res['bad'])} bad uploads; {res['unsent']} not sent "
          f"within the time bound)")
    if good:
        print(f"latency of predictions: p50 {np.percentile(lat, 50):.1f} ms, "
              f"p90 {np.percentile(lat, 90):.1f} ms, p99 {np.percentile(lat, 99):.1f} ms, "
              f"max {lat.max():.1f} ms")
    print(f"failed requests: {len(res['failures'])}"
          + (f" (e.g. {res['failures'][:3]})" if res["failures"] else ""))
    kinds = sorted({name for name, _, _ in res["bad"]})
    print(f"bad uploads answered as expected: {bad_ok}/{len(res['bad'])} "
          f"({', '.join(kinds)})")
    for name, ok, got in res["bad"]:
        if not ok:
            print(f"  WRONG answer to {name}: {got}")
    h = res["health"]
    print(f"server batching: {h['images']} images in {h['batches']} forward passes, mean batch "
          f"{h['mean_batch']}, largest {h['largest_batch']}; still healthy: {h['status']}")
    print(load_note())
    return 1 if res["failures"] or bad_ok != len(res["bad"]) else 0


if __name__ == "__main__":
    sys.exit(main())
