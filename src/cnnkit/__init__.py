"""cnnkit: build, train, evaluate, explain and ship CNN image classifiers.

Keras's workflow (``Sequential``, ``compile``, ``fit``, ``evaluate``, ``predict``) on a
PyTorch engine that trains any ``torch.nn.Module`` the same way.

Every name below loads on first use, so ``import cnnkit`` (and ``cnnkit --help``) does not
import torch until something needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# public name -> module it comes from (a submodule itself when the value is None)
_LAZY = {
    "Model": ".models.base", "Sequential": ".models.sequential", "load_model": ".models.saving",
    "Trainer": ".train.trainer", "Input": ".layers", "DataWarning": ".train.sanity",
    "callbacks": None, "layers": None, "losses": None, "metrics": None, "optimizers": None,
    "utils": None, "datasets": None, "applications": None, "explain": None, "export": None,
    "models": None, "activations": None, "constraints": None, "initializers": None,
    "regularizers": None, "preprocessing": None, "backend": None, "saving": None,
    "PerformanceWarning": ".speed.policy",
    "export_int8": None, "quantize_int8": ".export_int8",
}

__all__ = ["Input", "Model", "Sequential", "Trainer", "load_model", "layers", "callbacks", "losses",
           "metrics", "optimizers", "utils", "DataWarning", "__version__",
           "activations", "constraints", "initializers", "regularizers"]

if TYPE_CHECKING:  # what the names are, for editors and type checkers
    from . import callbacks, layers, losses, metrics, optimizers, utils  # noqa: F401
    from . import activations, constraints, initializers, regularizers  # noqa: F401
    from .layers import Input  # noqa: F401
    from .train.sanity import DataWarning  # noqa: F401
    from .models.base import Model  # noqa: F401
    from .models.saving import load_model  # noqa: F401
    from .models.sequential import Sequential  # noqa: F401
    from .train.trainer import Trainer  # noqa: F401


def __getattr__(name):
    if name in _LAZY:
        where = _LAZY[name]
        module = importlib.import_module(where or f".{name}", __name__)
        value = module if where is None else getattr(module, name)
        globals()[name] = value
        return value
    if name == "transfer":
        return importlib.import_module(".models.transfer", __name__).transfer
    raise AttributeError(f"module 'cnnkit' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
