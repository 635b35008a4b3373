"""Keras files both ways: Keras 3 ``.keras``, Keras 2 ``.h5``, ``.weights.h5``.

Read with ``zipfile`` / ``json`` / ``h5py`` only (never unpickled, no code from the file
runs; a ``Lambda`` layer is refused). ``files`` reads bytes, ``graph`` turns a Keras config
into layers + calls, ``layer_map`` is the one table of Keras classes (build, weights both
ways, Keras config), ``convert`` moves weights, ``reader`` / ``writer`` are the entry points.
"""

from .errors import KerasFileError
from .layer_map import Converter, register
from .reader import load_keras_model, load_keras_weights
from .writer import save_keras_model, save_keras_weights

KERAS_MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def is_keras_weights(path) -> bool:
    name = str(path).lower()
    return name.endswith((".weights.h5", ".h5", ".hdf5"))


def is_keras_model(path) -> bool:
    return str(path).lower().endswith(KERAS_MODEL_SUFFIXES)


__all__ = ["KerasFileError", "Converter", "register", "load_keras_model", "load_keras_weights",
           "save_keras_model", "save_keras_weights", "is_keras_model", "is_keras_weights"]
