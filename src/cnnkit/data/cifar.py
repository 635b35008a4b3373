"""CIFAR-10/100 "python version" batches: read them without trusting pickle, and write them.

The canonical files are Python pickles of a dict with ``data`` (N×3072 uint8: 1024 red,
1024 green, 1024 blue values per image, rows in order) and ``labels`` (CIFAR-10) or
``fine_labels``/``coarse_labels`` (CIFAR-100). A pickle can run arbitrary code, so the
reader uses an unpickler that resolves only the few names a numpy array needs; any other
global (``os.system``, ...) is refused before it is called.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import BinaryIO

import numpy as np

__all__ = ["read_batch", "load_batch_arrays", "write_batch", "CifarFormatError"]


class CifarFormatError(ValueError):
    """A file that is not a well-formed CIFAR python batch."""


def _allowed_globals() -> dict[tuple[str, str], object]:
    import codecs

    try:  # numpy >= 2
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    allowed = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # protocol-2 pickles spell bytes this way
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = multiarray._reconstruct
    if hasattr(numeric, "_frombuffer"):
        for mod in ("numpy.core.numeric", "numpy._core.numeric"):
            allowed[(mod, "_frombuffer")] = numeric._frombuffer
    return allowed


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Resolves numpy array reconstruction and nothing else."""

    _allowed = None

    def find_class(self, module, name):
        if _ArrayOnlyUnpickler._allowed is None:
            _ArrayOnlyUnpickler._allowed = _allowed_globals()
        obj = _ArrayOnlyUnpickler._allowed.get((module, name))
        if obj is None:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: a CIFAR batch holds only numpy "
                "arrays, lists and strings")
        return obj


def _key(k):
    return k.decode("latin1") if isinstance(k, bytes) else k


def read_batch(path: str | os.PathLike, fileobj: BinaryIO | None = None) -> dict:
    """Unpickle one CIFAR batch (or meta) file safely; keys come back as ``str``.

    ``fileobj`` reads from an open binary file (a tar member) named ``path`` in messages.
    """
    try:
        if fileobj is not None:
            obj = _ArrayOnlyUnpickler(fileobj, encoding="latin1").load()
        else:
            with open(path, "rb") as f:
                obj = _ArrayOnlyUnpickler(f, encoding="latin1").load()
    except pickle.UnpicklingError as e:
        raise CifarFormatError(f"{path}: {e}") from e
    except (EOFError, ValueError, TypeError, IndexError, AttributeError, KeyError) as e:
        raise CifarFormatError(f"{path}: not a CIFAR python batch, or truncated ({e!r})") from e
    if not isinstance(obj, dict):
        raise CifarFormatError(f"{path}: expected a pickled dict, found {type(obj).__name__}")
    return {_key(k): v for k, v in obj.items()}


def load_batch_arrays(path: str | os.PathLike, label_key: str = "labels",
                      fileobj: BinaryIO | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> (uint8 N×32×32×3 images, int64 labels)."""
    batch = read_batch(path, fileobj)
    if "data" not in batch or label_key not in batch:
        raise CifarFormatError(f"{path}: keys {sorted(batch)} lack 'data' or {label_key!r}")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] % 3:
        raise CifarFormatError(f"{path}: 'data' is {data.dtype} {data.shape}, expected uint8 N×3072")
    if len(labels) != len(data):
        raise CifarFormatError(f"{path}: {len(data)} images but {len(labels)} labels")
    side = int(round((data.shape[1] // 3) ** 0.5))
    if 3 * side * side != data.shape[1]:
        raise CifarFormatError(f"{path}: rows of {data.shape[1]} values are not square RGB images")
    images = data.reshape(-1, 3, side, side).transpose(0, 2, 3, 1)  # N×3×H×W -> N×H×W×3
    return np.ascontiguousarray(images), labels


def write_batch(path: str | os.PathLike, images: np.ndarray, labels, *,
                label_key: str = "labels", extra: dict | None = None, protocol: int = 2) -> Path:
    """Write uint8 N×H×W×3 images as a CIFAR python batch (protocol 2, like the originals)."""
    images = np.asarray(images, dtype=np.uint8)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"write_batch: expected N×H×W×3 uint8 images, got {images.shape}")
    data = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    obj = {"batch_label": "cnnkit test batch", label_key: [int(v) for v in labels],
           "data": np.ascontiguousarray(data),
           "filenames": [f"image_{i:05d}.png" for i in range(len(images))]}
    obj.update(extra or {})
    path = Path(path)
    buf = io.BytesIO()
    pickle.dump(obj, buf, protocol=protocol)
    path.write_bytes(buf.getvalue())
    return path
