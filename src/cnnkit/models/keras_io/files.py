"""Reading the bytes of Keras files with ``zipfile``, ``json`` and ``h5py`` only.

Nothing here unpickles or runs code from the file. Three layouts:

- Keras 3 ``.keras``: a zip of ``config.json`` (the model), ``metadata.json`` and
  ``model.weights.h5``, whose layers keep their variables as ``layers/<name>/vars/0..n``
  (a nested model: ``layers/<model>/layers/<name>/vars``).
- Keras 3 ``.weights.h5``: that same h5 layout on its own.
- Keras 2 (and Keras 3 "legacy") ``.h5``: the model config in the root attribute
  ``model_config`` and the weights under ``model_weights/<layer>/`` listed in order by the
  ``weight_names`` attribute (a weights-only file has the layer groups at its root).

Weights come back as :class:`WeightStore`: layer path (a tuple of names) -> the layer's
arrays in Keras's own order (``layer.weights``: kernel, bias; gamma, beta, moving mean,
moving variance).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from .errors import KerasFileError

CONFIG = "config.json"
METADATA = "metadata.json"
WEIGHTS = "model.weights.h5"


def _h5py():
    try:
        import h5py
    except ImportError as err:  # pragma: no cover - h5py is a core dependency
        raise KerasFileError("reading Keras files needs h5py: pip install h5py") from err
    return h5py


class WeightStore:
    """Layer path -> list of numpy arrays in Keras's order."""

    def __init__(self, arrays: dict[tuple, list[np.ndarray]], source: str, legacy: bool):
        self.arrays = arrays
        self.source = source
        self.legacy = legacy  # Keras 2 layout: keyed by layer names, not Keras 3's class names

    def get(self, path: tuple) -> list[np.ndarray]:
        return self.arrays.get(tuple(path), [])

    def __contains__(self, path) -> bool:
        return tuple(path) in self.arrays


def _array(group, key: str, source: str) -> np.ndarray:
    """One stored array, refusing HDF5 links and datasets that pull data from other files."""
    import h5py
    link = group.get(key, getlink=True)
    dataset = group[key] if isinstance(link, h5py.HardLink) else None
    if dataset is None or not isinstance(dataset, h5py.Dataset) or dataset.is_virtual \
            or dataset.external:
        raise KerasFileError(f"{source}: '{group.name}/{key}' is a link or refers to data outside "
                             "the file; cnnkit reads only arrays stored in the file itself")
    if dataset.dtype.kind not in "fiub":
        raise KerasFileError(f"{source}: '{dataset.name}' holds {dataset.dtype}, not numbers")
    return np.asarray(dataset[()])


def _read_vars_tree(group, prefix: tuple, out: dict, source: str) -> None:
    """Keras 3 layout: every group with a ``vars`` child is a layer (or model) holding arrays."""
    import h5py
    if "vars" in group:
        vars_ = group["vars"]
        try:
            keys = sorted(vars_.keys(), key=int)
        except ValueError as err:
            raise KerasFileError(f"{source}: '{vars_.name}' holds arrays not numbered 0..n; the file "
                                 "is not Keras 3 weights") from err
        out[prefix] = [_array(vars_, k, source) for k in keys]
    for key in group.keys():
        if key != "vars" and isinstance(group.get(key, getlink=True), h5py.HardLink) \
                and isinstance(group[key], h5py.Group):
            _read_vars_tree(group[key], prefix + (key,), out, source)


def read_keras3_weights(h5file, source: str) -> WeightStore:
    """Keras 3 weights (``model.weights.h5`` or a ``.weights.h5``): paths under ``layers/``."""
    raw: dict[tuple, list[np.ndarray]] = {}
    _read_vars_tree(h5file, (), raw, source)
    # ("layers", "conv2d") -> ("conv2d",); ("layers", "seq", "layers", "dense") -> ("seq", "dense")
    arrays = {}
    for path, value in raw.items():
        if path and path[0] == "optimizer":
            continue
        names = tuple(p for i, p in enumerate(path) if not (i % 2 == 0 and p == "layers"))
        arrays[names] = value
    return WeightStore(arrays, source, legacy=False)


def _decode(value) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def read_legacy_weights(group, source: str) -> WeightStore:
    """Keras 2 layout: ``layer_names`` lists the layer groups, each ``weight_names`` its arrays."""
    if "layer_names" not in group.attrs:
        raise KerasFileError(f"{source} has no Keras weights (no 'layer_names' attribute); is it a "
                             "Keras .h5 file?")
    arrays = {}
    for layer in (_decode(n) for n in group.attrs["layer_names"]):
        if layer not in group:
            raise KerasFileError(f"{source} lists layer '{layer}' but holds no weights for it; "
                                 "the file is truncated or corrupt: save it again")
        lg = group[layer]
        names = [_decode(n) for n in lg.attrs.get("weight_names", [])]
        try:
            arrays[(layer,)] = [_legacy_array(lg, n, source) for n in names]
        except KeyError as err:
            raise KerasFileError(f"{source}: layer '{layer}' lists a weight the file does not hold "
                                 f"({err}); the file is truncated or corrupt") from err
    return WeightStore(arrays, source, legacy=True)


def _legacy_array(group, name: str, source: str) -> np.ndarray:
    """``conv2d/kernel:0`` style paths: walk them group by group, each step checked."""
    *parents, leaf = name.split("/")
    for part in parents:
        group = group[part]
    return _array(group, leaf, source)


def _json(text, what: str, source: str) -> dict:
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise KerasFileError(f"{what} in {source} is not valid JSON ({err}); the file is corrupt: "
                             "save it again from Keras") from err
    if not isinstance(value, dict):
        raise KerasFileError(f"{what} in {source} is not a JSON object; the file is corrupt")
    return value


def read_keras_zip(path: Path) -> tuple[dict, WeightStore, dict]:
    """(config, weights, metadata) of a Keras 3 ``.keras`` file."""
    source = str(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise KerasFileError(f"{source} is not a Keras 3 .keras file (not a zip archive: {err}); "
                             "save it with keras model.save('model.keras'), or load a Keras 2 "
                             "file by its .h5 name") from err
    with archive:
        names = set(archive.namelist())
        if CONFIG not in names:
            raise KerasFileError(f"{source} has no {CONFIG} inside; it is not a Keras 3 model file "
                                 "(or is truncated): save it again with model.save('model.keras')")
        if WEIGHTS not in names:
            extra = (" (its weights are sharded or stored as .npz, which cnnkit does not read; "
                     "save without sharding)" if any(n.endswith((".npz", ".json")) and n not in
                                                     (CONFIG, METADATA) for n in names) else "")
            raise KerasFileError(f"{source} has no {WEIGHTS} inside{extra}; save the model again "
                                 "with model.save('model.keras')")
        try:
            config = _json(archive.read(CONFIG), CONFIG, source)
            metadata = _json(archive.read(METADATA), METADATA, source) if METADATA in names else {}
            weights_bytes = archive.read(WEIGHTS)
        except (zipfile.BadZipFile, OSError, EOFError) as err:  # CRC errors, truncation
            raise KerasFileError(f"{source} is corrupt ({err}); save it again") from err
    h5py = _h5py()
    try:
        with h5py.File(io.BytesIO(weights_bytes), "r") as f:
            weights = read_keras3_weights(f, source)
    except OSError as err:
        raise KerasFileError(f"{WEIGHTS} in {source} is not a readable HDF5 file ({err}); "
                             "the file is corrupt: save it again") from err
    return config, weights, metadata


def _open_h5(path: Path, expected: str):
    """``path`` opened read-only with h5py, or one KerasFileError line saying it is not
    ``expected`` (an HDF5 file that cannot be read: corrupt, or another kind of file)."""
    h5py = _h5py()
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise KerasFileError(f"{path} is not a readable HDF5 file ({err}); the file is corrupt "
                             f"or not {expected}") from err


def read_legacy_h5(path: Path) -> tuple[dict, WeightStore, dict]:
    """(config, weights, metadata) of a Keras 2 HDF5 model file (``model.save('x.h5')``)."""
    source = str(path)
    with _open_h5(path, "a Keras .h5 model") as f:
        if "model_config" not in f.attrs:
            hint = ("it holds weights only: build the model, then model.load_weights(path)"
                    if "layer_names" in f.attrs or "layers" in f else "it is not a Keras model file")
            raise KerasFileError(f"{source} has no model_config attribute; {hint}")
        config = _json(_decode(f.attrs["model_config"]), "model_config", source)
        group = f["model_weights"] if "model_weights" in f else f
        weights = read_legacy_weights(group, source)
        metadata = {"keras_version": _decode(f.attrs.get("keras_version", "")),
                    "backend": _decode(f.attrs.get("backend", ""))}
    return config, weights, metadata


def read_weights_file(path: Path) -> WeightStore:
    """Weights only: a Keras 3 ``.weights.h5`` or a Keras 2 ``save_weights('x.h5')`` file."""
    source = str(path)
    with _open_h5(path, "Keras weights") as f:
        if "layer_names" in f.attrs or "model_weights" in f:
            return read_legacy_weights(f["model_weights"] if "model_weights" in f else f, source)
        if "layers" in f or "vars" in f:
            return read_keras3_weights(f, source)
    raise KerasFileError(f"{source} holds no Keras weights (neither Keras 3 'layers/' groups nor "
                         "Keras 2 'layer_names'); save them with model.save_weights('x.weights.h5')")
