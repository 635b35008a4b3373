"""ONNX Runtime vs PyTorch: parity and latency of exported models, batch 1 and 64.

Two models, both exported with their preprocessing inside (uint8 N×H×W×C in):
- seed 003's CIFAR-10 CNN (``simple-cnn``, 167,562 parameters, 32×32×3);
- a ResNet-18 transfer model: torchvision resnet18 (weights=None here, so nothing is
  downloaded), a new 10-class head, ImageNet mean/std and a 32 -> 224 resize in the graph.

Parity: ONNX Runtime vs PyTorch on 100 held-out CIFAR-10 images (random pixels when the
dataset is absent); largest absolute difference of the probabilities. Latency: the same
uint8 batch through the PyTorch module (``torch.inference_mode``) and through the ONNX
Runtime session, same thread count, median of ``--repeats`` runs after warm-up. On a shared
machine more threads can be slower (OpenMP threads wait for busy cores): compare at 1 thread.

    python benchmarks/export_latency.py [--repeats 7] [--threads 1 2] [--size 224]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cifar10, load_note  # noqa: E402

from cnnkit.export import deployable, export, load_exported  # noqa: E402
from cnnkit.models.preprocess import Preprocess  # noqa: E402
from cnnkit.models.registry import create  # noqa: E402

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def held_out_images(n: int) -> tuple[np.ndarray, str]:
    try:
        _, (x_val, _) = cifar10()
        idx = np.random.default_rng(0).choice(len(x_val), n, replace=False)
        return x_val[idx], f"{n} held-out CIFAR-10 images"
    except (FileNotFoundError, OSError) as e:
        print(f"(CIFAR-10 unavailable: {e}; using random pixels)")
        return np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), np.uint8), \
            f"{n} random images"


def models(size: int):
    torch.manual_seed(3)
    seed003 = create("simple-cnn", num_classes=10)
    torch.manual_seed(18)
    resnet = create("resnet18", num_classes=10, input_shape=(32, 32, 3))
    resnet.preprocess = Preprocess(mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                   resize=(size, size) if size != 32 else None)
    return [("seed-003 simple-cnn 32x32", seed003),
            (f"resnet18 transfer 32->{size}", resnet)]


def median_ms(fn, x, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, nargs="+",
                    default=sorted({1, os.cpu_count() or 1}),
                    help="thread counts to measure (the same for both runtimes)")
    ap.add_argument("--size", type=int, default=224, help="ResNet-18 inner resolution")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    args = ap.parse_args(argv)

    images, what = held_out_images(100)
    print(f"export_latency: torch {torch.__version__}, onnxruntime "
          f"{__import__('onnxruntime').__version__}; {load_note()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in models(args.size):
            print(f"\n== {name}: {sum(p.numel() for p in model.parameters()):,} parameters")
            result = export(model, Path(tmp) / f"{name.split()[0]}.onnx", samples=images,
                            atol=1e-4)
            print(f"parity on {what}: max |onnx - pytorch| = {result.max_abs_diff:.2e} "
                  f"({'PASS' if result.max_abs_diff <= 1e-4 else 'FAIL'} at 1e-4); "
                  f"export + check {result.seconds:.1f} s")
            graph = deployable(model)

            def run_torch(x):
                with torch.inference_mode():
                    return graph(torch.from_numpy(x)).numpy()

            for threads in args.threads:
                torch.set_num_threads(threads)
                onnx_model = load_exported(result.path, threads=threads)
                for b in args.batches:
                    x = np.resize(images, (b, *images.shape[1:]))  # repeats the 100 if b > 100
                    pt = median_ms(run_torch, x, args.repeats)
                    ort = median_ms(onnx_model.predict, x, args.repeats)
                    rows.append((name, threads, b, pt, ort))
                    print(f"{threads} thread(s), batch {b:>3}: pytorch {pt:8.2f} ms  "
                          f"onnxruntime {ort:8.2f} ms  pytorch/onnxruntime = {pt / ort:5.2f}x  "
                          f"({b / pt * 1000:,.0f} vs {b / ort * 1000:,.0f} images/s)")
    print("\nsummary (median ms per batch; ratio > 1 means ONNX Runtime is faster)")
    print(f"{'model':<30} {'threads':>7} {'batch':>5} {'pytorch':>9} {'onnxrt':>9} {'ratio':>6}")
    for name, threads, b, pt, ort in rows:
        print(f"{name:<30} {threads:>7} {b:>5} {pt:>9.2f} {ort:>9.2f} {pt / ort:>6.2f}")
    print(load_note())


if __name__ == "__main__":
    main()
