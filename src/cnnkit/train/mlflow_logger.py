"""MLflowLogger: each epoch's logs as MLflow metrics in a local file store (``mlruns/``).

Like Keras's TensorBoard callback, the step of an epoch's metrics is the epoch index
(0-based: history.csv's epoch N is step N-1) and the keys are the logs' own (``loss``,
``val_accuracy``, ...). Params (a dict you pass, plus ``fit``'s epochs and steps) are logged
at train begin; ``log_artifact`` adds files. The store is a local folder only: a server URI
(http, databricks, ...) is refused, so nothing leaves the machine.

Written with ``mlflow.tracking.MlflowClient`` (the ``mlflow-skinny`` package:
``pip install 'cnnkit[mlflow]'``), which keeps no global "active run": several loggers and the
user's own ``mlflow.start_run`` do not disturb each other.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import urlparse

from .callbacks import Callback

__all__ = ["MLflowLogger", "local_store_uri", "mlflow_client"]

# MLflow 3 refuses the file store unless this is set; it is the local store asked for here
_ALLOW_FILE_STORE = "MLFLOW_ALLOW_FILE_STORE"
_MAX_PARAM = 6000  # characters MLflow keeps of a param value


def local_store_uri(path) -> str:
    """``path`` (a folder, or a ``file:`` URI) as a ``file://`` URI; anything that names a
    server or another backend is refused (ValueError) so that no run is sent over a network."""
    text = str(path)
    scheme = urlparse(text).scheme
    if scheme == "file":
        text = urlparse(text).path
    elif scheme and len(scheme) > 1:  # (one letter: a Windows drive, C:\\...)
        raise ValueError(f"MLflow tracking store {text!r}: give a local folder (e.g. mlruns); "
                         f"cnnkit never logs to a server ({scheme}:// is one)")
    folder = Path(text).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"MLflow tracking store {text!r} is a file: give a folder")
    return folder.resolve().as_uri()


def mlflow_client(uri: str):
    """An ``MlflowClient`` on the local store ``uri`` (one line naming the extra if missing)."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as err:
        raise ImportError("cnnkit.callbacks.MLflowLogger needs MLflow: pip install "
                          "'cnnkit[mlflow]' (or pip install mlflow-skinny)") from err
    os.environ.setdefault(_ALLOW_FILE_STORE, "true")
    return MlflowClient(tracking_uri=uri)


class MLflowLogger(Callback):
    """Log ``fit``'s epoch logs to MLflow.

    tracking_uri: a local folder (default ``mlruns``) or ``file:`` URI. experiment_name:
    created when missing. run_name: shown in the MLflow UI. run_id: continue that run
    instead of starting one (a resumed training). params: a dict logged once as the run's
    params. end_run: set the run FINISHED at train end (False: the caller ends it with
    :meth:`end`, e.g. after logging the report).
    """

    def __init__(self, tracking_uri="mlruns", experiment_name="cnnkit", run_name=None,
                 run_id=None, params=None, end_run=True):
        super().__init__()
        self.tracking_uri = local_store_uri(tracking_uri)
        self.client = mlflow_client(self.tracking_uri)  # fail here, at construction
        self.experiment_name, self.run_name = experiment_name, run_name
        self.run_id, self.run_params = run_id, dict(params or {})
        self.end_run = end_run
        self._params_logged = run_id is not None  # a continued run has its params already

    def start(self) -> str:
        """The MLflow run (made on first call, reopened when ``run_id`` was given); its id."""
        if self.run_id is None:
            experiment = self.client.get_experiment_by_name(self.experiment_name)
            experiment_id = (experiment.experiment_id if experiment is not None else
                             self.client.create_experiment(self.experiment_name))
            self.run_id = self.client.create_run(experiment_id, run_name=self.run_name).info.run_id
        else:
            self.client.update_run(self.run_id, status="RUNNING")
        return self.run_id

    def on_train_begin(self, logs=None):
        self.start()
        if not self._params_logged:  # fit's epochs and steps, then the caller's params
            fit = {f"fit_{k}": v for k, v in (self.params or {}).items()
                   if k in ("epochs", "steps") and isinstance(v, int)}
            self.log_params({**fit, **self.run_params})
            self._params_logged = True

    def log_params(self, params: dict) -> None:
        from mlflow.entities import Param
        items = [Param(str(k), str(v)[:_MAX_PARAM]) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def log_metrics(self, metrics: dict, step: int) -> None:
        from mlflow.entities import Metric
        now = int(time.time() * 1000)
        items = [Metric(str(k), float(v), now, int(step)) for k, v in metrics.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if items:
            self.client.log_batch(self.run_id, metrics=items)

    def log_artifact(self, path) -> None:
        if Path(path).is_file():
            self.client.log_artifact(self.run_id, str(path))

    def on_epoch_end(self, epoch, logs=None):
        self.log_metrics(dict(logs or {}), step=epoch)

    def on_train_end(self, logs=None):
        if self.end_run:
            self.end()

    def end(self, status: str = "FINISHED") -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, status=status)
