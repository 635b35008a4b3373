"""cnnkit.datasets.load: named datasets from local canonical files, the bundled sample,
class names, and the errors when files are missing."""

from __future__ import annotations

import shutil
import tarfile
import warnings

import numpy as np
import pytest
from data_builders import build_cifar_dataset, build_idx_dataset

import cnnkit.datasets as datasets
from cnnkit.data.datasets import DatasetChecksumWarning, DatasetNotFoundError


@pytest.fixture(autouse=True)
def _quiet_checksums():
    # Test files are not the published ones: their checksum warning is tested on its own.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetChecksumWarning)
        yield


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_dataset_from_local_folder_reads_back_exactly(tmp_path, name):
    arrays = build_idx_dataset(tmp_path / name)
    (x, y), (xt, yt) = datasets.load(name, path=tmp_path / name)
    assert x.shape == (12, 28, 28, 1) and x.dtype == np.uint8 and y.dtype == np.int64
    assert np.array_equal(x, arrays["train"][0]) and np.array_equal(y, arrays["train"][1])
    assert np.array_equal(xt, arrays["test"][0]) and np.array_equal(yt, arrays["test"][1])


def test_split_argument_reads_one_split(tmp_path):
    arrays = build_idx_dataset(tmp_path, splits=("train",))
    x, y = datasets.load("mnist", path=tmp_path, split="train")
    assert np.array_equal(x, arrays["train"][0])
    with pytest.raises(ValueError, match="split"):
        datasets.load("mnist", path=tmp_path, split="validation")


def test_missing_test_files_say_so_and_point_to_split_train(tmp_path):
    build_idx_dataset(tmp_path, splits=("train",))
    with pytest.raises(DatasetNotFoundError) as e:
        datasets.load("mnist", path=tmp_path)
    msg = str(e.value)
    assert "t10k-images-idx3-ubyte.gz" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    assert "split='train'" in msg and "test files are missing" in msg


def test_local_files_with_another_checksum_warn_but_load(tmp_path):
    build_idx_dataset(tmp_path)
    with pytest.warns(DatasetChecksumWarning, match="published"):
        datasets.load("mnist", path=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DatasetChecksumWarning)
        datasets.load("mnist", path=tmp_path, verify=False)


@pytest.mark.parametrize("layout", ["folder", "flat", "tar"])
def test_cifar10_from_local_batches_folder_or_archive(tmp_path, layout):
    arrays = build_cifar_dataset(tmp_path / "src")
    base = tmp_path / "src" / "cifar-10-batches-py"
    root = tmp_path / "given"
    if layout == "folder":
        shutil.copytree(tmp_path / "src", root)
    elif layout == "flat":
        shutil.copytree(base, root)
    else:
        root.mkdir()
        with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
            tar.add(base, arcname="cifar-10-batches-py")
    (x, y), (xt, yt) = datasets.load("cifar10", path=root)
    assert x.shape == (15, 32, 32, 3) and xt.shape == (3, 32, 32, 3)
    assert np.array_equal(x, arrays["train"][0]) and np.array_equal(y, arrays["train"][1])
    assert np.array_equal(xt, arrays["test"][0]) and np.array_equal(yt, arrays["test"][1])


def test_cifar100_fine_and_coarse_labels(tmp_path):
    arrays = build_cifar_dataset(tmp_path, "cifar100")
    (x, y), _ = datasets.load("cifar100", path=tmp_path)
    assert np.array_equal(y, arrays["train"][1])
    (_, yc), (_, ytc) = datasets.load("cifar100", path=tmp_path, label_mode="coarse")
    assert np.array_equal(yc, arrays["train_coarse"]) and np.array_equal(ytc, arrays["test_coarse"])
    assert len(datasets.class_names("cifar100")) == 100
    assert len(datasets.class_names("cifar100", "coarse")) == 20


def test_class_names_and_info():
    assert datasets.class_names("cifar10")[:3] == ["airplane", "automobile", "bird"]
    assert datasets.class_names("mnist") == [str(i) for i in range(10)]
    assert datasets.class_names("Fashion-MNIST")[9] == "Ankle boot"
    assert datasets.info("cifar10").image_shape == (32, 32, 3)
    assert datasets.cifar10.class_names == datasets.class_names("cifar10")
    assert set(datasets.available()) >= {"mnist", "fashion_mnist", "cifar10", "cifar100",
                                         "bundled"}
    with pytest.raises(ValueError, match="unknown dataset"):
        datasets.load("imagenet")


def test_bundled_sample_loads_without_files():
    (x, y), (xt, yt) = datasets.bundled.load_data()
    assert x.ndim == 4 and x.shape[1:] == (28, 28, 1) and x.dtype == np.uint8
    assert y.dtype == np.int64 and len(x) == len(y) and len(xt) == len(yt)
    assert set(np.unique(y)) <= set(range(10))


def test_offline_with_nothing_cached_says_which_files_to_put_where(private_cache, monkeypatch):
    monkeypatch.setenv("CNNKIT_OFFLINE", "1")
    with pytest.raises(DatasetNotFoundError) as e:
        datasets.load("mnist")
    msg = str(e.value)
    where = private_cache / "datasets" / "mnist"
    assert str(where) in msg and "train-images-idx3-ubyte.gz" in msg
    assert "f68b3c2dcbeaaa9fbdd348bbdeb94873" in msg and "path=" in msg
    with pytest.raises(DatasetNotFoundError, match="cifar-10-python.tar.gz"):
        datasets.load("cifar10", download=False, cache_dir=private_cache)


def test_files_dropped_into_the_cache_are_used(private_cache, monkeypatch):
    monkeypatch.setenv("CNNKIT_OFFLINE", "1")
    arrays = build_idx_dataset(private_cache / "datasets" / "mnist")
    (x, _), _ = datasets.load("mnist")
    assert np.array_equal(x, arrays["train"][0])
    # cache_dir= wins over the environment variable
    other = private_cache.parent / "other-cache"
    with pytest.raises(DatasetNotFoundError, match=str(other)):
        datasets.load("mnist", cache_dir=other)


def test_a_corrupt_local_file_is_an_error_not_garbage(tmp_path):
    build_idx_dataset(tmp_path)
    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(ValueError, match="train-images"):
        datasets.load("mnist", path=tmp_path)
