"""Shared test fixtures: tiny data, the bundled sample, and the real datasets when present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnkit.speed.perf import physical_cores

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(os.environ.get("CNNKIT_SHARED_DATASETS", REPO.parent / "shared" / "datasets"))

# The suite runs in parallel (pytest-xdist, `-n auto` in pyproject.toml): one worker per
# physical core, up to 4, and each worker's share of the cores as its thread count. Two
# workers of 2 threads each on 2 cores would oversubscribe them, and OpenMP threads spinning
# at a barrier for a descheduled sibling run PyTorch several times slower (speed/perf.py).
MAX_WORKERS = 4


def pytest_configure(config) -> None:
    """Threads for this test process and the subprocesses its tests start (the CLI and the
    examples inherit ``OMP_NUM_THREADS``; cnnkit's engine then keeps it). The xdist controller
    sets nothing: its workers would inherit it."""
    worker = getattr(config, "workerinput", None)
    if worker is None and config.getoption("numprocesses", None):
        return  # the controller: runs no test
    if "OMP_NUM_THREADS" in os.environ:
        threads = int(os.environ["OMP_NUM_THREADS"])  # the user's own choice
    else:
        workers = int(worker["workercount"]) if worker else 1
        threads = max(1, physical_cores() // workers)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto``: one worker per physical core, at most MAX_WORKERS (memory: ~1-2 GB each)."""
    return max(1, min(physical_cores(), MAX_WORKERS))


def pytest_collection_modifyitems(config, items) -> None:
    """Slow tests first, so that the workers share them out one by one (``--maxschedchunk 1``)
    instead of one worker running the longest at the end while the others sit idle."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable sort


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
