"""(c) Inference speed: latency of one image (batch 1) and throughput at batch 256.

Models: seed 003's simple-cnn (as the tutorial builds it, with cnnkit's Keras facade), the
``fast`` recipe's network as it is sized on this device, and the ``mnist-fast`` one. Each is
timed three ways: ``model.predict(image)`` (the facade: numpy in, probabilities out),
the bare forward under ``torch.inference_mode`` at batch 1, and at batch 256; in fp32 and,
where the CPU multiplies bfloat16 natively, in bf16 autocast. Weights are random: speed does
not depend on them. Latency is the median (and 90th percentile) of ``--reps`` calls after a
warm-up; the machine is shared, so the load is printed beside the figures.

    python benchmarks/inference_latency.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402


def models(device):
    from cnnkit import recipes
    from seed003_epoch import keras_style_cnnkit
    out = {"simple-cnn (seed 003)": (keras_style_cnnkit("fp32"), (32, 32, 3))}
    for name, shape in (("fast", (32, 32, 3)), ("mnist-fast", (28, 28, 1))):
        r = recipes.get(name).resolve(device)
        m = recipes.build_model(r, shape, 10)
        m.to(device)
        if r.channels_last:
            from cnnkit import perf
            perf.channels_last(m)
        m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", device=device)
        out[f"{name} recipe net {tuple(r.widths)}"] = (m, shape)
    return out


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def time_calls(fn, reps: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def bench(model, shape, precision: str, reps: int, device) -> dict:
    from cnnkit.train.engine import _autocast
    model.eval()
    model.precision = precision
    h, w, c = shape
    rng = np.random.default_rng(0)
    one_np = rng.integers(0, 255, size=(1, h, w, c), dtype=np.uint8)
    fmt = getattr(model, "memory_format", torch.contiguous_format)
    one = torch.from_numpy(one_np).permute(0, 3, 1, 2).to(device).contiguous(memory_format=fmt)
    big = torch.from_numpy(rng.integers(0, 255, size=(256, h, w, c), dtype=np.uint8)
                           ).permute(0, 3, 1, 2).to(device).contiguous(memory_format=fmt)

    def forward(x):
        with torch.inference_mode(), _autocast(torch.device(device), precision):
            out = model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return out

    predict = time_calls(lambda: model.predict(one_np), reps)
    lat = time_calls(lambda: forward(one), reps)
    thr = time_calls(lambda: forward(big), max(5, reps // 20))
    return {"predict_ms_p50": 1e3 * statistics.median(predict),
            "forward_ms_p50": 1e3 * statistics.median(lat),
            "forward_ms_p90": 1e3 * percentile(lat, 0.9),
            "batch256_images_per_s": 256 / statistics.median(thr)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    from cnnkit import perf
    from cnnkit.utils import pick_device
    device = pick_device(args.device)
    settings = perf.configure(device, threads=args.threads)
    precisions = ["fp32"] + (["bf16"] if perf.default_precision(device) == "bf16" else [])
    print(f"inference on {device}, {settings['threads']} threads; {_common.load_note()}")
    print(f"{'model':36s} {'prec':5s} {'predict() ms':>12s} {'fwd b1 ms p50':>14s} "
          f"{'p90':>7s} {'b256 img/s':>11s}")
    rows = {}
    for name, (model, shape) in models(device).items():
        for p in precisions:
            r = bench(model, shape, p, args.reps, device)
            rows[f"{name} {p}"] = r
            print(f"{name:36s} {p:5s} {r['predict_ms_p50']:12.2f} {r['forward_ms_p50']:14.2f} "
                  f"{r['forward_ms_p90']:7.2f} {r['batch256_images_per_s']:11.0f}", flush=True)
    print(_common.load_note())
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": settings, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
