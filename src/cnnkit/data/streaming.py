"""The fallback for folders too big for memory: decode per batch in DataLoader workers.

The in-memory path (``image_dataset_from_directory`` + tensor slicing) is faster whenever
the decoded images fit in memory (50,000 CIFAR images are 150 MB). Use this when they do
not: each worker process decodes its share of every batch with Pillow.

``stream_from_directory(...)`` returns a ``StreamingLoader``: iterate it for
``(images uint8 N×C×H×W, labels int64 N)`` batches; it has ``class_names``,
``batch_size``, ``num_samples``, ``labels``, ``len()`` (batches per epoch) and
``set_epoch(e)`` (the shuffle order is a function of ``seed`` and the epoch). Files that
fail to decode are dropped from their batch, counted in ``loader.skipped`` and named in one
warning per epoch; run ``cnnkit check`` first to find them.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ._warn import warn
from .decode import COLOR_MODES, decode_image
from .folder import plan_subset, stratified_split
from .layout import scan_folder

__all__ = ["FileImageDataset", "StreamingLoader", "stream_from_directory"]


class FileImageDataset(Dataset):
    """Files + labels -> ``(uint8 C×H×W tensor, label)``, or ``None`` for a bad file."""

    def __init__(self, paths: list[str], labels, class_names: list[str],
                 image_size: tuple[int, int], color_mode: str = "rgb",
                 interpolation: str = "bilinear", crop_to_aspect_ratio: bool = False):
        self.paths = list(paths)
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        self.class_names = list(class_names)
        self.kwargs = dict(color_mode=color_mode, size=tuple(image_size),
                           interpolation=interpolation,
                           crop_to_aspect_ratio=crop_to_aspect_ratio)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            arr = decode_image(self.paths[i], **self.kwargs)  # H×W×C
        except Exception:  # noqa: BLE001 - a bad file is dropped by the collate function
            return None
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))), self.labels[i]


def collate_skip_bad(batch):
    """Stack the good samples; the number dropped rides along as the third item."""
    good = [b for b in batch if b is not None]
    bad = len(batch) - len(good)
    if not good:
        return torch.empty(0, dtype=torch.uint8), torch.empty(0, dtype=torch.int64), bad
    return torch.stack([g[0] for g in good]), torch.stack([g[1] for g in good]), bad


class StreamingLoader:
    """Iterable of ``(uint8 N×C×H×W, int64 N)`` batches over files decoded by workers."""

    def __init__(self, dataset: FileImageDataset, batch_size: int = 32, shuffle: bool = True,
                 seed: int | None = None, num_workers: int | None = None,
                 drop_last: bool = False, pin_memory: bool = False):
        self.dataset = dataset
        self.class_names = dataset.class_names
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = 0 if seed is None else int(seed)
        self.drop_last = drop_last
        self.epoch = 0
        self.skipped = 0
        if num_workers is None:
            num_workers = min(8, os.cpu_count() or 1)
        self.num_workers = num_workers
        self.pin_memory = pin_memory

    @property
    def num_samples(self) -> int:
        return len(self.dataset)

    @property
    def labels(self) -> torch.Tensor:
        return self.dataset.labels

    def __len__(self) -> int:
        n, b = len(self.dataset), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _loader(self) -> DataLoader:
        order = None
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(len(self.dataset), generator=g).tolist()
        return DataLoader(self.dataset, batch_size=self.batch_size, sampler=order,
                          num_workers=self.num_workers, collate_fn=collate_skip_bad,
                          drop_last=self.drop_last, pin_memory=self.pin_memory,
                          persistent_workers=False)

    def __iter__(self):
        bad = 0
        for images, labels, dropped in self._loader():
            bad += dropped
            if len(labels):
                yield images, labels
        self.epoch += 1
        if bad:
            self.skipped = bad
            warn(f"streaming: {bad} files could not be decoded and were left out of their "
                 "batches; run `cnnkit check` on the folder to list them")


def stream_from_directory(directory: str | os.PathLike, image_size: tuple[int, int], *,
                          batch_size: int = 32, color_mode: str = "rgb", shuffle: bool = True,
                          seed: int | None = None, validation_split: float | None = None,
                          subset: str | None = None, interpolation: str = "bilinear",
                          crop_to_aspect_ratio: bool = False, num_workers: int | None = None,
                          drop_last: bool = False, pin_memory: bool = False,
                          class_names: list[str] | None = None, follow_links: bool = False):
    """A ``StreamingLoader`` (or a pair for ``subset='both'``) over an image folder.

    Same folder layouts, subsets and stratified seeded split as
    ``image_dataset_from_directory``; ``image_size`` is required since a batch needs one
    size.
    """
    if image_size is None:
        raise ValueError("stream_from_directory needs image_size=(H, W): a batch needs one size")
    if color_mode not in COLOR_MODES:
        raise ValueError(f"color_mode must be one of {sorted(COLOR_MODES)}, got {color_mode!r}")
    layout = scan_folder(directory, class_names, follow_links)
    loaders = []
    for split, part in plan_subset(layout, subset, validation_split):
        entries = layout.files[split]
        paths = [e.path for e in entries]
        labels = np.array([e.label for e in entries], dtype=np.int64)
        if part != "all":
            train_idx, val_idx = stratified_split(labels, validation_split, seed)
            idx = train_idx if part == "training" else val_idx
            paths, labels = [paths[i] for i in idx], labels[idx]
        ds = FileImageDataset(paths, labels, layout.class_names, image_size, color_mode,
                              interpolation, crop_to_aspect_ratio)
        is_train = part != "validation" and split in ("all", "train")
        loaders.append(StreamingLoader(ds, batch_size, shuffle and is_train, seed,
                                       num_workers, drop_last and is_train, pin_memory))
    return tuple(loaders) if subset == "both" else loaders[0]
