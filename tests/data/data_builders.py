"""Builders of small canonical dataset files for the data tests (imported by them)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def build_idx_dataset(folder: Path, n_train=12, n_test=5, seed=0, splits=("train", "test")):
    """The four canonical MNIST-style .gz files with random content -> the arrays."""
    from cnnkit.data.idx import write_idx

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n, prefix in (("train", n_train, "train"), ("test", n_test, "t10k")):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        if split in splits:
            write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", x)
            write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", y)
        out[split] = (x[..., None], y.astype(np.int64))
    return out


def build_cifar_dataset(folder: Path, name="cifar10", n_per_batch=3, seed=0):
    """Canonical CIFAR batches in folder/<cifar-10-batches-py>/ -> arrays (and meta)."""
    from cnnkit.data.cifar import write_batch
    from cnnkit.data.datasets import info

    ds = info(name)
    rng = np.random.default_rng(seed)
    base = folder / ds.folder
    base.mkdir(parents=True, exist_ok=True)
    out = {}
    for split in ("train", "test"):
        xs, ys, yc = [], [], []
        for fname, _ in ds.files[split]:
            x = rng.integers(0, 256, (n_per_batch, 32, 32, 3), dtype=np.uint8)
            y = rng.integers(0, ds.num_classes, n_per_batch)
            extra = {}
            if name == "cifar100":
                c = rng.integers(0, 20, n_per_batch)
                extra = {"coarse_labels": [int(v) for v in c]}
                yc.append(c)
            write_batch(base / fname, x, y, label_key=ds.label_key, extra=extra)
            xs.append(x)
            ys.append(y)
        out[split] = (np.concatenate(xs), np.concatenate(ys))
        if yc:
            out[split + "_coarse"] = np.concatenate(yc)
    meta_key = "label_names" if name == "cifar10" else "fine_label_names"
    (base / ds.meta[0]).write_bytes(pickle.dumps({meta_key: list(ds.class_names)}))
    return out
