"""Datasets, Keras-style: ``cnnkit.datasets.load('cifar10')``, ``cnnkit.datasets.cifar10.load_data()``,
``cnnkit.datasets.image_dataset_from_directory(...)``; multi-label data:
``cnnkit.datasets.multilabel_dataset_from_csv(...)`` / ``multilabel_dataset_from_directory``.

The implementation lives in ``cnnkit.data`` (datasets, folder, check, streaming); this
module is the public face.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data.check import CheckReport, check_dataset
from .data.datasets import (DatasetChecksumWarning, DatasetInfo, DatasetNotFoundError,
                            available, class_names, info, load)
from .data.folder import ImageDataset, image_dataset_from_directory
from .data.multilabel import (MultiLabelDataset, multilabel_dataset_from_csv,
                              multilabel_dataset_from_directory)
from .data.streaming import stream_from_directory

__all__ = ["load", "class_names", "info", "available", "DatasetInfo", "DatasetNotFoundError",
           "DatasetChecksumWarning", "image_dataset_from_directory", "ImageDataset",
           "stream_from_directory", "check_dataset", "CheckReport", "MultiLabelDataset",
           "multilabel_dataset_from_csv", "multilabel_dataset_from_directory",
           "mnist", "fashion_mnist", "cifar10", "cifar100", "bundled"]


# Keras's arrays (keras/src/datasets/*.py): MNIST-like images N×28×28 without a channel
# axis and uint8 labels (N,); CIFAR labels (N, 1), uint8 for CIFAR-10, int64 for CIFAR-100.
_KERAS_LABELS = {"mnist": ("uint8", False), "fashion_mnist": ("uint8", False),
                 "cifar10": ("uint8", True), "cifar100": ("int64", True)}


def _keras_arrays(name: str, x: np.ndarray, y: np.ndarray):
    dtype, column = _KERAS_LABELS[name]
    if x.ndim == 4 and x.shape[-1] == 1 and not column:
        x = x[..., 0]
    y = np.asarray(y).astype(dtype).reshape((-1, 1) if column else (-1,))
    return x, y


def _read_keras_npz(path: Path, split: str | None):
    """Keras's own ``mnist.npz`` (x_train, y_train, x_test, y_test)."""
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in z.files]
        if missing:
            raise ValueError(f"{path}: not Keras's mnist.npz (lacks {missing})")
        pairs = {s: (np.asarray(z[f"x_{s}"], np.uint8), np.asarray(z[f"y_{s}"]))
                 for s in ("train", "test")}
    return pairs[split] if split else (pairs["train"], pairs["test"])


class _Named:
    """``cnnkit.datasets.mnist.load_data()``, as ``keras.datasets.mnist.load_data()``:
    the same tuple of arrays, shapes and dtypes as Keras (``cnnkit.datasets.load`` is
    cnnkit's own spelling: channel axis always, int64 labels (N,))."""

    def __init__(self, name: str):
        self.name = name

    def load_data(self, path=None, label_mode: str = "fine", *, split: str | None = None,
                  **kwargs):
        """``(x_train, y_train), (x_test, y_test)`` as Keras returns them.

        path: a local folder of the canonical files (MNIST's IDX files, CIFAR's batches
        or archive; nothing is downloaded), or Keras's own ``mnist.npz``. Without it the
        files come from cnnkit's cache or a download (see ``cnnkit.datasets.load``).
        split: ``'train'`` or ``'test'`` returns only that ``(x, y)`` pair, e.g. for a
        folder that holds only the training files.
        """
        if self.name not in _KERAS_LABELS:  # the bundled sample: cnnkit's own layout
            return load(self.name, path=path, split=split, **kwargs)
        if self.name == "cifar100":
            kwargs["label_mode"] = label_mode
        if path is not None and Path(path).is_file() and str(path).endswith(".npz"):
            out = _read_keras_npz(Path(path), split)
        else:
            out = load(self.name, path=path, split=split, **kwargs)
        if split is not None:
            return _keras_arrays(self.name, *out)
        return tuple(_keras_arrays(self.name, *pair) for pair in out)

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
