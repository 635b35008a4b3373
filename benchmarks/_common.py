"""Shared helpers for the benchmark scripts: real data with a held-out split, timing, load.

CIFAR-10 comes from ``$CNNKIT_DATASETS/cifar10-jpeg/train/<class>/*.jpg`` (default
``../shared/datasets`` beside the repository), decoded once by ``cnnkit.data.folder.image_dataset_from_directory``
(which caches the decoded array); without it, with Pillow in a process pool, cached as an
``.npz`` under ``$CNNKIT_BENCH_CACHE`` (default ``/tmp/cnnkit-bench``).
Held out: the last 1,000 images of every class (files 4000-4999), 10,000 in all.
MNIST: the canonical training IDX files; the last 10,000 digits are held out.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

DATASETS = Path(os.environ.get("CNNKIT_DATASETS",
                               Path(__file__).resolve().parents[2] / "shared" / "datasets"))
CACHE = Path(os.environ.get("CNNKIT_BENCH_CACHE", "/tmp/cnnkit-bench"))
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck"]


def _decode(path: str) -> np.ndarray:
    from PIL import Image
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


def _decode_cifar_folder(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N, 32, 32, 3) uint8, (N,) int64 in class order then file-name order."""
    paths, labels = [], []
    for label, name in enumerate(CIFAR_CLASSES):
        files = sorted((root / name).glob("*.jpg"))
        paths += [str(p) for p in files]
        labels += [label] * len(files)
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        images = list(pool.map(_decode, paths, chunksize=512))
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def _cifar_arrays(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """All 50,000 images NHWC uint8 in class order, then file-name order, and their labels."""
    try:  # the project's own folder loader, with its decoded-array cache
        from cnnkit.data.folder import image_dataset_from_directory
    except ImportError:
        image_dataset_from_directory = None
    if image_dataset_from_directory is not None:
        ds = image_dataset_from_directory(root, shuffle=False, verbose=False)
        if list(ds.class_names) != CIFAR_CLASSES:
            raise ValueError(f"unexpected CIFAR-10 class folders: {ds.class_names}")
        return ds.images.permute(0, 2, 3, 1).contiguous().numpy(), ds.labels.numpy().astype(np.int64)
    cached = CACHE / "cifar10_jpeg_train.npz"
    if cached.exists():
        with np.load(cached) as d:
            return d["x"], d["y"]
    x, y = _decode_cifar_folder(root)
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp.npz")
    np.savez(tmp, x=x, y=y)
    os.replace(tmp, cached)
    return x, y


def cifar10(holdout_per_class: int = 1000):
    """((x_train, y_train), (x_val, y_val)): NHWC uint8 numpy, int64 labels; val held out."""
    root = DATASETS / "cifar10-jpeg" / "train"
    if not root.is_dir():
        raise FileNotFoundError(f"CIFAR-10 JPEG folder not found at {root}")
    x, y = _cifar_arrays(root)
    val = np.zeros(len(y), dtype=bool)
    for c in range(10):
        idx = np.flatnonzero(y == c)
        val[idx[len(idx) - holdout_per_class:]] = True
    return (x[~val], y[~val]), (x[val], y[val])


def mnist(holdout: int = 10000):
    """((x_train, y_train), (x_val, y_val)): N×28×28 uint8, int64 labels; last ``holdout`` held out."""
    from cnnkit.data.idx import read_idx
    root = DATASETS / "mnist"
    x = read_idx(root / "train-images-idx3-ubyte.gz")
    y = read_idx(root / "train-labels-idx1-ubyte.gz").astype(np.int64)
    return (x[:-holdout], y[:-holdout]), (x[-holdout:], y[-holdout:])


def load_note() -> str:
    """One line on the machine's load, to print beside every timing."""
    try:
        one, five, fifteen = os.getloadavg()
        return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"
    except OSError:
        return "load average unknown"


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
