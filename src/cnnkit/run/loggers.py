"""``--log tensorboard,mlflow``: a run's experiment loggers, fed history.csv's rows.

:class:`RunLoggers` sits after the ``RunRecorder`` in the callback list and hands each
epoch's row, as the recorder wrote it to history.csv (same keys, same numbers; an epoch an
interrupt cut short has no row and is not logged), to the Keras-signature callbacks
``cnnkit.callbacks.TensorBoard`` and ``cnnkit.callbacks.MLflowLogger``. Step = epoch index
(history.csv's epoch N is step N-1), as Keras's TensorBoard callback counts.

    RUN/tensorboard/train, RUN/tensorboard/validation   event files (val_* keys go to
                                                         validation without the prefix)
    RUN/mlruns/ (or --mlflow-uri DIR)                    MLflow's file store
    RUN/mlflow.json                                      which MLflow run this run is

Params: the TrainConfig (MLflow params; a "config" text in TensorBoard). At the end MLflow
also gets the test metrics and, as artifacts, metrics.json, history.csv, config.toml and
report.html. A resumed run writes to the same log dir (TensorBoard hides events from the
resumed step on, so epochs re-trained after a hard kill are not shown twice) and continues
the same MLflow run (id from mlflow.json); MLflow, which cannot delete a point, gets an
epoch once a checkpoint holds it (at once with ``--checkpoint-every 1``, the default), so a
kill between checkpoints leaves nothing a resume logs again.
"""

from __future__ import annotations

import importlib.util
import json

from ..train.callbacks import Callback

__all__ = ["LOGGERS", "parse_log", "log_problem", "RunLoggers", "run_loggers", "describe_logs"]

# --log name -> (module it needs, the extra that installs it)
LOGGERS = {"tensorboard": ("tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow")}
TENSORBOARD_DIR, MLFLOW_DIR, MLFLOW_FILE = "tensorboard", "mlruns", "mlflow.json"


def parse_log(spec: str) -> list[str]:
    """'tensorboard,mlflow' -> ['tensorboard', 'mlflow'] (lower case, no repeats)."""
    names: list[str] = []
    for part in str(spec or "").replace(" ", ",").split(","):
        part = part.strip().lower()
        if part and part not in names:
            names.append(part)
    return names


def log_problem(spec: str, mlflow_uri: str = "") -> str | None:
    """Why ``--log spec`` (with ``--mlflow-uri``) cannot run here, or None."""
    for name in parse_log(spec):
        if name not in LOGGERS:
            return f"unknown logger {name!r}: give tensorboard, mlflow or both (tensorboard,mlflow)"
        module, extra = LOGGERS[name]
        if importlib.util.find_spec(module) is None:
            return f"--log {name} needs the {module} package: pip install 'cnnkit[{extra}]'"
    if mlflow_uri:
        if "mlflow" not in parse_log(spec):
            return "--mlflow-uri is for --log mlflow: add --log mlflow, or leave it out"
        from ..train.mlflow_logger import local_store_uri
        try:
            local_store_uri(mlflow_uri)
        except ValueError as err:
            return f"--mlflow-uri: {err}"
    return None


def _config_markdown(config: dict) -> str:
    rows = "\n".join(f"| {k} | {json.dumps(v)} |" for k, v in config.items())
    return "| setting | value |\n| --- | --- |\n" + rows


class RunLoggers(Callback):
    """The run's ``--log`` loggers; last in the callback list (after the recorder)."""

    def __init__(self, run, cfg, recorder, *, interrupt, resumed: bool):
        super().__init__()
        self.run, self.cfg, self.recorder = run, cfg, recorder
        self.interrupt, self.resumed = interrupt, resumed
        self.names = parse_log(cfg.log)
        self.loggers: dict[str, Callback] = {}
        self.pending: list[tuple[int, dict]] = []  # MLflow rows no checkpoint holds yet
        self.logged = recorder.rows[-1]["epoch"] if recorder.rows else 0  # history.csv's epochs

    def _tensorboard(self):
        from ..train.tensorboard import TensorBoard
        tb = TensorBoard(log_dir=self.run.path / TENSORBOARD_DIR, write_graph=False)
        if self.resumed:
            tb.purge_step = self.logged  # the first step this run writes (epoch index)
        else:
            tb.write_text("config", _config_markdown(self.cfg.to_dict()))
        return tb

    def _mlflow(self):
        from ..train.mlflow_logger import MLflowLogger
        where = self.run.path / MLFLOW_FILE
        if self.resumed and where.is_file():
            saved = json.loads(where.read_text())
            return MLflowLogger(saved["tracking_uri"], run_id=saved["run_id"], end_run=False)
        logger = MLflowLogger(self.cfg.mlflow_uri or self.run.path / MLFLOW_DIR,
                              run_name=self.run.path.name, params=self.cfg.to_dict(),
                              end_run=False)
        logger.start()
        self.run.write_json(where, {"tracking_uri": logger.tracking_uri,
                                    "run_id": logger.run_id})
        return logger

    def on_train_begin(self, logs=None):
        for name in self.names:
            logger = getattr(self, f"_{name}")()
            logger.set_model(self.model)
            logger.set_params(self.params)
            logger.on_train_begin(logs)
            self.loggers[name] = logger

    def _checkpointed(self) -> int:
        """Epochs the run's checkpoint holds: a resume after a kill re-trains those after it."""
        try:
            return int(json.loads((self.run.checkpoint / "state.json").read_text())["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    def _flush_mlflow(self, upto: int) -> None:
        while self.pending and self.pending[0][0] < upto:
            epoch, row = self.pending.pop(0)
            self.loggers["mlflow"].on_epoch_end(epoch, row)

    def on_epoch_end(self, epoch, logs=None):
        rows = self.recorder.rows
        if not rows or rows[-1]["epoch"] != epoch + 1 or epoch + 1 <= self.logged:
            return  # an epoch cut short: no history row, nothing logged
        self.logged = epoch + 1
        row = {k: v for k, v in rows[-1].items() if k != "epoch"}
        if "tensorboard" in self.loggers:  # at once: a resume purges what it re-trains
            self.loggers["tensorboard"].on_epoch_end(epoch, row)
        if "mlflow" in self.loggers:  # once a checkpoint holds the epoch (MLflow cannot purge)
            self.pending.append((epoch, row))
            self._flush_mlflow(self._checkpointed())

    def on_train_end(self, logs=None):
        if "mlflow" in self.loggers:
            self._flush_mlflow(self.logged)  # training ended: no epoch is re-trained now
        for logger in self.loggers.values():
            logger.on_train_end(logs)
        if self.interrupt.hit and "mlflow" in self.loggers:
            self.loggers["mlflow"].end("KILLED")  # resuming sets it running again

    def finish(self, metrics: dict | None) -> None:
        """After the run's evaluation and report: MLflow gets the test metrics and the files."""
        mlflow = self.loggers.get("mlflow")
        if mlflow is None:
            return
        final = {k: v for k, v in (metrics or {}).items()
                 if k in ("test_loss", "test_accuracy", "macro_precision", "macro_recall",
                          "macro_f1")}
        mlflow.log_metrics(final, step=max(self.logged - 1, 0))
        for path in (self.run.metrics, self.run.history, self.run.config_toml, self.run.report):
            mlflow.log_artifact(path)
        mlflow.end()


def run_loggers(cfg, run, recorder, *, interrupt, resumed: bool) -> RunLoggers | None:
    """The run's loggers when ``cfg.log`` names any (None otherwise)."""
    if not parse_log(cfg.log):
        return None
    return RunLoggers(run, cfg, recorder, interrupt=interrupt, resumed=resumed)


def describe_logs(run_path) -> list[str]:
    """A line per logger that wrote into the run directory, saying how to open it (report.html)."""
    from pathlib import Path
    path = Path(run_path)
    lines = []
    if (path / TENSORBOARD_DIR).is_dir():
        lines.append(f"TensorBoard: {TENSORBOARD_DIR}/ (train, validation): "
                     f"tensorboard --logdir {path / TENSORBOARD_DIR}")
    if (path / MLFLOW_FILE).is_file():
        try:
            saved = json.loads((path / MLFLOW_FILE).read_text())
            lines.append(f"MLflow: run {saved['run_id']} in {saved['tracking_uri']}: "
                         "MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri "
                         f"{saved['tracking_uri']}")
        except (OSError, ValueError, KeyError, TypeError):
            lines.append(f"MLflow: {MLFLOW_FILE} is unreadable")
    return lines
