"""``image_dataset_from_directory`` with Keras's contract (``cnnkit.utils`` and
``cnnkit.preprocessing``): same arguments and defaults, same files in the same order for
a seed, the same validation split, batches as Keras yields them (see ``dataset.Dataset``).

Where it departs, on purpose (docs/keras.md lists these):

- The images are decoded once, in parallel, into memory (and a disk cache), not read
  lazily by a tf.data pipeline; a folder that does not fit in memory wants
  ``cnnkit.datasets.stream_from_directory``.
- The training order each epoch is a fresh permutation of all images (tf.data shuffles
  through a buffer of ``8 * batch_size`` files), so batches hold other files than Keras's.
- Resized pixels are rounded to integers (at most 0.5 from Keras's float32 values; the
  overshoot of bicubic/lanczos beyond 0..255 is clipped); JPEGs decode with libjpeg's
  accurate integer IDCT (TensorFlow's default is the fast one: up to ±4, mean 0.9 on
  CIFAR-10's JPEGs).
- Files that cannot be decoded are skipped with a warning (Keras fails mid-epoch).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from . import keras_index
from .dataset import Dataset
from .keras_decode import decode_files
from .tf_resize import INTERPOLATIONS

__all__ = ["image_dataset_from_directory"]

_CHANNELS = {"rgb": 3, "grayscale": 1, "rgba": 4}


def _check_arguments(labels, label_mode, class_names, color_mode, image_size, interpolation,
                     validation_split, subset, shuffle, seed, crop, pad, data_format):
    if labels not in ("inferred", None) and not isinstance(labels, (list, tuple, np.ndarray)):
        raise ValueError("labels must be 'inferred', None or a list of integer labels (one per "
                         f"file, in sorted order), got {labels!r}")
    if label_mode not in ("int", "categorical", "binary", None):
        raise ValueError("label_mode must be 'int', 'categorical', 'binary' or None, got "
                         f"{label_mode!r}")
    if color_mode not in _CHANNELS:
        raise ValueError(f"color_mode must be 'rgb', 'rgba' or 'grayscale', got {color_mode!r}")
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    if not isinstance(image_size, (list, tuple)) or len(image_size) != 2 \
            or min(int(v) for v in image_size) < 1:
        raise ValueError(f"image_size must be (height, width), got {image_size!r}")
    if interpolation.lower() not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    if validation_split and not 0 < validation_split < 1:
        raise ValueError(f"validation_split must be between 0 and 1, got {validation_split}")
    if bool(validation_split) != bool(subset):
        raise ValueError("subset and validation_split go together: pass both (e.g. "
                         "validation_split=0.2, subset='training') or neither")
    if subset not in ("training", "validation", "both", None):
        raise ValueError(f"subset must be 'training', 'validation' or 'both', got {subset!r}")
    if validation_split and shuffle and seed is None:
        raise ValueError("validation_split with shuffle=True needs a seed (the same one for the "
                         "training and the validation call, so they do not overlap)")
    if crop and pad:
        raise ValueError("only one of crop_to_aspect_ratio and pad_to_aspect_ratio can be True")
    if data_format not in (None, "channels_last"):
        raise ValueError("data_format: cnnkit hands out channels_last batches, as Keras's "
                         f"default; got {data_format!r}")
    return (int(image_size[0]), int(image_size[1])), interpolation.lower()


def image_dataset_from_directory(
        directory, labels="inferred", label_mode="int", class_names=None, color_mode="rgb",
        batch_size=32, image_size=(256, 256), shuffle=True, seed=None, validation_split=None,
        subset=None, interpolation="bilinear", follow_links=False, crop_to_aspect_ratio=False,
        pad_to_aspect_ratio=False, data_format=None, format="tf", verbose=True, *,
        cache: bool = True, cache_dir=None, workers: int | None = None):
    """Keras's ``keras.utils.image_dataset_from_directory``: a ``Dataset`` of batches, or
    ``[training, validation]`` for ``subset='both'``.

    Extra keywords: ``cache``/``cache_dir`` (the decoded-image cache), ``workers``
    (decoding threads). ``format`` is accepted for Keras's spelling; both give a
    ``Dataset``.
    """
    image_size, interpolation = _check_arguments(
        labels, label_mode, class_names, color_mode, image_size, interpolation,
        validation_split, subset, shuffle, seed, crop_to_aspect_ratio, pad_to_aspect_ratio,
        data_format)
    if labels is None or label_mode is None:
        labels, label_mode = None, None
    directory = os.fspath(directory)
    if seed is None:
        seed = int(np.random.randint(1e6))
    paths, label_array, names = keras_index.index_directory(
        directory, labels, class_names, keras_index.DATASET_FORMATS, follow_links)
    if label_mode == "binary" and len(names) != 2:
        raise ValueError(f"label_mode='binary' needs exactly 2 classes, found {len(names)}: "
                         f"{names}")
    if verbose:
        print(f"Found {len(paths)} files" + (f" belonging to {len(names)} classes."
                                               if label_array is not None else "."))
    options = dict(color_mode=color_mode, image_size=list(image_size),
                   interpolation=interpolation, crop_to_aspect_ratio=bool(crop_to_aspect_ratio),
                   pad_to_aspect_ratio=bool(pad_to_aspect_ratio))
    # Decode (or read from the cache) the whole folder once, in sorted order: every seed,
    # split and subset is then a choice of rows.
    images, keep, _ = decode_files(paths, options, cache=cache, cache_dir=cache_dir,
                                   workers=workers, where=directory)
    rows_of_kept = np.cumsum(keep) - 1  # sorted index -> row in ``images``
    order = list(range(len(paths)))
    if shuffle:
        order, _ = keras_index.keras_shuffle(order, None, seed)
    wanted = ["training", "validation"] if subset == "both" else [subset]
    parts = []
    for which in wanted:
        chosen, _ = keras_index.training_or_validation(order, None, validation_split, which)
        if verbose and validation_split:
            print(f"Using {len(chosen)} files for {which}.")
        chosen = [i for i in chosen if keep[i]]
        if not chosen:
            raise ValueError(f"No images found in directory {directory} for subset={which!r} "
                             f"(allowed formats: {keras_index.DATASET_FORMATS})")
        rows = torch.from_numpy(rows_of_kept[chosen])
        y = (torch.from_numpy(label_array[chosen].astype(np.int64))
             if label_array is not None else None)
        # Keras does not shuffle the validation set of subset="both"
        reshuffle = shuffle and not (subset == "both" and which == "validation")
        parts.append(Dataset(
            torch.from_numpy(np.ascontiguousarray(images))[rows], y, label_mode=label_mode,
            class_names=names, file_paths=[paths[i] for i in chosen], batch_size=batch_size,
            shuffle=reshuffle, seed=seed,
            x_dtype=torch.uint8 if interpolation == "nearest" else torch.float32,
            num_classes=len(names) if names else None))
    return parts if subset == "both" else parts[0]
