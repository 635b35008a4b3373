"""Image folders -> a uint8 tensor dataset, decoded once in parallel and cached on disk.

This is cnnkit's own loader (``cnnkit.datasets.image_dataset_from_directory``, used by
``cnnkit train``). Keras's exact contract (batches, Keras's file order and split) is
``cnnkit.utils.image_dataset_from_directory``, in ``keras_folder.py``.

``image_dataset_from_directory`` follows Keras's spelling. Differences, on purpose:

- It returns an ``ImageDataset`` (the whole folder as tensors: ``.images`` uint8
  N×C×H×W, ``.labels`` int64, ``.class_names``), not batches: cnnkit batches by slicing
  tensors in memory. ``batch_size`` is kept as an attribute. ``shuffle=True`` (the
  default, as in Keras) stores the images in a seeded random order, so ``x[:n]`` or a
  grid of the first images mixes the classes; ``shuffle=False`` keeps class-folder order,
  then file-name order. ``fit`` reshuffles every epoch either way.
- ``image_size=None`` (the default) keeps the images' own size; if sizes differ, all are
  resized to the most common one, with a warning.
- The validation split is stratified (each class split in the same proportion) and always
  seeded: ``seed=None`` means seed 0, so a 'training' and a 'validation' call are
  complementary.
- A folder with ``train/``, ``val/`` and/or ``test/`` splits is understood:
  ``subset='training'|'validation'|'test'|'both'`` picks them.
- Files Pillow cannot read are skipped and listed in ``dataset.skipped`` with the reason
  (one warning per load), never fatal.

The decoded array is cached in ``cache_root()/folders/`` under a key made of the folder,
every file's path, size and modification time, and the decoding options; a later call on
the unchanged folder reads it back (one ``np.load``) instead of decoding.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..train.progress import Task
from . import decode_pool
from .cache import atomic_path, cache_root, files_fingerprint
from .decode import COLOR_MODES, RESAMPLE, decode_image, sniff_format
from ._warn import warn
from .layout import FileEntry, FolderLayout, FolderLayoutError, display_path, scan_folder

__all__ = ["ImageDataset", "image_dataset_from_directory", "stratified_split", "plan_subset",
           "FolderLayoutError"]

_CACHE_VERSION = 1
_SUBSETS = ("training", "validation", "test", "both")


class ImageDataset(torch.utils.data.Dataset):
    """A labelled image set held as tensors.

    images: uint8 N×C×H×W tensor; labels: int64 (N,); class_names: list of str;
    files: the source path of each image (when it came from a folder);
    skipped: ``(path, reason)`` for each file that could not be read.
    Indexing gives ``(image, label)``, so it is also a torch ``Dataset``.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, class_names,
                 files: list[str] | None = None, skipped: list | None = None,
                 root: str | None = None, batch_size: int | None = None,
                 label_mode: str = "int"):
        if images.ndim != 4 or images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 N×C×H×W, got {images.dtype} "
                             f"{tuple(images.shape)}")
        if len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = labels.to(torch.int64)
        self.class_names = list(class_names)
        self.files = list(files) if files is not None else None
        self.skipped = list(skipped or [])
        self.root = root
        self.batch_size = batch_size
        self.label_mode = label_mode

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.images.shape[1:])

    def class_counts(self) -> dict[str, int]:
        counts = torch.bincount(self.labels, minlength=self.num_classes).tolist()
        return dict(zip(self.class_names, counts))

    def subset(self, indices) -> "ImageDataset":
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        files = [self.files[i] for i in idx.tolist()] if self.files is not None else None
        return ImageDataset(self.images[idx], self.labels[idx], self.class_names, files,
                            self.skipped, self.root, self.batch_size, self.label_mode)

    def split(self, validation_split: float, seed: int | None = None
              ) -> tuple["ImageDataset", "ImageDataset"]:
        """Stratified, seeded (training, validation) split."""
        train_idx, val_idx = stratified_split(self.labels.numpy(), validation_split, seed)
        return self.subset(train_idx), self.subset(val_idx)

    def to(self, device) -> "ImageDataset":
        """The same dataset with its tensors on ``device`` (e.g. the GPU)."""
        return ImageDataset(self.images.to(device), self.labels.to(device), self.class_names,
                            self.files, self.skipped, self.root, self.batch_size,
                            self.label_mode)

    def numpy(self) -> tuple[np.ndarray, np.ndarray]:
        """Keras layout: (uint8 N×H×W×C, int64 N)."""
        return self.images.permute(0, 2, 3, 1).cpu().numpy(), self.labels.cpu().numpy()

    def __repr__(self) -> str:
        c, h, w = self.image_shape
        return (f"ImageDataset({len(self)} images {c}×{h}×{w}, {self.num_classes} classes, "
                f"{len(self.skipped)} skipped)")


def stratified_split(labels: np.ndarray, fraction: float, seed: int | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation): each class gives ``round(fraction * n_c)`` images to
    validation (at least one image stays in training), drawn with ``seed`` (None -> 0)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation_split must be between 0 and 1, got {fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(0 if seed is None else seed)
    val = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        n_val = min(int(round(fraction * len(idx))), len(idx) - 1)
        val.append(rng.permutation(idx)[:n_val])
    val_idx = np.sort(np.concatenate(val)) if val else np.empty(0, np.int64)
    mask = np.ones(len(labels), bool)
    mask[val_idx] = False
    return np.flatnonzero(mask), val_idx


# ------------------------------------------------------------------------------- decoding

def _decode_rows(rows, kwargs, key=None):
    """[(row, path)] -> (rows decoded, their H×W×C uint8 images, [(row, why it failed)]).
    With ``key`` (resized images) each image goes into row ``row`` of the shared C×H×W array
    ``key`` (``decode_pool.shared_output``) and none come back; at their own sizes they come
    back as one k×H×W×C array when they share a size (one object from a worker), else a list."""
    decoded, images, failed = decode_pool.read_rows(
        rows, functools.partial(decode_image, **kwargs), _reason, key)
    if images and len({a.shape for a in images}) == 1:
        images = np.stack(images)
    return decoded, images, failed


def _reason(path: str, e: Exception) -> str:
    if isinstance(e, OSError) and not isinstance(e, Image.UnidentifiedImageError) and e.filename:
        return f"cannot read ({type(e).__name__}: {e.strerror})"  # gone, or no permission
    if os.path.getsize(path) == 0:
        return "empty file"
    msg = str(e) or type(e).__name__
    if "cannot identify image file" in msg:
        with open(path, "rb") as f:
            announced = sniff_format(f.read(16))
        if announced:
            return f"corrupt: starts like {announced} but cannot be read"
        return "not an image Pillow can read"
    if "truncated" in msg.lower():
        return f"truncated ({msg})"
    return f"unreadable ({type(e).__name__}: {msg})"


def _decode_all(entries: list[FileEntry], color_mode: str, image_size, interpolation,
                crop_to_aspect_ratio, pad_to_aspect_ratio, workers: int | None, root: Path):
    """Decode every file in parallel -> (uint8 N×C×H×W array, keep mask, skipped list)."""
    n = len(entries)
    channels = {"rgb": 3, "grayscale": 1, "rgba": 4}[color_mode]
    kwargs = dict(color_mode=color_mode, size=image_size, interpolation=interpolation,
                  crop_to_aspect_ratio=crop_to_aspect_ratio,
                  pad_to_aspect_ratio=pad_to_aspect_ratio)
    native: list = [None] * n if image_size is None else []
    ok = np.zeros(n, bool)
    reasons: dict[int, str] = {}
    # Worker processes, not threads: small images decode mostly under the GIL (decode_pool.py);
    # resized ones are written into shared memory, images at their own size come back
    parts = decode_pool.chunked(enumerate(e.path for e in entries), workers)
    resized = image_size is not None
    with decode_pool.shared_output((n, channels, *image_size) if resized else (0,)) as (key, out), \
            Task(f"decoding {root}", total=n, unit="file") as task:
        decode = functools.partial(_decode_rows, kwargs=kwargs, key=key if resized else None)
        for decoded, images, failed in decode_pool.imap_chunks(decode, parts, workers):
            reasons.update(failed)
            ok[decoded] = True
            for row, arr in zip(decoded, images):  # none when resized into ``out``
                native[row] = arr
            task.advance(len(decoded) + len(failed))
    if image_size is None:
        out = _stack_native(native, ok, channels, interpolation, root)
    skipped = [(entries[i].path, reasons[i]) for i in sorted(reasons)]
    return out, ok, skipped


def _stack_native(native, ok, channels, interpolation, root) -> np.ndarray:
    """Images at their own size -> one array at the most common size (others resized)."""
    sizes = Counter(a.shape[:2] for a in native if a is not None)
    if not sizes:
        return np.empty((len(native), channels, 1, 1), np.uint8)
    (h, w), count = sizes.most_common(1)[0]
    if len(sizes) > 1:
        others = ", ".join(f"{a}×{b}: {c}" for (a, b), c in sizes.most_common(6)[1:])
        warn(f"{root}: images have {len(sizes)} different sizes; all resized to the "
                      f"most common, {h}×{w} ({count} images; others {others}). Pass "
                      "image_size=(H, W) to choose.")
    out = np.zeros((len(native), channels, h, w), np.uint8)
    resample = RESAMPLE[interpolation]
    for i, a in enumerate(native):
        if a is None:
            continue
        if a.shape[:2] != (h, w):
            img = Image.fromarray(a[..., 0] if a.shape[2] == 1 else a)
            a = np.asarray(img.resize((w, h), resample=resample))
            a = a[..., None] if a.ndim == 2 else a
        out[i] = a.transpose(2, 0, 1)
    return out


# ---------------------------------------------------------------------------------- cache

def _cache_key(root: Path, entries: list[FileEntry], options: dict) -> tuple[str, str]:
    """(stem shared by every version of this folder+options, full key of this version).

    The key covers every file's path, label, size, modification and change time and inode,
    so adding, removing, renaming, moving between classes or rewriting a file (even with its
    size and mtime put back) makes a new entry.
    """
    stem = hashlib.sha256(json.dumps([str(root), options], sort_keys=True).encode())
    h = hashlib.sha256(stem.digest())
    h.update(files_fingerprint(entries))  # paths, labels, sizes, mtimes, ctimes, inodes
    s = stem.hexdigest()[:16]
    return s, f"{s}-{h.hexdigest()[:24]}"


def _read_cache(folder: Path, key: str):
    meta_path = folder / f"{key}.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        # copy-on-write memory map: returns at once, pages are read on first use and
        # shared with the page cache; writes (none expected) stay private
        images = np.load(folder / f"{key}.npy", mmap_mode="c", allow_pickle=False)
        labels = np.load(folder / f"{key}.labels.npy", allow_pickle=False)
    except (OSError, ValueError):
        return None  # a damaged entry is decoded again and overwritten
    if meta.get("version") != _CACHE_VERSION or len(images) != len(labels):
        return None
    return images, labels, meta


def _write_cache(folder: Path, stem: str, key: str, images, labels, meta) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob(f"{stem}-*"):  # older versions of this folder
            if not old.name.startswith(key):
                old.unlink(missing_ok=True)
        with atomic_path(folder / f"{key}.npy") as tmp:
            with open(tmp, "wb") as f:
                np.save(f, images)
        with atomic_path(folder / f"{key}.labels.npy") as tmp:
            with open(tmp, "wb") as f:
                np.save(f, labels)
        with atomic_path(folder / f"{key}.json") as tmp:  # written last: marks completion
            tmp.write_text(json.dumps(meta))
    except OSError as e:
        warn(f"could not write the decoded-folder cache in {folder}: {e}")


# ---------------------------------------------------------------------------------- load

def _load_split(layout: FolderLayout, split: str, options: dict, cache: bool,
                cache_dir, workers, verbose: bool) -> ImageDataset:
    entries = layout.files[split]
    folder = layout.splits[split]
    if not entries:
        raise FolderLayoutError(f"{folder}: no files in any class folder "
                                f"({', '.join(layout.class_names)})")
    where = cache_root(cache_dir) / "folders"
    stem, key = _cache_key(folder, entries, {**options, "classes": layout.class_names,
                                             "v": _CACHE_VERSION})
    hit = _read_cache(where, key) if cache else None
    if hit is not None:
        images, labels, meta = hit
        files, skipped = meta["files"], [tuple(s) for s in meta["skipped"]]
    else:
        size = options["image_size"]
        images, ok, skipped = _decode_all(
            entries, options["color_mode"], tuple(size) if size else None,
            options["interpolation"], options["crop_to_aspect_ratio"],
            options["pad_to_aspect_ratio"], workers, folder)
        labels = np.fromiter((e.label for e in entries), np.int64, len(entries))
        if not ok.all():
            images, labels = images[ok], labels[ok]
        files = [e.path for e, keep in zip(entries, ok) if keep]
        if cache:
            _write_cache(where, stem, key, images, labels,
                         {"version": _CACHE_VERSION, "root": str(folder),
                          "class_names": layout.class_names, "files": files,
                          "skipped": skipped, "options": options})
    skipped = [*layout.unlisted.get(split, []), *skipped]  # links, loops, special files
    if verbose and skipped:
        first = "; ".join(f"{display_path(p)}: {r}" for p, r in skipped[:3])
        seen = len(entries) + len(layout.unlisted.get(split, []))
        warn(f"{folder}: skipped {len(skipped)} of {seen} files that are not readable "
             f"images ({first}{'; ...' if len(skipped) > 3 else ''}). See dataset.skipped, "
             f"or run `cnnkit check {layout.root}`.")
    if len(labels) == 0:
        raise FolderLayoutError(f"{folder}: none of its {len(entries)} files is a readable image")
    return ImageDataset(torch.from_numpy(images), torch.from_numpy(labels),
                        layout.class_names, files, skipped, str(folder),
                        options.get("batch_size"), options.get("label_mode", "int"))


def image_dataset_from_directory(
        directory: str | os.PathLike, labels: str = "inferred", label_mode: str = "int",
        class_names: list[str] | None = None, color_mode: str = "rgb",
        batch_size: int | None = None, image_size: tuple[int, int] | None = None,
        shuffle: bool = True, seed: int | None = None, validation_split: float | None = None,
        subset: str | None = None, interpolation: str = "bilinear", follow_links: bool = False,
        crop_to_aspect_ratio: bool = False, pad_to_aspect_ratio: bool = False, *,
        cache: bool = True, cache_dir: str | os.PathLike | None = None,
        workers: int | None = None, verbose: bool = True):
    """Load ``directory/<class>/*`` (or ``directory/<train|val|test>/<class>/*``).

    Returns an ``ImageDataset``, or a ``(training, validation)`` pair for
    ``subset='both'``. Keras arguments keep their meaning (see the module docstring for the
    few differences); ``cache``/``cache_dir``/``workers`` control the decoded-array cache
    and the decoding workers (processes on Linux).
    """
    if labels != "inferred":
        raise ValueError("labels: only 'inferred' (labels from the class folder names) is "
                         f"supported, got {labels!r}")
    if label_mode not in ("int", "categorical", "binary", None):
        raise ValueError(f"label_mode must be 'int', 'categorical' or 'binary', got {label_mode!r}")
    if color_mode not in COLOR_MODES:
        raise ValueError(f"color_mode must be one of {sorted(COLOR_MODES)}, got {color_mode!r}")
    if interpolation not in RESAMPLE:
        raise ValueError(f"interpolation must be one of {sorted(RESAMPLE)}, got {interpolation!r}")
    if image_size is not None:
        image_size = (int(image_size[0]), int(image_size[1]))
    options = dict(color_mode=color_mode, image_size=list(image_size) if image_size else None,
                   interpolation=interpolation, crop_to_aspect_ratio=crop_to_aspect_ratio,
                   pad_to_aspect_ratio=pad_to_aspect_ratio)
    layout = scan_folder(directory, class_names, follow_links)
    if len(layout.class_names) == 1:
        warn(f"{layout.root}: only one class ({layout.class_names[0]!r}); a "
                      "classifier needs at least two class folders")
    for split, names in layout.empty_classes.items():
        where = layout.splits[split]
        warn(f"{where}: class folder(s) {names} hold no files; they keep their label "
                      "index but have no examples")

    loaded: dict[str, ImageDataset] = {}

    def load(split):
        if split not in loaded:
            ds = _load_split(layout, split, options, cache, cache_dir, workers, verbose)
            ds.batch_size, ds.label_mode = batch_size, label_mode
            loaded[split] = ds
        return loaded[split]

    parts = []
    for split, part in plan_subset(layout, subset, validation_split):
        ds = load(split)
        if part != "all":
            train, val = ds.split(validation_split, seed)
            ds = train if part == "training" else val
        if shuffle:  # the order depends on the seed and which part this is, not the call
            ds = shuffled(ds, seed, salt=zlib.crc32(f"{split}:{part}".encode()))
        parts.append(ds)
    return tuple(parts) if subset == "both" else parts[0]


def shuffled(ds: ImageDataset, seed: int | None, salt: int = 0) -> ImageDataset:
    """``ds`` in a random order drawn from ``seed`` (None means 0, so loads repeat)."""
    rng = np.random.default_rng([0 if seed is None else int(seed), salt])
    return ds.subset(rng.permutation(len(ds)))


def plan_subset(layout: FolderLayout, subset: str | None, validation_split: float | None
                ) -> list[tuple[str, str]]:
    """Which folder split(s) a ``subset`` reads, and which part of each.

    Returns ``[(split, part)]`` (two items for ``subset='both'``), ``part`` being
    ``'all'``, ``'training'`` or ``'validation'`` (the stratified split of that folder).
    """
    if subset is not None and subset not in _SUBSETS:
        raise ValueError(f"subset must be one of {_SUBSETS} or None, got {subset!r}")
    wanted = ["training", "validation"] if subset == "both" else [subset]
    if not layout.is_split:
        if subset is None:
            if validation_split:
                raise ValueError("validation_split needs subset='training', 'validation' "
                                 "or 'both'")
            return [("all", "all")]
        if subset == "test":
            raise FolderLayoutError(f"{layout.root}: subset='test' needs a test/ folder "
                                    "(root/test/<class>/...); this folder has no splits")
        if not validation_split:
            raise ValueError(f"subset={subset!r} needs validation_split (e.g. 0.2) for a "
                             "folder without train/val splits")
        return [("all", w) for w in wanted]

    found = ", ".join(f"{k}/" for k in layout.splits)
    if subset is None:
        raise ValueError(f"{layout.root} has splits ({found}): pass subset='training', "
                         "'validation', 'test' or 'both'")
    plan = []
    for which in wanted:
        if which == "test":
            if "test" not in layout.splits:
                raise FolderLayoutError(f"{layout.root}: no test/ split (found {found})")
            plan.append(("test", "all"))
            continue
        if "train" not in layout.splits:
            raise FolderLayoutError(f"{layout.root}: no train/ split (found {found})")
        if "val" in layout.splits:
            if which == "validation" and validation_split:
                warn(f"{layout.root}: using its val/ folder; validation_split is ignored")
            plan.append(("train" if which == "training" else "val", "all"))
        elif validation_split:
            plan.append(("train", which))
        elif which == "training":
            plan.append(("train", "all"))
        else:
            raise FolderLayoutError(f"{layout.root}: no val/ split (found {found}); pass "
                                    "validation_split=0.2 to hold out part of train/")
    return plan
