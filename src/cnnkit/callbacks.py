"""Keras-named callbacks (``cnnkit.callbacks.EarlyStopping`` ...)."""

from .train.averaging import EMA, SWA  # noqa: F401
from .train.backup_restore import BackupAndRestore  # noqa: F401
from .train.callbacks import *  # noqa: F401,F403
from .train.callbacks import __all__ as _base_all
from .train.history import History  # noqa: F401 - what fit returns
from .train.mlflow_logger import MLflowLogger  # noqa: F401
from .train.progbar import ProgbarLogger  # noqa: F401
from .train.tensorboard import TensorBoard  # noqa: F401

__all__ = list(_base_all) + ["BackupAndRestore", "ProgbarLogger", "TensorBoard", "History",
                             "MLflowLogger", "EMA", "SWA"]
