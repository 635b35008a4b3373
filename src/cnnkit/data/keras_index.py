"""Which files Keras's directory loaders list, in Keras's order, and how they split them.

``image_dataset_from_directory`` (keras/src/utils/dataset_utils.py ``index_directory``):
class folders in sorted order (or the given ``class_names`` order); inside each, ``os.walk``
sorted by folder, file names sorted, only the allowed extensions (any case). With
``shuffle=True`` the whole list is shuffled by ``np.random.RandomState(seed).shuffle``;
the validation subset is then the last ``int(validation_split * n)`` files, training
the ones before.

``ImageDataGenerator.flow_from_directory`` (keras/src/legacy/preprocessing/image.py):
the same walk per class, other extensions; with a ``subset`` each class gives its first
``int(validation_split * n_class)`` files to validation, the rest to training.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["DATASET_FORMATS", "GENERATOR_FORMATS", "list_class_folders", "walk_files",
           "index_directory", "keras_shuffle", "training_or_validation", "class_split"]

DATASET_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
GENERATOR_FORMATS = ("png", "jpg", "jpeg", "bmp", "ppm", "tif", "tiff")


def list_class_folders(directory: str, class_names=None, hidden_ok: bool = False) -> list[str]:
    """Sub-folders of ``directory`` in sorted order; ``class_names`` keeps its own order
    and must name existing sub-folders."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{directory}: no such folder (expected "
                                "directory/<class name>/<image files>)")
    subdirs = [d for d in sorted(os.listdir(directory))
               if os.path.isdir(os.path.join(directory, d))
               and (hidden_ok or not d.startswith("."))]
    if class_names is None:
        return subdirs
    unknown = [c for c in class_names if c not in subdirs]
    if unknown:
        raise ValueError(f"class_names {unknown} are not sub-folders of {directory} "
                         f"(found {subdirs})")
    return list(class_names)


def walk_files(folder: str, formats: tuple[str, ...], follow_links: bool) -> list[str]:
    """Files under ``folder`` whose lower-cased name ends with one of ``formats``, in
    Keras's order: folders sorted by path, then file names sorted."""
    out = []
    for root, _, files in sorted(os.walk(folder, followlinks=follow_links), key=lambda t: t[0]):
        out.extend(os.path.join(root, f) for f in sorted(files) if f.lower().endswith(formats))
    return out


def index_directory(directory: str, labels="inferred", class_names=None,
                    formats: tuple[str, ...] = DATASET_FORMATS, follow_links: bool = False):
    """(file paths, int32 labels or None, class names) before any shuffling.

    ``labels``: ``'inferred'`` (from the class folders), ``None`` (no labels) or a list of
    integer labels, one per file in sorted order (files then come from the whole tree).
    """
    if labels == "inferred":
        class_names = list_class_folders(directory, class_names)
        paths, label_list = [], []
        for index, name in enumerate(class_names):
            found = walk_files(os.path.join(directory, name), formats, follow_links)
            paths += found
            label_list += [index] * len(found)
        return paths, np.asarray(label_list, dtype=np.int32), class_names
    if class_names is not None:
        raise ValueError("class_names can only be given with labels='inferred'")
    paths = walk_files(directory, formats, follow_links)
    if labels is None:
        return paths, None, None
    labels = np.asarray(labels)
    if len(labels) != len(paths):
        raise ValueError(f"labels has {len(labels)} entries but {directory} holds "
                         f"{len(paths)} image files; give one label per file, in sorted order")
    return paths, labels.astype(np.int32), [str(v) for v in sorted(set(labels.tolist()))]


def keras_shuffle(paths: list[str], labels, seed: int):
    """Shuffle both lists exactly as Keras does (two RandomState(seed) shuffles)."""
    paths = list(paths)
    np.random.RandomState(seed).shuffle(paths)
    if labels is not None:
        labels = np.array(labels)
        np.random.RandomState(seed).shuffle(labels)
    return paths, labels


def training_or_validation(paths: list[str], labels, validation_split, subset):
    """Keras's split of the (shuffled) list: validation = the last
    ``int(validation_split * n)`` files."""
    if not validation_split:
        return paths, labels
    n_val = int(validation_split * len(paths))
    if subset == "training":
        sl = slice(None, -n_val)  # n_val == 0 gives no files, as in Keras
    elif subset == "validation":
        sl = slice(-n_val, None)
    else:
        raise ValueError(f"subset must be 'training' or 'validation', got {subset!r}")
    return paths[sl], (labels[sl] if labels is not None else None)


def class_split(paths: list[str], validation_split: float, subset: str | None) -> list[str]:
    """``flow_from_directory``'s per-class split of one class's files."""
    if subset is None:
        return paths
    n = len(paths)
    cut = int(validation_split * n)
    if subset == "validation":
        return paths[:cut]
    if subset == "training":
        return paths[cut:]
    raise ValueError(f"subset must be 'training' or 'validation', got {subset!r}")
