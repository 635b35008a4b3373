"""The fallback for folders too big for memory: decode per batch in DataLoader workers.

The in-memory path (``image_dataset_from_directory`` + tensor slicing) is faster whenever
the decoded images fit in memory (50,000 CIFAR images are 150 MB). Use this when they do
not: each worker process decodes its share of every batch with Pillow.

``stream_from_directory(...)`` returns a ``StreamingLoader``: iterate it for
``(images uint8 N×C×H×W, labels int64 N)`` batches. It is a ``torch.utils.data.DataLoader``
(so ``fit`` takes it like any other) with ``class_names``, ``num_samples``, ``labels`` and
``set_epoch(e)``: the shuffle order is a function of ``seed`` and the epoch, which advances
at each pass. A file that fails to decode is dropped from its batch with a warning (from
the worker); run ``cnnkit check`` first to find them.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ._warn import warn
from .decode import COLOR_MODES, decode_image
from .folder import plan_subset, stratified_split
from .layout import scan_folder

__all__ = ["FileImageDataset", "StreamingLoader", "EpochSampler", "stream_from_directory",
           "collate_skip_bad"]


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
        except Exception as e:  # noqa: BLE001 - a bad file is dropped by the collate function
            warn(f"streaming: skipped {self.paths[i]}: {type(e).__name__}: {e}")
            return None
        chw = np.ascontiguousarray(arr.transpose(2, 0, 1))
        if not chw.flags.writeable:  # a view of Pillow's buffer: torch wants its own copy
            chw = chw.copy()
        return torch.from_numpy(chw), self.labels[i]


def collate_skip_bad(batch):
    """Stack the good samples into (uint8 N×C×H×W, int64 N); bad ones (None) are dropped."""
    good = [b for b in batch if b is not None]
    if not good:
        return torch.empty(0, dtype=torch.uint8), torch.empty(0, dtype=torch.int64)
    return torch.stack([g[0] for g in good]), torch.stack([g[1] for g in good])


class EpochSampler(Sampler):
    """Indices in order, or shuffled by a permutation drawn from (seed, epoch); the epoch
    advances by one at each pass, so every epoch differs and a run repeats exactly."""

    def __init__(self, n: int, shuffle: bool = True, seed: int | None = None):
        self.n, self.shuffle = n, shuffle
        self.seed = 0 if seed is None else int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        epoch, self.epoch = self.epoch, self.epoch + 1
        if not self.shuffle:
            return iter(range(self.n))
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())


class StreamingLoader(DataLoader):
    """A ``DataLoader`` of ``(uint8 N×C×H×W, int64 N)`` batches decoded by worker processes,
    with ``class_names``, ``labels``, ``num_samples`` and ``set_epoch``."""

    def __init__(self, dataset: FileImageDataset, batch_size: int = 32, shuffle: bool = True,
                 seed: int | None = None, num_workers: int | None = None,
                 drop_last: bool = False, pin_memory: bool = False):
        if num_workers is None:
            num_workers = min(8, os.cpu_count() or 1)
        super().__init__(dataset, batch_size=int(batch_size),
                         sampler=EpochSampler(len(dataset), shuffle, seed),
                         num_workers=num_workers, collate_fn=collate_skip_bad,
                         drop_last=drop_last, pin_memory=pin_memory,
                         persistent_workers=num_workers > 0)
        self.class_names = dataset.class_names

    @property
    def num_samples(self) -> int:
        return len(self.dataset)

    @property
    def labels(self) -> torch.Tensor:
        return self.dataset.labels

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)


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
