"""Decode a list of image files to one uint8 N×C×H×W array, resized as TensorFlow does, in
worker processes (``decode_pool``, into shared memory) and cached on disk (the cache of
``folder.py``, keyed on every file's path, size and modification time and on the options).

Pixels: Pillow decodes (``decode.decode_image``, which handles the odd modes and bad
files), ``tf_resize`` resizes; values are rounded to uint8 (TensorFlow hands out the
float32 result, so a resized pixel is at most 0.5 from Keras's). Grey from a colour PNG
uses libpng's integer weights, as TensorFlow's PNG decoder does.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch

from . import decode_pool
from ._warn import warn
from .cache import cache_root
from .decode import decode_image, sniff_format
from .folder import _cache_key, _read_cache, _reason, _write_cache
from .keras_image import load_resized
from .layout import FileEntry
from .tf_resize import resize_image

__all__ = ["decode_files"]

_VERSION = 1
_CHANNELS = {"rgb": 3, "grayscale": 1, "rgba": 4}


def _png_grey(path: str) -> np.ndarray:
    """Grey as libpng makes it from RGB (TensorFlow's decode_png(channels=1))."""
    rgb = decode_image(path, color_mode="rgb").astype(np.uint32)
    grey = (rgb[..., 0] * 9797 + rgb[..., 1] * 19234 + rgb[..., 2] * 3737) >> 15
    return grey.astype(np.uint8)[..., None]


def _decode_one(path: str, color_mode: str) -> np.ndarray:
    """H×W×C uint8 at the file's own size."""
    if color_mode == "grayscale":
        with open(path, "rb") as f:
            if sniff_format(f.read(16)) == "PNG":
                return _png_grey(path)
    return decode_image(path, color_mode=color_mode)


def _why(path: str, e: Exception) -> str:
    try:
        return _reason(path, e)
    except OSError:  # the file cannot even be looked at (a broken link, no permission)
        return f"unreadable ({type(e).__name__}: {e})"


def _read(path: str, options: dict) -> np.ndarray:
    """One file -> H×W×C uint8: at its own size, or already resized by Pillow for
    ``resizer='pil'`` (flow_from_directory: Keras's load_img). Raises if it is unreadable."""
    if options.get("resizer") == "pil":
        return load_resized(path, options["color_mode"], options["image_size"],
                            options["interpolation"], options["crop_to_aspect_ratio"])
    return _decode_one(path, options["color_mode"])


def _resized(arr: np.ndarray, options: dict) -> np.ndarray:
    """H×W×C uint8 -> C×H×W uint8 at ``options['image_size']``, as TensorFlow resizes
    (Pillow already resized it for ``resizer='pil'``)."""
    if options.get("resizer") == "pil":
        return arr.transpose(2, 0, 1)
    img = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    resized = resize_image(img, options["image_size"], options["interpolation"],
                           options["crop_to_aspect_ratio"], options["pad_to_aspect_ratio"])
    return resized.round_().clamp_(0, 255).to(torch.uint8).numpy()


def _rows_decoder(options: dict, key: int):
    """The function a worker runs over its chunk of (row, path): each file read, resized and
    written into row ``row`` of the shared array ``key`` (``decode_pool.read_rows``)."""
    return functools.partial(decode_pool.read_rows, read=functools.partial(_read, options=options),
                             why=_why, key=key, store=functools.partial(_resized, options=options))


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not on this platform
        return None


def _check_fits(n: int, channels: int, h: int, w: int) -> None:
    """Refuse, with what to do, an array that cannot fit in memory (not an OOM kill later)."""
    need, have = n * channels * h * w, _physical_memory()
    if have is not None and need > 0.75 * have:
        raise MemoryError(
            f"{n} images of {h}×{w}×{channels} need {need / 2**30:.1f} GiB as uint8, more than "
            f"this machine's memory allows ({have / 2**30:.1f} GiB): pass a smaller image_size "
            "(Keras's default is 256×256), or stream the folder with "
            "cnnkit.datasets.stream_from_directory")


def _decode(paths: list[str], options: dict, workers: int | None):
    n = len(paths)
    h, w = options["image_size"]
    _check_fits(n, _CHANNELS[options["color_mode"]], h, w)
    ok = np.zeros(n, bool)
    reasons: dict[int, str] = {}
    # Worker processes, not threads: small images decode mostly under the GIL (decode_pool.py)
    parts = decode_pool.chunked(enumerate(paths), workers)
    with decode_pool.shared_output((n, _CHANNELS[options["color_mode"]], h, w)) as (key, out):
        decode = _rows_decoder(options, key)
        for decoded, _, failed in decode_pool.imap_chunks(
                decode, parts, workers, initializer=decode_pool.torch_in_child):
            ok[decoded] = True
            reasons.update(failed)
    return out, ok, [(paths[i], reasons[i]) for i in sorted(reasons)]


def decode_files(paths: list[str], options: dict, *, cache: bool = True, cache_dir=None,
                 workers: int | None = None, where: str = ""):
    """(uint8 N×C×H×W of the readable files, keep mask over ``paths``, skipped list).

    ``options``: color_mode, image_size (H, W), interpolation, crop_to_aspect_ratio,
    pad_to_aspect_ratio; ``resizer='pil'`` resizes with Pillow instead of TensorFlow's
    arithmetic (``flow_from_directory``, whose ``keep_aspect_ratio`` is the crop option).
    Unreadable files are skipped with one warning naming them.
    """
    entries = []
    for p in paths:
        try:
            st = os.stat(p)
            entries.append(FileEntry(os.path.abspath(p), 0, st.st_size, st.st_mtime_ns,
                                     st.st_ctime_ns, st.st_ino))
        except OSError:  # e.g. a broken link: decoding reports it
            entries.append(FileEntry(os.path.abspath(p), 0, -1, 0, 0, 0))
    folder = cache_root(cache_dir) / "folders"
    root = Path(os.path.commonpath([e.path for e in entries])) if entries else Path(".")
    stem, key = _cache_key(root, entries, {**options, "kind": "keras-tf", "v": _VERSION})
    hit = _read_cache(folder, key) if cache else None
    if hit is not None:
        images, keep, meta = hit
        keep = keep.astype(bool)
        skipped = [tuple(s) for s in meta["skipped"]]
    else:
        images, keep, skipped = _decode(paths, options, workers)
        if cache:  # all rows (unreadable ones zero) and the keep mask as the "labels"
            _write_cache(folder, stem, key, images, keep.astype(np.int64),
                         {"version": 1, "root": str(root), "skipped": skipped,
                          "options": options})
    if skipped:
        first = "; ".join(f"{p}: {r}" for p, r in skipped[:3])
        warn(f"{where or root}: skipped {len(skipped)} of {len(paths)} files that are not "
             f"readable images ({first}{'; ...' if len(skipped) > 3 else ''})")
    return (images if keep.all() else images[keep]), keep, skipped
