"""``Dataset``: what Keras's ``image_dataset_from_directory`` returns, for tutorial code.

Iterating yields what a ``tf.data.Dataset`` yields there: ``(x, y)`` batches with ``x``
float32 channels-last ``(batch, H, W, C)`` in 0..255 (uint8 for ``interpolation='nearest'``,
as TensorFlow gives) and ``y`` by ``label_mode`` (``int``: int32 ``(batch,)``,
``categorical``: float32 one-hot, ``binary``: float32 ``(batch, 1)``; ``None``: only ``x``).
They are torch tensors (``.numpy()``, ``.shape``, indexing work as on TF's, and NumPy's
functions take them: ``ArrayTensor``), so cnnkit layers can be called on them.

Underneath, the whole set is one uint8 N×C×H×W tensor. The methods tutorials call keep
it that way where they can: ``take``/``skip`` slice it, ``batch``/``unbatch`` change
the batch size, ``shuffle`` reorders batches, ``cache``/``prefetch`` do nothing (the data
is in memory already). ``model.fit(ds)`` then trains on the tensors directly, as fast as
on arrays. ``map(fn)`` is applied to each batch when iterating; a mapped dataset (and
whatever is chained after the map) is streamed to the model batch by batch.
"""

from __future__ import annotations

import itertools
from typing import Callable

import torch
import torch.nn.functional as F

__all__ = ["Dataset", "TensorSource", "ArrayTensor", "AUTOTUNE"]

from . import AUTOTUNE  # tf.data.AUTOTUNE: buffer sizes are ignored here


def _to_numpy(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().numpy()
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_numpy(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _to_numpy(v) for k, v in obj.items()}
    return obj


class ArrayTensor(torch.Tensor):
    """A torch tensor that NumPy's functions take as well (``np.min(x)``, ``np.mean(x)``),
    as they take TensorFlow's eager tensors; torch ops on it give ``ArrayTensor`` too."""

    def __array_function__(self, func, types, args, kwargs):
        return func(*_to_numpy(args), **_to_numpy(kwargs))

    def __array__(self, dtype=None, copy=None):
        arr = self.detach().cpu().numpy()
        return arr.astype(dtype, copy=False) if dtype is not None else arr


class TensorSource:
    """What ``fit``/``evaluate``/``predict`` read from an un-mapped ``Dataset``: the
    images (uint8 N×C×H×W), labels (int64 class indices or None) and class names."""

    def __init__(self, images, labels, class_names, batch_size):
        self.images, self.labels = images, labels
        self.class_names = list(class_names) if class_names else None
        self.batch_size = batch_size

    def __len__(self) -> int:
        return len(self.images)


class _EngineBatches(torch.utils.data.IterableDataset):
    """A mapped ``Dataset``'s batches in the engine's layout: N×C×H×W, int64 labels."""

    def __init__(self, ds: "Dataset"):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __iter__(self):
        for item in self.ds:
            x, rest = (item[0], item[1:]) if isinstance(item, tuple) else (item, ())
            x = torch.as_tensor(x).as_subclass(torch.Tensor)
            if x.ndim != 4:
                raise ValueError(f"the dataset's elements are {tuple(x.shape)}; the model "
                                 "trains on batches (batch, H, W, C): call .batch(32)")
            x = x.permute(0, 3, 1, 2)
            rest = [torch.as_tensor(r).as_subclass(torch.Tensor) for r in rest]
            rest = [r.long() if not r.is_floating_point() else r for r in rest]
            yield (x, *rest) if rest else x


class _Loader(torch.utils.data.DataLoader):
    """The engine's view of a mapped Dataset; 0 batches means 'not known' (after filter,
    unbatch, repeat), which the progress bar shows as unknown."""

    def __len__(self) -> int:
        try:
            return len(self.dataset)
        except TypeError:
            return 0


class Dataset:
    """Batches of images from memory, with the ``tf.data.Dataset`` methods tutorials use.

    images: uint8 N×C×H×W; labels: int64 (N,) class indices or None; label_mode: how
    ``y`` is handed out; batch_size: None yields single images; shuffle: draw a new
    order each iteration (from ``seed``); class_names, file_paths: as Keras sets them.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None, *,
                 label_mode: str | None = "int", class_names=None, file_paths=None,
                 batch_size: int | None = 32, shuffle: bool = False, seed: int | None = None,
                 x_dtype: torch.dtype = torch.float32, num_classes: int | None = None):
        self._images, self._labels = images, labels
        self._label_mode = label_mode if labels is not None else None
        self.class_names = list(class_names) if class_names is not None else None
        self.file_paths = list(file_paths) if file_paths is not None else None
        self._batch_size = batch_size
        self._drop_remainder = False
        self._shuffle = shuffle
        self._shuffle_batches = False
        self._generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
        self._x_dtype = x_dtype
        self._num_classes = num_classes or (len(self.class_names) if self.class_names else None)
        self._stages: list[tuple] = []  # ops after the first map, applied while iterating

    # -- what Keras users read ---------------------------------------------------------
    @property
    def element_spec(self):
        c, h, w = self._images.shape[1:]
        shape = (self._batch_size, h, w, c) if self._batch_size else (h, w, c)
        return shape, self._label_mode

    def __len__(self) -> int:
        n = self._base_len()
        for stage in self._stages:
            n = _stage_len(stage, n)
            if n is None:
                raise TypeError("the length of this dataset is unknown (a stage after "
                                "map() changes the element count in a way it cannot tell)")
        return n

    def cardinality(self) -> int:
        return len(self)

    def __repr__(self) -> str:
        c, h, w = self._images.shape[1:]
        mapped = f", {len(self._stages)} stages after map" if self._stages else ""
        return (f"Dataset({len(self._images)} images {h}×{w}×{c}, batch_size="
                f"{self._batch_size}, label_mode={self._label_mode!r}{mapped})")

    # -- iteration -----------------------------------------------------------------------
    def __iter__(self):
        items = self._base_iter()
        for stage in self._stages:
            items = _apply_stage(stage, items, self._generator)
        return iter(items)

    def as_numpy_iterator(self):
        for item in self:
            yield tuple(_numpy(t) for t in item) if isinstance(item, tuple) else _numpy(item)

    def _base_len(self) -> int:
        n = len(self._images)
        if self._batch_size is None:
            return n
        return n // self._batch_size if self._drop_remainder else -(-n // self._batch_size)

    def _base_iter(self):
        n = len(self._images)
        order = torch.randperm(n, generator=self._generator) if self._shuffle else torch.arange(n)
        if self._batch_size is None:
            return (self._element(i) for i in order.tolist())
        chunks = list(torch.split(order, self._batch_size))
        if self._drop_remainder and chunks and len(chunks[-1]) < self._batch_size:
            chunks.pop()
        if self._shuffle_batches:
            chunks = [chunks[i] for i in torch.randperm(len(chunks), generator=self._generator)]
        return (self._element(idx) for idx in chunks)

    def _element(self, idx):
        """Rows ``idx`` (or one row) in Keras's layout and dtypes."""
        x = self._images[idx]
        x = x.movedim(-3, -1).to(self._x_dtype).as_subclass(ArrayTensor)  # (..., H, W, C)
        if self._label_mode is None:
            return x
        y = self._labels[idx]
        if self._label_mode == "int":
            y = y.to(torch.int32)
        elif self._label_mode == "categorical":
            y = F.one_hot(y, self._num_classes).to(torch.float32)
        else:  # binary
            y = y.to(torch.float32).unsqueeze(-1)
        return x, y.as_subclass(ArrayTensor)

    # -- tf.data methods -----------------------------------------------------------------
    def _copy(self) -> "Dataset":
        new = object.__new__(Dataset)
        new.__dict__.update(self.__dict__)
        new._stages = list(self._stages)
        new._generator = torch.Generator()
        new._generator.set_state(self._generator.get_state())
        return new

    def _rows(self, lo: int, hi: int | None) -> "Dataset":
        new = self._copy()
        new._images = self._images[lo:hi]
        new._labels = self._labels[lo:hi] if self._labels is not None else None
        if self.file_paths is not None:
            new.file_paths = self.file_paths[lo:hi]
        return new

    def take(self, count: int) -> "Dataset":
        """The first ``count`` elements (batches, or images when unbatched); -1 means all."""
        if count < 0:
            return self._copy()
        if self._stages:
            return self._staged(("take", int(count)))
        per = self._batch_size or 1
        return self._rows(0, int(count) * per)

    def skip(self, count: int) -> "Dataset":
        """All but the first ``count`` elements; -1 skips everything."""
        if self._stages:
            return self._staged(("skip", int(count)))
        if count < 0:
            return self._rows(0, 0)
        return self._rows(int(count) * (self._batch_size or 1), None)

    def batch(self, batch_size: int, drop_remainder: bool = False, **ignored) -> "Dataset":
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if self._stages or self._batch_size is not None:
            return self._staged(("batch", int(batch_size), bool(drop_remainder)))
        new = self._copy()
        new._batch_size, new._drop_remainder = int(batch_size), bool(drop_remainder)
        return new

    def unbatch(self) -> "Dataset":
        if self._stages:
            return self._staged(("unbatch",))
        if self._batch_size is None:
            raise ValueError("unbatch() needs a batched dataset")
        new = self._copy()
        new._batch_size, new._drop_remainder = None, False
        return new

    def rebatch(self, batch_size: int, drop_remainder: bool = False) -> "Dataset":
        return self.unbatch().batch(batch_size, drop_remainder)

    def shuffle(self, buffer_size: int = 1024, seed: int | None = None,
                reshuffle_each_iteration: bool = True, **ignored) -> "Dataset":
        """A new order each iteration: of the batches when batched (as tf.data shuffles
        the elements it is given), of the images when not. Training reshuffles the images
        every epoch anyway."""
        if self._stages:
            return self._staged(("shuffle", int(buffer_size)))
        new = self._copy()
        if seed is not None:
            new._generator = torch.Generator().manual_seed(int(seed))
        if self._batch_size is None:
            new._shuffle = True
        else:
            new._shuffle_batches = True
        return new

    def cache(self, filename: str = "", **ignored) -> "Dataset":
        """Nothing to do: the decoded images are in memory (and cached on disk)."""
        return self

    def prefetch(self, buffer_size: int = AUTOTUNE, **ignored) -> "Dataset":
        """Nothing to do: batches are slices of tensors in memory."""
        return self

    def repeat(self, count: int | None = None) -> "Dataset":
        return self._staged(("repeat", count))

    def map(self, map_func: Callable, num_parallel_calls=None, deterministic=None,
            **ignored) -> "Dataset":
        """Apply ``map_func`` to each element when iterating: ``map_func(x, y)`` for
        ``(x, y)`` elements, ``map_func(x)`` otherwise (as tf.data unpacks tuples)."""
        return self._staged(("map", map_func))

    def filter(self, predicate: Callable) -> "Dataset":
        return self._staged(("filter", predicate))

    def _staged(self, stage: tuple) -> "Dataset":
        new = self._copy()
        new._stages.append(stage)
        return new

    # -- what the Model reads --------------------------------------------------------------
    @property
    def is_mapped(self) -> bool:
        return bool(self._stages)

    def eval_source(self):
        """The tensors themselves when nothing was mapped (the fast path), else the
        batches in the engine's layout (a DataLoader over them)."""
        if self._stages:
            return _Loader(_EngineBatches(self), batch_size=None)
        if self._batch_size is None:
            raise ValueError("this dataset yields single images; the model needs batches: "
                             "call .batch(32) on it")
        labels = self._labels if self._label_mode is not None else None
        return TensorSource(self._images, labels, self.class_names, self._batch_size)

    def flow_spec(self, batch_size=None, augment=None):
        """What ``Model.fit`` trains on: the dataset's own batch size wins, as in Keras."""
        source = self.eval_source()
        return source, None, getattr(source, "batch_size", None) or batch_size, augment


def _numpy(t):
    return t.numpy() if isinstance(t, torch.Tensor) else t


def _call(fn, item):
    return fn(*item) if isinstance(item, tuple) else fn(item)


def _stack(items: list):
    if isinstance(items[0], tuple):
        return tuple(torch.stack([torch.as_tensor(it[k]) for it in items])
                     for k in range(len(items[0])))
    return torch.stack([torch.as_tensor(it) for it in items])


def _rows_of(item):
    if isinstance(item, tuple):
        return (tuple(parts) for parts in zip(*item))
    return iter(item)


def _stage_len(stage, n: int) -> int | None:
    kind = stage[0]
    if kind == "map" or kind == "shuffle":
        return n
    if kind == "take":
        return min(n, stage[1])
    if kind == "skip":
        return max(0, n - stage[1]) if stage[1] >= 0 else 0
    if kind == "batch":
        return n // stage[1] if stage[2] else -(-n // stage[1])
    return None  # unbatch, filter, repeat: not known without iterating


def _apply_stage(stage, items, generator):
    kind = stage[0]
    if kind == "map":
        return (_call(stage[1], it) for it in items)
    if kind == "filter":
        return (it for it in items if bool(_call(stage[1], it)))
    if kind == "take":
        return itertools.islice(items, stage[1])
    if kind == "skip":
        return itertools.islice(items, stage[1], None) if stage[1] >= 0 else iter(())
    if kind == "unbatch":
        return (row for it in items for row in _rows_of(it))
    if kind == "batch":
        return _batches(items, stage[1], stage[2])
    if kind == "shuffle":
        return _buffer_shuffle(items, stage[1], generator)
    if kind == "repeat":
        return _repeat(items, stage[1])
    raise AssertionError(kind)


def _batches(items, size: int, drop_remainder: bool):
    items = iter(items)
    while True:
        chunk = list(itertools.islice(items, size))
        if not chunk or (drop_remainder and len(chunk) < size):
            return
        yield _stack(chunk)


def _buffer_shuffle(items, buffer_size: int, generator):
    """tf.data's shuffle: a buffer of ``buffer_size`` elements, a random one out at a time."""
    buf = []
    for it in items:
        buf.append(it)
        if len(buf) >= buffer_size:
            yield buf.pop(int(torch.randint(len(buf), (1,), generator=generator)))
    while buf:
        yield buf.pop(int(torch.randint(len(buf), (1,), generator=generator)))


def _repeat(items, count):
    first = list(items)
    for _ in (range(count) if count is not None and count >= 0 else itertools.count()):
        yield from first
