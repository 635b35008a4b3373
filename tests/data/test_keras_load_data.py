"""cnnkit.datasets.<name>.load_data() returns Keras's arrays (issue 15, item 10).

Keras's shapes and dtypes are in tests/golden/keras/data/load_data.json (from Keras 3.15.1's
loaders, scripts/keras_golden/record_data.py)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from cnnkit import datasets
from cnnkit.datasets import DatasetNotFoundError

from data_builders import build_cifar_dataset, build_idx_dataset

GOLDEN = json.loads((Path(__file__).resolve().parents[1] / "golden" / "keras" / "data"
                     / "load_data.json").read_text())


def _assert_keras_layout(name, arrays, n_train, n_test):
    (x, y), (xt, yt) = arrays
    want = GOLDEN[name]
    for key, arr, n in (("x_train", x, n_train), ("y_train", y, n_train),
                        ("x_test", xt, n_test), ("y_test", yt, n_test)):
        shape, dtype = want[key]
        assert arr.shape == (n, *shape[1:]), (name, key)
        assert arr.dtype == np.dtype(dtype), (name, key)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_datasets_come_as_keras_gives_them(tmp_path, name):
    arrays = build_idx_dataset(tmp_path, n_train=12, n_test=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", datasets.DatasetChecksumWarning)  # random content
        got = getattr(datasets, name).load_data(path=tmp_path)
    _assert_keras_layout(name, got, 12, 5)
    (x, y), (xt, yt) = got
    assert np.array_equal(x, arrays["train"][0][..., 0]) and np.array_equal(yt, arrays["test"][1])


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_datasets_come_as_keras_gives_them(tmp_path, name):
    arrays = build_cifar_dataset(tmp_path, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", datasets.DatasetChecksumWarning)
        got = getattr(datasets, name).load_data(path=tmp_path)
    n_train, n_test = len(arrays["train"][0]), len(arrays["test"][0])
    _assert_keras_layout(name, got, n_train, n_test)
    (x, y), (xt, yt) = got
    assert np.array_equal(x, arrays["train"][0]) and np.array_equal(y[:, 0], arrays["train"][1])


def test_cifar100_coarse_labels(tmp_path):
    arrays = build_cifar_dataset(tmp_path, "cifar100")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", datasets.DatasetChecksumWarning)
        (_, y), _ = datasets.cifar100.load_data(path=tmp_path, label_mode="coarse")
    assert y.shape[1] == 1 and np.array_equal(y[:, 0], arrays["train_coarse"])


def test_keras_mnist_npz_file_is_read(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    y = np.arange(6, dtype=np.uint8)
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=y, x_test=x[:2], y_test=y[:2])
    (a, b), (c, d) = datasets.mnist.load_data(path=tmp_path / "mnist.npz")
    assert np.array_equal(a, x) and b.dtype == np.uint8 and c.shape == (2, 28, 28)
    np.savez(tmp_path / "other.npz", images=x)
    with pytest.raises(ValueError, match="lacks"):
        datasets.mnist.load_data(path=tmp_path / "other.npz")


def test_training_files_only_says_how_to_load_that_split(tmp_path):
    build_idx_dataset(tmp_path, splits=("train",))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", datasets.DatasetChecksumWarning)
        with pytest.raises(DatasetNotFoundError, match=r"mnist\.load_data\(path=\.\.\., "
                                                       r"split='train'\)"):
            datasets.mnist.load_data(path=tmp_path)
        x, y = datasets.mnist.load_data(path=tmp_path, split="train")
    assert x.shape == (12, 28, 28) and y.dtype == np.uint8


def test_shared_mnist_training_split(shared_datasets):
    folder = shared_datasets / "mnist"
    if not (folder / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("no MNIST training files in the shared datasets")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", datasets.DatasetChecksumWarning)
        x, y = datasets.mnist.load_data(path=folder, split="train")
    shape, dtype = GOLDEN["mnist"]["x_train"]
    assert x.shape == tuple(shape) and x.dtype == np.dtype(dtype)
    assert y.shape == tuple(GOLDEN["mnist"]["y_train"][0]) and y.dtype == np.uint8
    assert set(np.unique(y)) == set(range(10))


def test_bundled_sample_keeps_cnnkit_layout():
    (x, y), _ = datasets.bundled.load_data()
    assert x.shape[1:] == (28, 28, 1) and y.dtype == np.int64
