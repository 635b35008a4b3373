"""Keras files both ways: Keras 3 ``.keras``, Keras 2 ``.h5``, ``.weights.h5``.

Read with ``zipfile`` / ``json`` / ``h5py`` only (never unpickled, no code from the file
runs; ``Lambda`` and custom layer classes are refused). ``files`` reads bytes, ``graph``
turns a Keras config into layers + calls, ``layer_map`` is the one table of Keras classes
(build, weights both ways, Keras config), ``convert`` moves weights (the Flatten order),
``functional`` builds and writes graphs through cnnkit's functional API, ``reader`` /
``writer`` / ``legacy_writer`` are the entry points.
"""

from .errors import KerasFileError
from .layer_map import Converter, register
from .reader import load_keras_model, load_keras_weights
from .writer import save_keras_model, save_keras_weights

__all__ = ["KerasFileError", "Converter", "register", "load_keras_model", "load_keras_weights",
           "save_keras_model", "save_keras_weights"]
