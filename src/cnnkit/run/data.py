"""The data of one run: the splits a ``TrainConfig`` names, as uint8 tensors.

``cfg.data`` is 'bundled', a named dataset (``cnnkit.data.datasets``) or a folder of class
folders. A folder is scanned once, each split decoded once (or read from the decoded-folder
cache), and each part (training, validation, test) gathered from it once: the held-out
split, the seeded shuffle and ``--limit`` are composed as index arrays first.

``--limit N`` keeps about N training images and the same share of the validation images,
the same share of each class (folders list images class by class, so the first N would be
one or two classes). A folder of photos of mixed sizes without ``--image-size`` is resized
to a square that suits the model (:func:`pick_image_size`).
"""

from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..config import TrainConfig

__all__ = ["Data", "DataError", "load_data", "pick_image_size"]


class DataError(ValueError):
    """The data asked for cannot be found or read."""


@dataclass
class Data:
    """Tensors for one run: uint8 N×C×H×W images, int64 labels, per split."""

    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor] | None
    test: tuple[torch.Tensor, torch.Tensor] | None
    class_names: list[str]
    source: str                      # where the images came from, for the report
    tag: str                         # short name for the run directory
    test_name: str = "test"          # what the final evaluation runs on
    notes: list[str] = field(default_factory=list)
    multi_label: bool = False        # labels float32 N×L multi-hot (run/multilabel.py)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train[0].shape[1:]
        return int(h), int(w), int(c)

    @property
    def eval_split(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        return self.test if self.test is not None else self.val

    def describe(self) -> str:
        n = lambda s: len(s[0]) if s is not None else 0  # noqa: E731
        h, w, c = self.input_shape
        return (f"{self.source}: {n(self.train)} training, {n(self.val)} validation, "
                f"{n(self.test)} test images of {h}x{w}x{c}, {len(self.class_names)} "
                f"{'labels (multi-label)' if self.multi_label else 'classes'}")


def _limit_index(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Positions of about ``fraction`` of ``labels``, the same share per class, in order."""
    from ..data.folder import stratified_split
    if fraction >= 1:
        return np.arange(len(labels))
    _, keep = stratified_split(labels, fraction, seed)
    return np.sort(keep)


def _limited(train_labels: np.ndarray, val_labels: np.ndarray | None, n: int, seed: int):
    """(train positions, val positions) that ``--limit n`` keeps (None: keep all)."""
    if not n or n >= len(train_labels):
        return None, None
    fraction = n / len(train_labels)
    val = _limit_index(val_labels, fraction, seed) if val_labels is not None and len(val_labels) \
        else None
    return _limit_index(train_labels, fraction, seed), val


# ---------------------------------------------------------------------------- named data

def _is_named(name: str) -> bool:
    from ..data import datasets
    try:
        datasets.info(name)
        return True
    except ValueError:
        return False


def _load_named(cfg: TrainConfig) -> Data:
    from ..data import datasets
    from ..data.folder import stratified_split
    from ..data.loader import as_images
    info = datasets.info(cfg.data)
    path = cfg.data_dir or None
    notes = []
    try:
        (xtr, ytr), (xte, yte) = datasets.load(info.name, path=path)
        test = (as_images(xte), torch.as_tensor(yte).long())
    except datasets.DatasetNotFoundError as err:
        try:
            xtr, ytr = datasets.load(info.name, path=path, split="train")
        except datasets.DatasetNotFoundError:
            raise DataError(str(err)) from err
        test = None
        notes.append("no test split was found: the final evaluation uses the validation "
                     "images held out from training")
    images, labels = as_images(xtr), torch.as_tensor(ytr).long()
    y = labels.numpy()
    if cfg.val_split:
        tr, va = stratified_split(y, cfg.val_split, cfg.seed)
    else:
        tr, va = np.arange(len(y)), None
    keep_tr, keep_va = _limited(y[tr], y[va] if va is not None else None, cfg.limit, cfg.seed)
    if keep_tr is not None:
        tr = tr[keep_tr]
        va = va[keep_va] if va is not None and keep_va is not None else va
    gather = lambda idx: (images[torch.from_numpy(idx)], labels[torch.from_numpy(idx)])  # noqa: E731
    train = gather(tr) if cfg.val_split or keep_tr is not None else (images, labels)
    val = gather(va) if va is not None else None
    where = f" from {path}" if path else ""
    return Data(train, val, test, list(datasets.class_names(info.name)),
                f"{info.name}{where}", info.name, "test" if test is not None else "validation",
                notes)


# ---------------------------------------------------------------------------- folders

def pick_image_size(layout, model: str = "", sample: int = 200) -> tuple[tuple[int, int] | None, str]:
    """(H, W) to resize a folder's images to when they come in several sizes, and why.

    None when the (sampled) images all have one size. Otherwise the zoo model's native size
    when ``model`` names one, else a square side from the photos: the median of their
    shorter sides, rounded to a multiple of 32 within 64..224."""
    from PIL import Image
    entries = [e for split in layout.files.values() for e in split]
    step = max(1, len(entries) // sample)
    sizes = Counter()
    for e in entries[::step]:
        try:
            with Image.open(e.path) as im:
                sizes[(im.height, im.width)] += 1
        except Exception:  # noqa: BLE001 - unreadable files are reported by the decoder
            continue
    if len(sizes) <= 1:
        return None, ""
    kinds = f"{len(sizes)} sizes (e.g. {', '.join(f'{h}x{w}' for (h, w), _ in sizes.most_common(3))})"
    if model:
        try:
            from ..models import registry
            h, w = registry.model_info(model)["input_shape"][:2]
            return (int(h), int(w)), f"the images have {kinds}: resized to {model}'s {h}x{w}"
        except (KeyError, ValueError):
            pass
    shorter = sorted(min(h, w) for (h, w), c in sizes.items() for _ in range(c))
    side = int(min(224, max(64, round(shorter[len(shorter) // 2] / 32) * 32)))
    return (side, side), f"the images have {kinds}: resized to {side}x{side}"


def _load_folder(cfg: TrainConfig, path: Path) -> Data:
    from ..data._warn import warn
    from ..data.folder import FolderLayoutError, _load_split, plan_subset, stratified_split
    from ..data.layout import scan_folder
    try:
        layout = scan_folder(path)  # the one scan: every split's files
    except FolderLayoutError as err:
        raise DataError(f"--data {path}: {err}") from err
    notes = []
    image_size = tuple(cfg.image_size) if cfg.image_size else None
    if image_size is None:
        image_size, why = pick_image_size(layout, cfg.model)
        if image_size is not None:
            notes.append(f"{why}; pass --image-size H,W to choose")
    options = dict(color_mode="grayscale" if cfg.grayscale else "rgb",
                   image_size=list(image_size) if image_size else None,
                   interpolation="bilinear", crop_to_aspect_ratio=False,
                   pad_to_aspect_ratio=False)
    if len(layout.class_names) == 1:
        warn(f"{layout.root}: only one class ({layout.class_names[0]!r}); a classifier needs "
             "at least two class folders")
    has_val = "val" in layout.splits
    both = bool(cfg.val_split or has_val)
    subset = "both" if both else ("training" if layout.is_split else None)
    decoded: dict = {}

    def split_data(split):
        if split not in decoded:
            decoded[split] = _load_split(layout, split, options, True, None, None, False)
        return decoded[split]

    try:
        plan = plan_subset(layout, subset, cfg.val_split or None)
        if "test" in layout.splits:
            plan.append(("test", "all"))
        parts = []  # (dataset, index) per planned part: training, [validation], [test]
        for split, part in plan:
            ds = split_data(split)
            idx = np.arange(len(ds))
            if part != "all":
                tr, va = stratified_split(ds.labels.numpy(), cfg.val_split, cfg.seed)
                idx = tr if part == "training" else va
            rng = np.random.default_rng([int(cfg.seed), zlib.crc32(f"{split}:{part}".encode())])
            parts.append((ds, idx[rng.permutation(len(idx))]))
    except (FolderLayoutError, ValueError) as err:
        raise DataError(f"--data {path}: {err}") from err
    (train_ds, tr), val_part = parts[0], (parts[1] if both else None)
    test_part = parts[-1] if "test" in layout.splits else None
    va_labels = val_part[0].labels.numpy()[val_part[1]] if val_part else None
    keep_tr, keep_va = _limited(train_ds.labels.numpy()[tr], va_labels, cfg.limit, cfg.seed)
    if keep_tr is not None:
        tr = tr[keep_tr]
        if val_part is not None and keep_va is not None:
            val_part = (val_part[0], val_part[1][keep_va])

    def gather(ds, idx):  # the one copy of each part's images
        t = torch.from_numpy(np.ascontiguousarray(idx, dtype=np.int64))
        return ds.images[t], ds.labels[t]

    train = gather(train_ds, tr)
    val = gather(*val_part) if val_part is not None else None
    test = gather(*test_part) if test_part is not None else None
    if train_ds.skipped:
        notes.append(f"{len(train_ds.skipped)} unreadable files were skipped "
                     f"(`cnnkit check {path}` lists them)")
    if test is None:
        notes.append("the folder has no test/ split: the final evaluation uses the "
                     f"validation images held out from training ({cfg.val_split:.0%} per class)")
    root = Path(path).resolve()
    tag = root.parent.name if root.name in ("train", "training") else root.name
    return Data(train, val, test, list(layout.class_names), str(path), tag,
                "test" if test is not None else "validation", notes)


def load_data(cfg: TrainConfig) -> Data:
    """The data ``cfg.data`` names: 'bundled', a named dataset, a folder of class folders, or
    multi-label data (a labels CSV, or ``--multi-label`` with a folder per label)."""
    name = cfg.data
    from .multilabel import load_multilabel_data, wants_multilabel
    if wants_multilabel(cfg):
        if _is_named(name):
            raise DataError(f"--multi-label: --data {name} is a single-label dataset; give a "
                            "labels CSV (filename,labels rows) or a folder per label")
        return load_multilabel_data(cfg)
    if _is_named(name):
        return _load_named(cfg)
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise DataError(f"--data {name}: is a file; give a folder of class folders "
                            "(root/<class>/<images>) or a dataset name")
        return _load_folder(cfg, path)
    looks_like_path = "/" in name or "\\" in name or name.startswith(".")
    if looks_like_path:
        raise DataError(f"--data {name}: no such folder")
    from ..data import datasets
    raise DataError(f"--data {name!r}: not a dataset name and no folder of that name. "
                    f"Dataset names: {', '.join(datasets.available())}; or give a folder of class "
                    "folders (root/<class>/<images>)")
