"""Shared test fixtures: tiny data, the bundled sample, and the real datasets when present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(os.environ.get("CNNKIT_SHARED_DATASETS", REPO.parent / "shared" / "datasets"))

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def shared_datasets() -> Path:
    """../shared/datasets, or skip the test where it is absent."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATASETS}")
    return SHARED_DATASETS


@pytest.fixture
def bundled_mnist():
    """(x_train, y_train), (x_test, y_test) of the MNIST sample shipped in the package."""
    from importlib import resources
    with resources.files("cnnkit.data").joinpath("bundled/mnist_small.npz").open("rb") as f:
        d = np.load(f)
        return (d["x_train"], d["y_train"].astype(np.int64)), (d["x_test"], d["y_test"].astype(np.int64))


@pytest.fixture
def tiny_images():
    """64 random 8×8×3 uint8 images whose label is which quadrant is brightest (learnable)."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 60, size=(64, 8, 8, 3), dtype=np.uint8)
    y = np.arange(64) % 4
    for i, label in enumerate(y):
        r, c = divmod(int(label), 2)
        x[i, r * 4:(r + 1) * 4, c * 4:(c + 1) * 4] += 180
    return x, y.astype(np.int64)
