"""Named datasets (MNIST, Fashion-MNIST, CIFAR-10/100, the bundled sample) from their
canonical files.

``load(name)`` returns ``(x_train, y_train), (x_test, y_test)`` as Keras does: uint8
N×H×W×C numpy images (MNIST gets its channel axis: N×28×28×1) and int64 class indices of
shape (N,) (Keras gives CIFAR labels as (N, 1); ``to_categorical`` and the engine take both).

Where the files come from, in order:

1. ``path=DIR``: the canonical files in a local folder (nothing is downloaded). Checksums
   are compared with the published ones; a mismatch warns (``DatasetChecksumWarning``) and
   the file is still read, because the parsers check every header and size.
2. The cache, ``cache_root()/datasets/<name>/`` (``~/.cache/cnnkit``, ``$CNNKIT_CACHE`` or
   ``cache_dir=``): files there were verified when they were written.
3. A download from the canonical addresses, verified against the published md5
   (torchvision's table) and written atomically. Set ``CNNKIT_OFFLINE=1`` or pass
   ``download=False`` to never try; the error then says which files to put where.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._warn import warn
from .cache import atomic_path, cache_root
from .cifar import load_batch_arrays
from .download import DownloadError, download, file_md5
from .idx import read_idx

__all__ = ["load", "class_names", "info", "available", "DatasetInfo",
           "DatasetNotFoundError", "DatasetFileError", "DatasetChecksumWarning"]


class DatasetNotFoundError(FileNotFoundError):
    """The files of a named dataset are neither local, cached nor downloadable."""


class DatasetFileError(ValueError):
    """A dataset archive (cached or local) that is corrupt or cut short."""


@contextlib.contextmanager
def _open_tar(archive: Path):
    """``archive`` opened for reading; a corrupt one is named, with what to do about it."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            yield tar
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise DatasetFileError(f"{archive}: corrupt or incomplete archive ({err}); delete it "
                               "(cnnkit downloads it again) or put a good copy there") from err


class DatasetChecksumWarning(UserWarning):
    """A local file differs from the published checksum (it is still read and validated)."""


@dataclass(frozen=True)
class DatasetInfo:
    """What a named dataset is and which canonical files make it."""

    name: str
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]            # H, W, C
    train_size: int
    test_size: int
    kind: str                                    # "idx" | "cifar" | "npz"
    files: dict = field(default_factory=dict)    # split -> ((filename, md5), ...)
    mirrors: tuple[str, ...] = ()
    archive: tuple[str, str] | None = None       # (filename, md5) of the published tarball
    folder: str = ""                             # folder inside the archive
    label_key: str = "labels"
    meta: tuple[str, str] | None = None          # (filename, md5) of the class-name file
    homepage: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def urls(self, filename: str) -> list[str]:
        return [m + filename for m in self.mirrors]


_DIGITS = tuple(str(i) for i in range(10))
_FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
            "Sneaker", "Bag", "Ankle boot")
_CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
            "truck")
_CIFAR100_FINE = tuple("""apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle
bowl boy bridge bus butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud
cockroach couch crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster
house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle
mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain
plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk
skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone
television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman
worm""".split())
_CIFAR100_COARSE = tuple("""aquatic_mammals fish flowers food_containers fruit_and_vegetables
household_electrical_devices household_furniture insects large_carnivores
large_man-made_outdoor_things large_natural_outdoor_scenes large_omnivores_and_herbivores
medium_mammals non-insect_invertebrates people reptiles small_mammals trees vehicles_1
vehicles_2""".split())

_MNIST_FILES = {
    "train": (("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
              ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432")),
    "test": (("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
             ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c")),
}
_FASHION_FILES = {
    "train": (("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
              ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe")),
    "test": (("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
             ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310")),
}

# Published checksums: torchvision's tables (torchvision/datasets/mnist.py, cifar.py).
DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        "mnist", _DIGITS, (28, 28, 1), 60000, 10000, "idx", _MNIST_FILES,
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "http://yann.lecun.com/exdb/mnist/"),
        homepage="http://yann.lecun.com/exdb/mnist/"),
    "fashion_mnist": DatasetInfo(
        "fashion_mnist", _FASHION, (28, 28, 1), 60000, 10000, "idx", _FASHION_FILES,
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        homepage="https://github.com/zalandoresearch/fashion-mnist"),
    "cifar10": DatasetInfo(
        "cifar10", _CIFAR10, (32, 32, 3), 50000, 10000, "cifar",
        {"train": (("data_batch_1", "c99cafc152244af753f735de768cd75f"),
                   ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
                   ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
                   ("data_batch_4", "634d18415352ddfa80567beed471001a"),
                   ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb")),
         "test": (("test_batch", "40351d587109b95175f43aff81a1287e"),)},
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        archive=("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),
        folder="cifar-10-batches-py", label_key="labels",
        meta=("batches.meta", "5ff9c542aee3614f3951f8cda6e48888"),
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html"),
    "cifar100": DatasetInfo(
        "cifar100", _CIFAR100_FINE, (32, 32, 3), 50000, 10000, "cifar",
        {"train": (("train", "16019d7e3df5f24257cddd939b257f8d"),),
         "test": (("test", "f0ef6b0ae62326f3e7ffdfab6717acfc"),)},
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        archive=("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85"),
        folder="cifar-100-python", label_key="fine_labels",
        meta=("meta", "7973b15100ade9c7d40fb424638fde48"),
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html"),
    "bundled": DatasetInfo(
        "bundled", _DIGITS, (28, 28, 1), 0, 0, "npz",
        {"train": (("mnist_small.npz", ""),), "test": (("mnist_small.npz", ""),)},
        homepage="a small MNIST sample shipped inside the cnnkit package"),
}
_ALIASES = {"fashion-mnist": "fashion_mnist", "fashionmnist": "fashion_mnist",
            "cifar-10": "cifar10", "cifar-100": "cifar100", "mnist_small": "bundled"}
BUNDLED_FILE = Path(__file__).resolve().parent / "bundled" / "mnist_small.npz"


def available() -> list[str]:
    """The names ``load`` knows."""
    return sorted(DATASETS)


def info(name: str) -> DatasetInfo:
    """The ``DatasetInfo`` of a named dataset (class names, shapes, canonical files)."""
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(available())}")
    return DATASETS[key]


def class_names(name: str, label_mode: str = "fine") -> list[str]:
    """Class names of a named dataset, index i naming label i.

    ``label_mode='coarse'`` gives CIFAR-100's 20 superclasses.
    """
    ds = info(name)
    if ds.name == "cifar100" and label_mode == "coarse":
        return list(_CIFAR100_COARSE)
    return list(ds.class_names)


def _splits(split: str | None) -> list[str]:
    if split is None:
        return ["train", "test"]
    if split not in ("train", "test"):
        raise ValueError(f"split must be None, 'train' or 'test', got {split!r}")
    return [split]


def _offline() -> bool:
    from .download import offline
    return offline()


def _check_local(path: Path, md5: str, verify: bool) -> None:
    if verify and md5 and file_md5(path) != md5:
        warn(f"{path}: md5 differs from the published {md5}; reading it anyway, its format "
             "and sizes are checked (a re-compressed copy of the same data reads the same)",
             DatasetChecksumWarning)


def _missing_message(ds: DatasetInfo, where: Path, missing: list[str], splits: list[str],
                     local: bool, reasons: str = "") -> str:
    lines = [f"{ds.name}: {', '.join(missing)} not found in {where}."]
    train_names = [f for f, _ in ds.files["train"]]
    if set(splits) == {"train", "test"} and not set(train_names) & set(missing):
        lines.append("This folder holds only the training split (the test files are missing): "
                     f"cnnkit.datasets.{ds.name}.load_data(path=..., split='train') (or "
                     "load(..., split='train')) reads it; hold out part of it for validation.")
    if not local:
        lines.append(f"Offline, or the download failed. Put these canonical files into {where}/"
                     " (or into a folder you pass as path=...):")
    else:
        lines.append("Put these canonical files there:")
    for split in splits:
        for fname, md5 in ds.files[split]:
            if fname not in missing:
                continue
            src = (f"inside {ds.archive[0]} from {ds.urls(ds.archive[0])[0]}" if ds.archive
                   else f"from {ds.urls(fname)[0]}" if ds.mirrors else "")
            lines.append(f"  {fname}  (md5 {md5}) {src}".rstrip())
    if ds.archive:
        lines.append(f"or the archive {ds.archive[0]} itself (md5 {ds.archive[1]}).")
    if reasons:
        lines.append(reasons)
    return "\n".join(lines)


# ----------------------------------------------------------------------------- IDX (MNIST)

def _read_idx_split(files: dict[str, Path], ds: DatasetInfo, split: str):
    (img_name, _), (lab_name, _) = ds.files[split]
    images = read_idx(files[img_name])
    labels = read_idx(files[lab_name]).astype(np.int64)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{ds.name} {split}: images {images.shape} and labels {labels.shape} "
                         "do not pair up")
    return images[..., None], labels  # N×H×W -> N×H×W×1


# ---------------------------------------------------------------------------- CIFAR batches

def _find_cifar_local(root: Path, ds: DatasetInfo, names: list[str]) -> dict[str, Path] | None:
    for base in (root / ds.folder, root):
        if all((base / n).is_file() for n in names):
            return {n: base / n for n in names}
    return None


def _extract_members(archive: Path, ds: DatasetInfo, dest_dir: Path, verify: bool) -> None:
    """Extract the known batch files (and only those) from the archive, verified, atomically."""
    wanted = {n: md5 for split in ("train", "test") for n, md5 in ds.files[split]}
    if ds.meta:
        wanted[ds.meta[0]] = ds.meta[1]
    found = set()
    with _open_tar(archive) as tar:
        for member in tar:
            name = member.name.rsplit("/", 1)[-1]
            if not member.isfile() or name not in wanted or name in found:
                continue
            data = tar.extractfile(member).read()
            if verify:
                got = hashlib.md5(data, usedforsecurity=False).hexdigest()
                if got != wanted[name]:
                    raise DownloadError(f"{archive}: member {name} has md5 {got}, "
                                        f"published {wanted[name]}")
            with atomic_path(dest_dir / name) as tmp:
                tmp.write_bytes(data)
            found.add(name)
    if found != set(wanted):
        raise DownloadError(f"{archive}: lacks {sorted(set(wanted) - found)}")


def _read_cifar_split(files: dict[str, Path], ds: DatasetInfo, split: str, label_key: str):
    parts = [load_batch_arrays(files[n], label_key) for n, _ in ds.files[split]]
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))


def _read_cifar_tar(archive: Path, ds: DatasetInfo, splits: list[str], label_key: str):
    """Read the batches straight out of a local archive, without extracting it."""
    out = {}
    with _open_tar(archive) as tar:
        members = {m.name.rsplit("/", 1)[-1]: m for m in tar.getmembers() if m.isfile()}
        for split in splits:
            parts = []
            for n, _ in ds.files[split]:
                if n not in members:
                    raise DatasetNotFoundError(f"{archive}: member {n} missing")
                fobj = io.BytesIO(tar.extractfile(members[n]).read())
                parts.append(load_batch_arrays(f"{archive}:{n}", label_key, fileobj=fobj))
            out[split] = (np.concatenate([p[0] for p in parts]),
                          np.concatenate([p[1] for p in parts]))
    return out


# --------------------------------------------------------------------------------- bundled

def _load_bundled(path: Path | None, splits: list[str]):
    npz = BUNDLED_FILE
    if path is not None:
        npz = path / BUNDLED_FILE.name if path.is_dir() else path
    if not npz.is_file():
        raise DatasetNotFoundError(f"bundled: {npz} not found; the bundled sample ships with "
                                   "the cnnkit package (data/bundled/mnist_small.npz)")
    with np.load(npz, allow_pickle=False) as z:
        out = {}
        for split in splits:
            x = np.asarray(z[f"x_{split}"], dtype=np.uint8)
            out[split] = (x[..., None] if x.ndim == 3 else x,
                          np.asarray(z[f"y_{split}"]).astype(np.int64).reshape(-1))
    return out


# ------------------------------------------------------------------------------------- load

def load(name: str, path: str | os.PathLike | None = None,
         cache_dir: str | os.PathLike | None = None, split: str | None = None, *,
         download: bool = True, verify: bool = True, label_mode: str = "fine",
         quiet: bool = False):
    """Load a named dataset from its canonical files.

    Returns ``(x_train, y_train), (x_test, y_test)``; with ``split='train'`` or
    ``split='test'`` only that ``(x, y)`` pair. Images are uint8 N×H×W×C numpy arrays,
    labels int64 (N,). ``class_names(name)`` gives the label names.

    path: a local folder holding the canonical files (never downloads).
    cache_dir: the cache root (default ``$CNNKIT_CACHE`` or ``~/.cache/cnnkit``).
    download: try the canonical addresses when the files are not cached.
    verify: compare checksums with the published ones.
    label_mode: CIFAR-100 only, ``'fine'`` (100 classes) or ``'coarse'`` (20).
    """
    ds = info(name)
    splits = _splits(split)
    if label_mode not in ("fine", "coarse"):
        raise ValueError(f"label_mode must be 'fine' or 'coarse', got {label_mode!r}")
    label_key = ("coarse_labels" if ds.name == "cifar100" and label_mode == "coarse"
                 else ds.label_key)
    local = Path(path).expanduser() if path is not None else None

    if ds.kind == "npz":
        out = _load_bundled(local, splits)
    elif local is not None:
        out = _load_local(ds, local, splits, label_key, verify)
    else:
        out = _load_cached(ds, cache_root(cache_dir) / "datasets" / ds.name, splits,
                           label_key, download and not _offline(), verify, quiet)
    pairs = [out[s] for s in splits]
    return pairs[0] if split is not None else tuple(pairs)


def _load_local(ds: DatasetInfo, root: Path, splits: list[str], label_key: str, verify: bool):
    if not root.is_dir():
        raise DatasetNotFoundError(f"{ds.name}: path={root} is not a folder")
    wanted = [(n, md5) for s in splits for n, md5 in ds.files[s]]
    if ds.kind == "idx":
        missing = [n for n, _ in wanted if not (root / n).is_file()]
        if missing:
            raise DatasetNotFoundError(_missing_message(ds, root, missing, splits, local=True))
        for n, md5 in wanted:
            _check_local(root / n, md5, verify)
        files = {n: root / n for n, _ in wanted}
        return {s: _read_idx_split(files, ds, s) for s in splits}
    # CIFAR: extracted batches (in root or root/<folder>) or the archive itself.
    files = _find_cifar_local(root, ds, [n for n, _ in wanted])
    if files is not None:
        for n, md5 in wanted:
            _check_local(files[n], md5, verify)
        return {s: _read_cifar_split(files, ds, s, label_key) for s in splits}
    archive = root / ds.archive[0]
    if archive.is_file():
        _check_local(archive, ds.archive[1], verify)
        return _read_cifar_tar(archive, ds, splits, label_key)
    missing = [n for n, _ in wanted if not ((root / n).is_file()
                                            or (root / ds.folder / n).is_file())]
    raise DatasetNotFoundError(_missing_message(ds, root, missing, splits, local=True))


def _load_cached(ds: DatasetInfo, where: Path, splits: list[str], label_key: str,
                 allow_download: bool, verify: bool, quiet: bool):
    wanted = [(n, md5) for s in splits for n, md5 in ds.files[s]]
    base = where / ds.folder if ds.folder else where
    missing = [n for n, _ in wanted if not (base / n).is_file()]
    if missing and ds.archive and (where / ds.archive[0]).is_file():
        _extract_members(where / ds.archive[0], ds, base, verify)  # the user dropped it there
        missing = [n for n, _ in wanted if not (base / n).is_file()]
    if missing:
        reasons = "" if allow_download else (
            "Downloads are off (download=False or CNNKIT_OFFLINE is set).")
        if allow_download:
            try:
                _download_into(ds, where, missing, verify, quiet)
            except DownloadError as e:
                reasons = str(e)
        missing = [n for n, _ in wanted if not (base / n).is_file()]
        if missing:
            raise DatasetNotFoundError(
                _missing_message(ds, base, missing, splits, local=False, reasons=reasons))
    files = {n: base / n for n, _ in wanted}
    if ds.kind == "idx":
        return {s: _read_idx_split(files, ds, s) for s in splits}
    return {s: _read_cifar_split(files, ds, s, label_key) for s in splits}


def _download_into(ds: DatasetInfo, where: Path, missing: list[str], verify: bool,
                   quiet: bool) -> None:
    if ds.kind == "idx":
        md5s = {n: md5 for s in ("train", "test") for n, md5 in ds.files[s]}
        for n in missing:
            download(ds.urls(n), where / n, md5s[n] if verify else None, quiet=quiet)
        return
    archive = where / ds.archive[0]
    download(ds.urls(ds.archive[0]), archive, ds.archive[1] if verify else None, quiet=quiet)
    try:
        _extract_members(archive, ds, where / ds.folder, verify)
    finally:
        archive.unlink(missing_ok=True)  # the extracted, verified batches are what we keep
