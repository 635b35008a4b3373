"""One training run from a ``TrainConfig`` (moved to the ``cnnkit.run`` package; this module
keeps the old import path)::

    from cnnkit.config import TrainConfig
    from cnnkit.experiment import train
    result = train(TrainConfig(data="cifar10", model="simple-cnn", epochs=10))
    result.run.report        # runs/cifar10-simple-cnn/report.html

Resuming (``train(resume="runs/<name>")``) rebuilds the same data split, model and
optimizer from the run's config, loads the checkpoint (weights, optimizer state, RNG states,
the loader's shuffle state and the position inside the epoch) and continues, so a CPU run
ends with the same weights as one that was never stopped.
"""

from .run.build import UnknownModelName, build_model, compile_model, default_model  # noqa: F401
from .run.data import Data, DataError, load_data  # noqa: F401
from .run.directory import explicit_command  # noqa: F401
from .run.evaluate import evaluate  # noqa: F401
from .run.loader import ResumableLoader
from .run.orchestrator import Interrupt, TrainResult, train  # noqa: F401

RunLoader = ResumableLoader  # the one resumable loader (old name)
_compile = compile_model

__all__ = ["train", "TrainResult", "Data", "load_data", "build_model", "default_model",
           "DataError", "UnknownModelName"]
