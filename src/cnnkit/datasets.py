"""Datasets, Keras-style: ``cnnkit.datasets.load('cifar10')``, ``cnnkit.datasets.cifar10.load_data()``,
``cnnkit.datasets.image_dataset_from_directory(...)``.

The implementation lives in ``cnnkit.data`` (datasets, folder, check, streaming); this
module is the public face.
"""

from __future__ import annotations

from .data.check import CheckReport, check_dataset
from .data.datasets import (DatasetChecksumWarning, DatasetInfo, DatasetNotFoundError,
                            available, class_names, info, load)
from .data.folder import ImageDataset, image_dataset_from_directory
from .data.streaming import stream_from_directory

__all__ = ["load", "class_names", "info", "available", "DatasetInfo", "DatasetNotFoundError",
           "DatasetChecksumWarning", "image_dataset_from_directory", "ImageDataset",
           "stream_from_directory", "check_dataset", "CheckReport",
           "mnist", "fashion_mnist", "cifar10", "cifar100", "bundled"]


class _Named:
    """``cnnkit.datasets.mnist.load_data()``, as ``keras.datasets.mnist.load_data()``."""

    def __init__(self, name: str):
        self.name = name

    def load_data(self, path=None, **kwargs):
        """``(x_train, y_train), (x_test, y_test)``; see ``cnnkit.datasets.load``."""
        return load(self.name, path=path, **kwargs)

    @property
    def class_names(self) -> list[str]:
        return class_names(self.name)

    def __repr__(self) -> str:
        return f"cnnkit.datasets.{self.name}"


mnist = _Named("mnist")
fashion_mnist = _Named("fashion_mnist")
cifar10 = _Named("cifar10")
cifar100 = _Named("cifar100")
bundled = _Named("bundled")
