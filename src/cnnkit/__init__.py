"""cnnkit: build, train, evaluate, explain and ship CNN image classifiers.

Keras's workflow (``Sequential``, ``compile``, ``fit``, ``evaluate``, ``predict``) on a
PyTorch engine that trains any ``torch.nn.Module`` the same way.
"""

__version__ = "0.1.0"

from . import callbacks, layers, losses, metrics, optimizers, utils  # noqa: E402
from . import activations, constraints, initializers, regularizers  # noqa: E402
from .layers import Input  # noqa: E402
from .models.base import Model  # noqa: E402
from .models.saving import load_model  # noqa: E402
from .models.sequential import Sequential  # noqa: E402
from .train.trainer import Trainer  # noqa: E402
from .train.sanity import DataWarning  # noqa: E402

__all__ = ["Input", "Model", "Sequential", "Trainer", "load_model", "layers", "callbacks", "losses",
           "metrics", "optimizers", "utils", "DataWarning", "__version__",
           "activations", "constraints", "initializers", "regularizers"]


def __getattr__(name):
    # Heavier or optional parts load on first use.
    import importlib
    if name in ("datasets", "applications", "explain", "export", "models", "preprocessing",
                "backend", "saving"):
        return importlib.import_module(f".{name}", __name__)
    if name == "transfer":
        return importlib.import_module(".models.transfer", __name__).transfer
    raise AttributeError(f"module 'cnnkit' has no attribute {name!r}")
