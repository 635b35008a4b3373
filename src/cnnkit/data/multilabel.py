"""Multi-label image data: a labels CSV, or a folder per label.

**CSV** (``multilabel_dataset_from_csv``): one row per image, ``filename,labels``, the labels
of an image in one field separated by ``label_delimiter`` (a space by default:
``img1.jpg,cat dog``; an empty field is an image with no label). A first row naming the
columns (``filename,labels``, or file/image/path and label/tags/classes) is a header and
skipped. Filenames are relative to ``image_root`` (default: the CSV's folder). The same trust
rules as class folders (``data/layout.py``, ``data/folder.py``): a row whose path is absolute
or climbs out of the image folder (``..``) is refused, naming its line; a file that is a
symlink to outside the image folder, missing, not a regular file, or not a readable image is
skipped and listed in ``dataset.skipped`` with the reason (one warning per load). A row with
the wrong number of fields, an empty filename or a filename listed twice stops the load with
one line naming the CSV line and how to fix it.

**Folder per label** (``multilabel_dataset_from_directory``): ``root/<label>/<images>``, as
for classes, but an image may sit in several label folders. The rule: files with the same
content (the same bytes, SHA-256) are one image with every label whose folder holds them
(a copy, a hard link or a symlink inside the root); the same file name with different bytes
is two images (cameras number files: ``cat/IMG_1.jpg`` and ``dog/IMG_1.jpg`` are not the
same photo), which the load warns about.

Both return a :class:`MultiLabelDataset`: ``.images`` uint8 N×C×H×W, ``.labels`` float32
N×L multi-hot, ``.class_names`` the L label names (sorted), ``.multi_label = True``.
"""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from ._warn import warn
from .layout import FileEntry, FolderLayoutError, display_path, scan_folder

__all__ = ["MultiLabelDataset", "MultiLabelDataError", "multilabel_dataset_from_csv",
           "multilabel_dataset_from_directory", "read_label_csv", "random_split"]

_FILE_HEADS = {"filename", "file", "file_name", "image", "images", "path", "filepath", "name"}
_LABEL_HEADS = {"labels", "label", "tags", "tag", "classes", "class"}


class MultiLabelDataError(ValueError):
    """A labels CSV or label folder that cannot be read as multi-label data."""


class MultiLabelDataset(torch.utils.data.Dataset):
    """Images with any number of labels each, held as tensors.

    images: uint8 N×C×H×W; labels: float32 N×L multi-hot (1 where the image has the label);
    class_names: the L label names; files: each image's path; skipped: ``(path, reason)``
    for each listed file that was not used. Indexing gives ``(image, labels)``.
    """

    multi_label = True

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, class_names,
                 files=None, skipped=None, root: str | None = None):
        if images.ndim != 4 or images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 N×C×H×W, got {images.dtype} "
                             f"{tuple(images.shape)}")
        if labels.ndim != 2 or len(labels) != len(images) or labels.shape[1] != len(class_names):
            raise ValueError(f"labels must be N×L = {len(images)}×{len(class_names)}, got "
                             f"{tuple(labels.shape)}")
        self.images, self.labels = images, labels.to(torch.float32)
        self.class_names = list(class_names)
        self.files = list(files) if files is not None else None
        self.skipped = list(skipped or [])
        self.root = root

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def label_counts(self) -> dict[str, int]:
        """Images carrying each label."""
        return dict(zip(self.class_names, self.labels.sum(0).long().tolist()))

    def subset(self, indices) -> "MultiLabelDataset":
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        files = [self.files[i] for i in idx.tolist()] if self.files is not None else None
        return MultiLabelDataset(self.images[idx], self.labels[idx], self.class_names, files,
                                 self.skipped, self.root)

    def split(self, validation_split: float, seed: int = 0):
        """(training, validation): a seeded random ``validation_split`` share held out."""
        tr, va = random_split(len(self), validation_split, seed)
        return self.subset(tr), self.subset(va)

    def numpy(self) -> tuple[np.ndarray, np.ndarray]:
        return self.images.permute(0, 2, 3, 1).numpy(), self.labels.numpy()

    def __repr__(self) -> str:
        c, h, w = self.images.shape[1:] if len(self) else (0, 0, 0)
        return (f"MultiLabelDataset({len(self)} images of {h}x{w}x{c}, "
                f"{len(self.class_names)} labels)")


def random_split(n: int, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train positions, held-out positions), each sorted: ``round(fraction * n)`` held out
    at random (seeded). Multi-label rows cannot be stratified per class as folders are."""
    order = np.random.default_rng([int(seed), 0x6D6C]).permutation(n)
    k = int(round(fraction * n))
    return np.sort(order[k:]), np.sort(order[:k])


# --------------------------------------------------------------------------------- CSV

def _is_header(row: list[str]) -> bool:
    return (len(row) >= 2 and row[0].strip().lower() in _FILE_HEADS
            and row[1].strip().lower() in _LABEL_HEADS)


def read_label_csv(path, label_delimiter: str = " ") -> list[tuple[int, str, list[str]]]:
    """The rows of a labels CSV as ``(line number, filename, labels)``; raises
    ``MultiLabelDataError`` naming the first bad line."""
    path = Path(path)
    if not path.is_file():
        raise MultiLabelDataError(f"{path}: no such labels CSV")
    if label_delimiter in ("", ","):
        raise MultiLabelDataError(f"label delimiter {label_delimiter!r}: the labels of an image "
                                  "share one CSV field, so the delimiter must be something else "
                                  "than ',' (e.g. ' ', ';' or '|')")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise MultiLabelDataError(f"{path}: not UTF-8 text (byte {err.start}); save the CSV as "
                                  "UTF-8") from None
    rows, seen, first = [], {}, True
    reader = csv.reader(text.splitlines())
    try:
        for row in reader:
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            if first:
                first = False
                if _is_header(row):
                    continue
            if len(row) != 2:
                raise MultiLabelDataError(
                    f"{path}: line {line}: expected 2 fields (filename,labels), found {len(row)}"
                    f" ({','.join(row)[:60]!r}); separate the labels with {label_delimiter!r}, "
                    "not commas, or quote a field that holds a comma")
            name, field = row[0].strip(), row[1]
            if not name:
                raise MultiLabelDataError(f"{path}: line {line}: the filename is empty; "
                                          "give each row an image file")
            if name in seen:
                raise MultiLabelDataError(
                    f"{path}: line {line}: {name} is listed again (first on line {seen[name]}); "
                    "give each image one row with all its labels")
            seen[name] = line
            labels = [t.strip() for t in field.split(label_delimiter)] if label_delimiter.strip() \
                else field.split()
            rows.append((line, name, sorted({t for t in labels if t})))
    except csv.Error as err:
        raise MultiLabelDataError(f"{path}: line {reader.line_num}: not valid CSV ({err})") from None
    if not rows:
        raise MultiLabelDataError(f"{path}: no image rows; expected lines like "
                                  f"'img1.jpg,cat{label_delimiter}dog'")
    return rows


def _resolve(csv_path: Path, root: Path, line: int, name: str) -> str:
    """The file a row names, inside ``root``; refuses paths that leave it."""
    rel = Path(name)
    if rel.is_absolute() or rel.drive:
        raise MultiLabelDataError(f"{csv_path}: line {line}: {name} is an absolute path; give "
                                  f"paths relative to the image folder {root}")
    joined = os.path.normpath(root / rel)
    if os.path.commonpath([joined, str(root)]) != str(root):
        raise MultiLabelDataError(f"{csv_path}: line {line}: {name} leaves the image folder "
                                  f"{root}; give paths inside it")
    return joined


def _why_unusable(path: str, real_root: str) -> str | None:
    """Why a listed file is not read (None: it is a regular file inside the root)."""
    real = os.path.realpath(path)
    if os.path.commonpath([real, real_root]) != real_root:
        return f"symlink to outside the image folder ({display_path(real)}), refused"
    if not os.path.lexists(path):
        return "no such file"
    if not os.path.exists(path):
        return "dangling symlink"
    if not os.path.isfile(path):
        return "not a regular file"
    return None


def _decode(paths: list[str], image_size, color_mode: str, root: Path):
    """Decode ``paths`` in parallel -> (uint8 N×C×H×W, keep mask, [(path, reason)])."""
    from .folder import _decode_all
    entries = [FileEntry(p, 0, 0, 0, 0, 0) for p in paths]  # the decoder reads only .path
    return _decode_all(entries, color_mode, tuple(image_size) if image_size else None,
                       "bilinear", False, False, None, root)


def _finish(paths, labels: np.ndarray, names, skipped, image_size, color_mode, root: Path,
            what: str) -> MultiLabelDataset:
    if not paths:
        raise MultiLabelDataError(f"{what}: none of the listed files can be read "
                                  f"({'; '.join(f'{display_path(p)}: {r}' for p, r in skipped[:3])})")
    images, ok, bad = _decode(paths, image_size, color_mode, root)
    skipped = skipped + bad
    if not ok.any():
        raise MultiLabelDataError(f"{what}: none of its {len(paths)} files is a readable image")
    if skipped:
        first = "; ".join(f"{display_path(p)}: {r}" for p, r in skipped[:3])
        warn(f"{what}: skipped {len(skipped)} files ({first}{'; ...' if len(skipped) > 3 else ''})."
             " See dataset.skipped.")
    keep = np.nonzero(ok)[0]
    files = [paths[i] for i in keep]
    return MultiLabelDataset(torch.from_numpy(np.ascontiguousarray(images[ok])),
                             torch.from_numpy(labels[keep]), names, files, skipped, str(root))


def multilabel_dataset_from_csv(path, *, label_delimiter: str = " ", image_root=None,
                                image_size=None, color_mode: str = "rgb",
                                class_names=None) -> MultiLabelDataset:
    """Read the images and labels a labels CSV lists (see the module doc for the format).

    image_root: the folder the filenames are relative to (default: the CSV's folder).
    image_size: (H, W) to resize to (None: their own size; mixed sizes go to the most common,
    with a warning). class_names: fix the labels and their order (e.g. a model's); a label
    outside them is an error naming its line."""
    csv_path = Path(path).expanduser()
    rows = read_label_csv(csv_path, label_delimiter)
    root = Path(image_root).expanduser().resolve() if image_root else csv_path.resolve().parent
    if not root.is_dir():
        raise MultiLabelDataError(f"image folder {root} does not exist")
    found = sorted({t for _, _, labels in rows for t in labels})
    names = list(class_names) if class_names is not None else found
    index = {n: j for j, n in enumerate(names)}
    real_root = os.path.realpath(root)
    paths, targets, skipped = [], [], []
    for line, name, labels in rows:
        unknown = [t for t in labels if t not in index]
        if unknown:
            raise MultiLabelDataError(f"{csv_path}: line {line}: label {unknown[0]!r} is not one "
                                      f"of the {len(names)} labels ({', '.join(names[:8])}...)")
        file = _resolve(csv_path, root, line, name)
        why = _why_unusable(file, real_root)
        if why:
            skipped.append((file, why))
            continue
        row = np.zeros(len(names), np.float32)
        row[[index[t] for t in labels]] = 1
        paths.append(file)
        targets.append(row)
    if not names:
        raise MultiLabelDataError(f"{csv_path}: no row has a label; write each image's labels "
                                  f"after its filename, separated by {label_delimiter!r}")
    labels = np.stack(targets) if targets else np.zeros((0, len(names)), np.float32)
    return _finish(paths, labels, names, skipped, image_size, color_mode, root, str(csv_path))


def _sha256(path: str) -> str | None:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


def multilabel_dataset_from_directory(root, *, image_size=None, color_mode: str = "rgb",
                                      class_names=None) -> MultiLabelDataset:
    """``root/<label>/<images>``, an image in every folder of its labels: files with the same
    bytes are one image with all their folders' labels (see the module doc)."""
    try:
        layout = scan_folder(root, class_names)
    except FolderLayoutError as err:
        raise MultiLabelDataError(str(err)) from err
    if layout.is_split:
        raise MultiLabelDataError(f"{layout.root}: a folder per label is read flat "
                                  "(root/<label>/<images>), not in train/val/test splits; give "
                                  "one split's folder, or hold out with --val-split")
    names = layout.class_names
    real_root = os.path.realpath(layout.root)
    skipped = list(layout.unlisted.get("all", []))
    by_hash: dict[str, int] = {}
    paths, targets, names_seen = [], [], {}
    for e in layout.files["all"]:
        why = _why_unusable(e.path, real_root)
        digest = None if why else _sha256(e.path)
        if why or digest is None:
            skipped.append((e.path, why or "cannot read"))
            continue
        if digest not in by_hash:
            by_hash[digest] = len(paths)
            paths.append(e.path)
            targets.append(np.zeros(len(names), np.float32))
        targets[by_hash[digest]][e.label] = 1
        names_seen.setdefault(os.path.basename(e.path), set()).add(digest)
    clashes = sorted(n for n, digests in names_seen.items() if len(digests) > 1)
    if clashes:
        warn(f"{layout.root}: {len(clashes)} file names ({', '.join(clashes[:3])}) are in several "
             "label folders with different content: each is a separate image (one image in "
             "several folders must be the same bytes: a copy, hard link or symlink)")
    labels = np.stack(targets) if targets else np.zeros((0, len(names)), np.float32)
    return _finish(paths, labels, names, skipped, image_size, color_mode, layout.root,
                   str(layout.root))
