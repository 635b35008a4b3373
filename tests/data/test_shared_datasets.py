"""The real datasets in ../shared/datasets (skipped where that folder is absent)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import cnnkit.datasets as datasets
from cnnkit.data.datasets import DatasetChecksumWarning, DatasetNotFoundError

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_shared_mnist_training_split(shared_datasets):
    folder = shared_datasets / "mnist"
    if not folder.is_dir():
        pytest.skip("no mnist folder")
    with warnings.catch_warnings():
        # these are re-compressed copies: same data, other gzip bytes than the published md5
        warnings.simplefilter("ignore", DatasetChecksumWarning)
        x, y = datasets.load("mnist", path=folder, split="train")
        assert x.shape == (60000, 28, 28, 1) and x.dtype == np.uint8
        assert np.bincount(y, minlength=10).tolist() == MNIST_TRAIN_COUNTS
        with pytest.raises(DatasetNotFoundError, match="test files are missing"):
            datasets.load("mnist", path=folder)


@pytest.mark.slow
def test_shared_cifar10_jpeg_folder_loads_and_reloads_from_cache(shared_datasets, monkeypatch):
    folder = shared_datasets / "cifar10-jpeg" / "train"
    if not folder.is_dir():
        pytest.skip("no cifar10-jpeg folder")
    ds = datasets.image_dataset_from_directory(folder)
    assert len(ds) == 50000 and ds.images.shape == (50000, 3, 32, 32) and ds.skipped == []
    assert ds.class_names == datasets.class_names("cifar10")
    assert torch.bincount(ds.labels).tolist() == [5000] * 10
    from cnnkit.data import folder as folder_mod
    monkeypatch.setattr(folder_mod, "_decode_all", None)  # a reload must not decode
    again = datasets.image_dataset_from_directory(folder)
    assert torch.equal(again.images, ds.images)
