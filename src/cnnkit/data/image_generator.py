"""Keras's ``ImageDataGenerator``, for migrating tutorial code, on cnnkit's batched ops.

    datagen = ImageDataGenerator(rotation_range=20, width_shift_range=0.2,
                                 height_shift_range=0.2, horizontal_flip=True)
    model.fit(datagen.flow(x_train, y_train, batch_size=64), epochs=10)

``flow`` returns a ``DataFlow``: plain attributes ``x``, ``y``, ``batch_size``,
``augment`` (an ``Augment``), ``shuffle``, ``seed``, that ``fit`` recognises and trains on
with in-memory batches and augmentation on whole batches. Iterating a ``DataFlow`` also
works as in Keras (endless ``(x_batch, y_batch)`` numpy batches, N×H×W×C float32), e.g.
to plot a few augmented images.

``rescale`` is applied once, up front (uint8 input with ``rescale=1/255`` is left as uint8:
the model's ``Preprocess`` scales it the same way). Keras's random augmentation draws
differ from ours; the order of a seeded flow and ``flow_from_directory``'s files, split and
batches are Keras's (``directory_flow``). Feature-wise and
sample-wise normalisation, ZCA and ``preprocessing_function`` are not augmentation in
cnnkit: normalisation lives in the model's ``Preprocess`` (mean/std) so prediction applies
it too; those arguments raise with that advice.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .augment import Augment

__all__ = ["ImageDataGenerator", "DataFlow", "from_keras_generator_args"]


def from_keras_generator_args(rotation_range=0.0, width_shift_range=0.0,
                              height_shift_range=0.0, zoom_range=0.0, horizontal_flip=False,
                              vertical_flip=False, shear_range=0.0, brightness_range=None,
                              channel_shift_range=0.0, fill_mode="nearest", cval=0.0,
                              value_scale: float = 1.0 / 255.0, **unsupported) -> Augment:
    """``ImageDataGenerator`` augmentation arguments -> ``Augment``.

    ``value_scale`` converts Keras's pixel units (``channel_shift_range``, ``cval``) to the
    scale the engine augments in: 1/255 when the images are uint8 (the default).
    Shift ranges: a float < 1 is a fraction, >= 1 pixels; an int ``n`` whole pixels in
    (-n, n) as Keras draws them. Zoom: ``z`` -> [1 - z, 1 + z] or a [lo, hi] pair, drawn
    independently for height and width as Keras does.
    """
    if unsupported:
        raise TypeError(f"unsupported ImageDataGenerator arguments: {sorted(unsupported)}")
    flip = ("both" if horizontal_flip and vertical_flip else "horizontal" if horizontal_flip
            else "vertical" if vertical_flip else None)
    shift = (_keras_shift(height_shift_range), _keras_shift(width_shift_range))
    if isinstance(zoom_range, (tuple, list)):
        zoom = (float(zoom_range[0]), float(zoom_range[1]))
    else:
        zoom = float(zoom_range)
    return Augment(flip=flip, rotate=float(rotation_range),
                   shift=shift if shift[0] != shift[1] else shift[0], zoom=zoom,
                   shear=float(shear_range), brightness_range=brightness_range,
                   channel_shift=float(channel_shift_range) * value_scale,
                   fill_mode=fill_mode, fill_value=float(cval) * value_scale,
                   isotropic_zoom=False, value_range=None)


def _keras_shift(r) -> float:
    if isinstance(r, (tuple, list, np.ndarray)):
        # Keras picks one of the listed values with a random sign; the widest is our range.
        return float(np.max(np.abs(r)))
    if isinstance(r, (int, np.integer)) and not isinstance(r, bool) and r >= 1:
        return float(r - 1)  # Keras draws integers from range(r), so at most r - 1 pixels
    return float(r)


class DataFlow:
    """What ``ImageDataGenerator.flow`` returns: data + batch size + augmentation.

    x: images as given (NHWC numpy as in Keras, or an N×C×H×W tensor), already rescaled;
    y: labels (or None); augment: ``Augment`` for float batches in the engine's scale.
    """

    def __init__(self, x, y, batch_size: int = 32, augment: Augment | None = None,
                 shuffle: bool = True, seed: int | None = None, sample_weight=None,
                 class_names=None, output_scale: float = 1.0):
        self.x, self.y = x, y
        self.batch_size = int(batch_size)
        self.augment = augment
        self.shuffle = shuffle
        self.seed = seed
        self.sample_weight = sample_weight
        self.class_names = list(class_names) if class_names is not None else None
        self.class_indices = ({c: i for i, c in enumerate(self.class_names)}
                              if self.class_names else None)
        self._output_scale = output_scale  # engine scale -> Keras's output scale
        self._order = None
        self._pos = 0
        self.total_batches_seen = 0
        self._generator = torch.Generator().manual_seed(0 if seed is None else int(seed))

    @property
    def n(self) -> int:
        return len(self.x)

    def flow_spec(self, batch_size=None, augment=None):
        """What ``fit`` trains on: ``(x, y, batch_size, augment)``.

        x is the dataset object for ``flow_from_directory`` flows (y is then None). The
        flow's batch size wins, as in Keras; an ``augment`` given to ``fit`` as well runs
        after the flow's.
        """
        if getattr(self, "class_mode", None) == "input":
            raise NotImplementedError("fit on a flow with class_mode='input' (the images as "
                                      "their own targets) is not supported; pass class_mode="
                                      "'categorical', 'sparse' or 'binary'")
        x, y = (self.dataset, None) if getattr(self, "dataset", None) is not None else (self.x,
                                                                                        self.y)
        aug = self.augment
        if augment is not None:
            aug = augment if aug is None else _Chain(aug, augment)
        return x, y, self.batch_size or batch_size, aug

    def eval_source(self):
        """What ``evaluate``/``predict``/``validation_data`` read: the images (already
        rescaled) and labels as tensors, without augmentation."""
        if getattr(self, "dataset", None) is not None:
            return self.dataset
        from .dataset import TensorSource
        from .loader import as_tensors
        images, labels = as_tensors(self.x, self.y)
        return TensorSource(images, labels, self.class_names, self.batch_size)

    def __len__(self) -> int:
        """Batches per epoch (as Keras's iterators)."""
        return math.ceil(self.n / self.batch_size)

    def _new_order(self) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.n)
        if self.seed is not None:  # Keras: np.random.seed(seed + total_batches_seen)
            rng = np.random.RandomState(int(self.seed) + self.total_batches_seen)
            return torch.from_numpy(rng.permutation(self.n))
        return torch.randperm(self.n, generator=self._generator)

    def reset(self) -> None:
        """Start the next batch at the beginning of a new epoch (Keras's ``reset``)."""
        self._pos = 0
        self._order = None

    def on_epoch_end(self) -> None:
        self._order = self._new_order()

    def __getitem__(self, index: int):
        """Batch ``index`` of the current epoch's order (Keras's ``iterator[i]``)."""
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of a flow with {len(self)} batches")
        if self._order is None:
            self._order = self._new_order()
        self.total_batches_seen += 1
        return self._batch(self._order[index * self.batch_size:(index + 1) * self.batch_size])

    def __iter__(self):
        return self

    def __next__(self):
        """The next augmented batch, Keras-style: (float32 N×H×W×C numpy, labels)."""
        if self._pos >= self.n:
            self._pos = 0
        if self._pos == 0:  # an epoch starts: a new order, drawn as Keras draws it
            self._order = self._new_order()
        idx = self._order[self._pos:self._pos + self.batch_size]
        self._pos += self.batch_size
        self.total_batches_seen += 1
        return self._batch(idx)

    def _batch(self, idx: torch.Tensor):
        x = _nchw_float(self.x, idx)
        if self.augment is not None:
            x = self.augment(x, self._generator)
        x = (x * self._output_scale).permute(0, 2, 3, 1).numpy()
        if getattr(self, "_targets_are_inputs", False):  # class_mode='input'
            return x, x.copy()
        if self.y is None:
            return x
        y = self.y[idx.numpy()] if isinstance(self.y, np.ndarray) else self.y[idx]
        return x, y

    def __repr__(self) -> str:
        return (f"DataFlow({self.n} images, batch_size={self.batch_size}, "
                f"augment={self.augment!r})")


class _Chain:
    """Two batched augmentations, one after the other."""

    def __init__(self, first, second):
        self.first, self.second = first, second

    def __call__(self, x, generator=None):
        return self.second(self.first(x, generator), generator)

    def __repr__(self) -> str:
        return f"{self.first!r} then {self.second!r}"


def _nchw_float(x, idx: torch.Tensor) -> torch.Tensor:
    """Rows ``idx`` of NHWC numpy / NCHW tensor images -> float N×C×H×W in engine scale."""
    if isinstance(x, torch.Tensor):
        b = x[idx]
        nchw = b if b.ndim == 4 else b.unsqueeze(1)
    else:
        b = np.asarray(x)[idx.numpy()]
        b = b[..., None] if b.ndim == 3 else b
        nchw = torch.from_numpy(np.ascontiguousarray(b)).permute(0, 3, 1, 2)
    return nchw.float() / 255.0 if nchw.dtype == torch.uint8 else nchw.float()


class ImageDataGenerator:
    """Keras's ``ImageDataGenerator`` arguments, cnnkit's batched augmentation."""

    def __init__(self, featurewise_center=False, samplewise_center=False,
                 featurewise_std_normalization=False, samplewise_std_normalization=False,
                 zca_whitening=False, zca_epsilon=1e-6, rotation_range=0.0,
                 width_shift_range=0.0, height_shift_range=0.0, brightness_range=None,
                 shear_range=0.0, zoom_range=0.0, channel_shift_range=0.0,
                 fill_mode="nearest", cval=0.0, horizontal_flip=False, vertical_flip=False,
                 rescale=None, preprocessing_function=None, data_format=None,
                 validation_split=0.0, interpolation_order=1, dtype=None):
        normalising = {"featurewise_center": featurewise_center,
                       "samplewise_center": samplewise_center,
                       "featurewise_std_normalization": featurewise_std_normalization,
                       "samplewise_std_normalization": samplewise_std_normalization,
                       "zca_whitening": zca_whitening}
        used = [k for k, v in normalising.items() if v]
        if used:
            raise NotImplementedError(
                f"ImageDataGenerator({', '.join(used)}): normalisation is part of the model in "
                "cnnkit, so prediction applies it too: give the model mean/std (its "
                "Preprocess) instead, e.g. from x_train.mean((0, 1, 2)) / 255")
        if preprocessing_function is not None:
            raise NotImplementedError(
                "preprocessing_function runs per image in Keras; cnnkit augments whole "
                "batches: pass fit(..., augment=f) with f(x: N×C×H×W float, generator) -> x")
        if data_format not in (None, "channels_last", "channels_first"):
            raise ValueError(f"data_format must be 'channels_last' or 'channels_first', "
                             f"got {data_format!r}")
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
        self.args = dict(rotation_range=rotation_range, width_shift_range=width_shift_range,
                         height_shift_range=height_shift_range, zoom_range=zoom_range,
                         horizontal_flip=horizontal_flip, vertical_flip=vertical_flip,
                         shear_range=shear_range, brightness_range=brightness_range,
                         channel_shift_range=channel_shift_range, fill_mode=fill_mode,
                         cval=cval)
        self.rescale = rescale
        self.validation_split = float(validation_split)
        self.interpolation = "nearest" if interpolation_order == 0 else "bilinear"

    def augment(self, value_scale: float = 1.0 / 255.0) -> Augment | None:
        """The ``Augment`` these arguments describe, for batches in ``value_scale`` units."""
        aug = from_keras_generator_args(**self.args, value_scale=value_scale)
        aug.interpolation = self.interpolation
        return aug if aug.active else None

    def _prepare(self, x):
        """Apply ``rescale`` up front.

        Returns (x for the engine, value_scale: original pixel units -> the engine's float
        values, out_factor: engine values -> what Keras's iterator would hand out).
        """
        r = self.rescale
        is_uint8 = (x.dtype == torch.uint8 if isinstance(x, torch.Tensor)
                    else np.asarray(x).dtype == np.uint8)
        if r is None:
            # uint8 is scaled 1/255 by the model; Keras would hand out raw 0..255 values
            return (x, 1 / 255, 255.0) if is_uint8 else (x, 1.0, 1.0)
        if is_uint8 and math.isclose(r, 1 / 255, rel_tol=1e-6):
            return x, 1 / 255, 1.0
        if isinstance(x, torch.Tensor):
            return x.float() * r, r, 1.0
        return np.asarray(x, dtype=np.float32) * np.float32(r), r, 1.0

    def flow(self, x, y=None, batch_size: int = 32, shuffle: bool = True, sample_weight=None,
             seed: int | None = None, subset: str | None = None, **ignored) -> DataFlow:
        """Wrap arrays for ``fit``: see ``DataFlow``. ``subset`` takes Keras's split
        (validation = the first ``validation_split`` of the arrays, training = the rest)."""
        if subset is not None:
            if subset not in ("training", "validation"):
                raise ValueError(f"subset must be 'training' or 'validation', got {subset!r}")
            if not self.validation_split:
                raise ValueError("flow(subset=...) needs ImageDataGenerator(validation_split=...)")
            cut = int(len(x) * self.validation_split)
            sl = slice(cut, None) if subset == "training" else slice(None, cut)
            x = x[sl]
            y = y[sl] if y is not None else None
            sample_weight = sample_weight[sl] if sample_weight is not None else None
        x, scale, out_scale = self._prepare(x)
        return DataFlow(x, y, batch_size, self.augment(scale), shuffle, seed, sample_weight,
                        output_scale=out_scale)

    def flow_from_directory(self, directory, target_size=(256, 256), color_mode="rgb",
                            classes=None, class_mode="categorical", batch_size: int = 32,
                            shuffle: bool = True, seed: int | None = None, save_to_dir=None,
                            save_prefix="", save_format="png", follow_links: bool = False,
                            subset: str | None = None, interpolation: str = "nearest",
                            keep_aspect_ratio: bool = False, *, cache: bool = True,
                            workers: int | None = None) -> DataFlow:
        """Keras's ``DirectoryIterator``: the same files in the same order, the same
        per-class ``subset`` split, batches in ``class_mode``'s layout and dtypes. The
        images are decoded once into memory (see ``directory_flow``)."""
        from .directory_flow import directory_flow
        if save_to_dir is not None:
            raise NotImplementedError("save_to_dir: cnnkit does not write augmented images; "
                                      "iterate the flow and save the batches you want")
        if subset is not None and not self.validation_split:
            raise ValueError("flow_from_directory(subset=...) needs "
                             "ImageDataGenerator(validation_split=...)")
        return directory_flow(self, directory, target_size, color_mode, classes, class_mode,
                              batch_size, shuffle, seed, follow_links, subset, interpolation,
                              keep_aspect_ratio, cache=cache, workers=workers)

    def random_transform(self, x, seed: int | None = None) -> np.ndarray:
        """One H×W×C image, randomly transformed (Keras's per-image method)."""
        batch = np.asarray(x)[None]
        flow = DataFlow(batch.astype(np.float32), None, 1,
                        from_keras_generator_args(**self.args, value_scale=1.0),
                        shuffle=False, seed=seed)
        return next(flow)[0]

    def fit(self, x, augment=False, rounds=1, seed=None):
        """Keras computes feature-wise statistics here; cnnkit keeps normalisation in the
        model, so there is nothing to fit."""
        return self

