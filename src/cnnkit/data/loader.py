"""In-memory batches: arrays -> tensors, then index slices per batch.

The whole dataset lives in one uint8 (or float) tensor, on the training device when it fits;
an epoch is a permutation of indices and every batch is one gather. No per-sample Python.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["as_tensors", "as_images", "as_labels", "InMemoryLoader", "LayoutError"]
# (a run's resumable, rank-sharded loader is cnnkit.run.loader.ResumableLoader)


class LayoutError(ValueError):
    """Data whose shape does not match the model's declared input."""


def _fmt(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def as_images(x, expected: tuple | None = None, source_layout: str = "auto") -> torch.Tensor:
    """Images as an N×C×H×W tensor (uint8 stays uint8, anything else becomes float32).

    ``expected`` is the model's input in torch layout, (C, H, W) or (F,), when known; it
    decides whether the data is NHWC (numpy/Keras) or NCHW (PyTorch). Without it, numpy arrays
    are read as NHWC and tensors as NCHW. N×H×W grayscale gets a channel axis.
    """
    is_numpy = not isinstance(x, torch.Tensor)
    t = torch.from_numpy(np.ascontiguousarray(x)) if is_numpy else x
    if t.dtype != torch.uint8 and not t.is_floating_point():
        t = t.float()
    elif t.is_floating_point() and t.dtype != torch.float32:
        t = t.float()
    if expected is not None and len(expected) == 1:
        flat = t.reshape(len(t), -1) if t.ndim > 2 else t
        if flat.ndim != 2 or flat.shape[1] != expected[0]:
            raise LayoutError(f"the model expects input (None, {expected[0]}) but the data has "
                              f"shape {_fmt(tuple(t.shape))}")
        return flat
    if t.ndim == 3:
        t = t.unsqueeze(1)  # N×H×W grayscale -> N×1×H×W
    if t.ndim != 4:
        want = f" (the model expects (None, {expected[1]}, {expected[2]}, {expected[0]}))" if expected else ""
        raise LayoutError(f"images must have shape (N, height, width, channels) or (N, channels, "
                          f"height, width); got {_fmt(tuple(t.shape))}{want}")
    shape = tuple(t.shape[1:])
    if expected is not None:
        c, h, w = expected
        if shape == (c, h, w):
            return t
        if shape == (h, w, c):
            return t.permute(0, 3, 1, 2)
        raise LayoutError(f"the model expects input (None, {h}, {w}, {c}) but the data has shape "
                          f"{_fmt(tuple(t.shape))}; resize the images or declare the input shape "
                          "that matches them")
    nhwc = source_layout == "NHWC" or (source_layout == "auto" and is_numpy)
    if nhwc and source_layout == "auto" and shape[0] in (1, 3, 4) and shape[2] not in (1, 3, 4):
        nhwc = False  # clearly channels-first already
    return t.permute(0, 3, 1, 2) if nhwc else t


def as_labels(y) -> torch.Tensor:
    """Labels -> int64 class indices (N,), or float32 targets when they are soft/regression.

    One-hot rows become indices; (N, 1) columns are squeezed.
    """
    if not isinstance(y, torch.Tensor):
        y = np.asarray(y)
        if y.dtype.kind in "USO" and y.size:  # class names, not class indices
            from ..train.sanity import string_labels_error
            raise string_labels_error(y.flat[0])
    t = torch.from_numpy(y) if not isinstance(y, torch.Tensor) else y
    if t.ndim == 2 and t.shape[1] == 1:
        t = t[:, 0]
    if t.ndim == 2:
        t = t.float()
        is_one_hot = bool(((t == 0) | (t == 1)).all()) and bool((t.sum(dim=1) == 1).all())
        return t.argmax(dim=1) if is_one_hot else t
    if t.is_floating_point():
        if bool((t == t.round()).all()) and t.numel() and bool((t >= 0).all()):
            return t.long()
        return t.float()
    return t.long()


def as_tensors(x, y=None, expected: tuple | None = None):
    images = as_images(x, expected)
    if y is None:
        return images, None
    labels = as_labels(y)
    if len(labels) != len(images):
        raise ValueError(f"x has {len(images)} samples but y has {len(labels)}; they must match")
    return images, labels


class InMemoryLoader:
    """Iterate (x, y) batches sliced from tensors; reshuffled each epoch from a generator.

    ``sample_weight`` (N,) travels with the labels when given: batches are then (x, y, w).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None, batch_size: int = 32,
                 shuffle: bool = False, seed: int | None = None, device=None,
                 drop_last: bool = False, sample_weight: torch.Tensor | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        device = torch.device(device) if device is not None else images.device
        self.images = images.to(device)
        self.labels = labels.to(device) if labels is not None else None
        self.sample_weight = sample_weight.to(device) if sample_weight is not None else None
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = torch.Generator()
        self.generator.manual_seed(seed if seed is not None else torch.initial_seed() % 2**63)

    def __len__(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def num_samples(self) -> int:
        return len(self.images)

    def __iter__(self):
        n = len(self.images)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        if order is not None:
            order = order.to(self.images.device)
        for step in range(len(self)):
            lo, hi = step * self.batch_size, min((step + 1) * self.batch_size, n)
            if order is None:
                idx = slice(lo, hi)
            else:
                idx = order[lo:hi]
            yield self._batch(idx)

    def _batch(self, idx):
        """Images (and labels, weights) at ``idx``: x, (x, y) or (x, y, w)."""
        batch = [self.images[idx]]
        if self.labels is not None:
            batch.append(self.labels[idx])
        if self.sample_weight is not None:
            batch.append(self.sample_weight[idx])
        return tuple(batch) if len(batch) > 1 else batch[0]
