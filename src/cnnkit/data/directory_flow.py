"""``ImageDataGenerator.flow_from_directory``: Keras's ``DirectoryIterator`` as a
``DataFlow`` over images decoded once into memory.

Files, order and ``subset`` split follow ``keras_index`` (Keras's legacy walk); pixels are
Keras's ``load_img`` (full decode, then Pillow's resize with ``interpolation``, default
'nearest'). Batches: ``x`` float32 N×H×W×C; ``y`` by ``class_mode``: 'categorical' float32
one-hot, 'sparse' and 'binary' float32 (N,), 'input' a copy of ``x``, None no ``y``.
``fit`` reads the uint8 images and int labels directly (``flow.dataset``).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from . import keras_index
from .dataset import TensorSource
from .keras_decode import decode_files

__all__ = ["directory_flow", "CLASS_MODES"]

CLASS_MODES = ("categorical", "binary", "sparse", "input", None)


def _keras_labels(classes: np.ndarray, class_mode, num_classes: int):
    if class_mode == "categorical":
        return np.eye(num_classes, dtype=np.float32)[classes]
    if class_mode in ("sparse", "binary"):
        return classes.astype(np.float32)
    return None  # 'input' (y is x) and None: no label array


def directory_flow(generator, directory, target_size, color_mode, classes, class_mode,
                   batch_size, shuffle, seed, follow_links, subset, interpolation,
                   keep_aspect_ratio, *, cache=True, workers=None):
    from .image_generator import DataFlow
    if class_mode not in CLASS_MODES:
        raise ValueError(f"class_mode must be one of {CLASS_MODES}, got {class_mode!r}")
    if color_mode not in ("rgb", "rgba", "grayscale"):
        raise ValueError(f"color_mode must be 'rgb', 'rgba' or 'grayscale', got {color_mode!r}")
    directory = os.fspath(directory)
    names = keras_index.list_class_folders(directory, classes or None, hidden_ok=True)
    paths, labels, chosen = [], [], []  # every file; the rows this subset takes
    for index, name in enumerate(names):
        found = keras_index.walk_files(os.path.join(directory, name),
                                       keras_index.GENERATOR_FORMATS, follow_links)
        rows = list(range(len(paths), len(paths) + len(found)))
        chosen += keras_index.class_split(rows, generator.validation_split, subset)
        paths += found
        labels += [index] * len(found)
    print(f"Found {len(chosen)} images belonging to {len(names)} classes.")
    if class_mode == "binary" and len(names) != 2:
        raise ValueError(f"class_mode='binary' needs exactly 2 classes, found {len(names)}: "
                         f"{names}")
    size = (int(target_size[0]), int(target_size[1]))
    options = dict(color_mode=color_mode, image_size=list(size), interpolation=interpolation,
                   crop_to_aspect_ratio=bool(keep_aspect_ratio), pad_to_aspect_ratio=False,
                   resizer="pil")
    channels = {"rgb": 3, "rgba": 4, "grayscale": 1}[color_mode]
    # the whole folder is decoded (or read from the cache) once: both subsets use it
    if paths:
        images, keep, _ = decode_files(paths, options, cache=cache, workers=workers,
                                       where=directory)
    else:
        images, keep = np.zeros((0, channels, *size), np.uint8), np.zeros(0, bool)
    chosen = [i for i in chosen if keep[i]]
    images = images[(np.cumsum(keep) - 1)[chosen]]
    paths = [paths[i] for i in chosen]
    classes_arr = np.asarray(labels, dtype=np.int32)[chosen]
    x, scale, out_scale = generator._prepare(torch.from_numpy(images))
    flow = DataFlow(x, _keras_labels(classes_arr, class_mode, len(names)), batch_size,
                    generator.augment(scale), shuffle, seed, class_names=names,
                    output_scale=out_scale)
    if class_mode == "input":
        flow.y = None
        flow._targets_are_inputs = True
    flow.class_mode = class_mode
    flow.directory = directory
    flow.classes = flow.labels = classes_arr
    flow.num_classes = len(names)
    flow.filepaths = paths
    flow.filenames = [os.path.relpath(p, directory) for p in paths]
    flow.samples = len(paths)
    flow.target_size = size
    flow.color_mode = color_mode
    flow.image_shape = (*size, channels)
    flow.subset = subset
    flow.dataset = TensorSource(x, torch.from_numpy(classes_arr.astype(np.int64))
                                if class_mode is not None else None, names, int(batch_size))
    return flow
