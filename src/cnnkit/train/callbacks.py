"""Callbacks with Keras's hook names. The engine calls them; they steer it through the model.

A callback sees ``self.model`` (the ``cnnkit.Model`` being trained: ``stop_training``,
``learning_rate``, ``get_weights``/``set_weights``, ``save``) and ``self.params``
(epochs, steps).
"""

from __future__ import annotations

import csv
import inspect
import math
import os
from pathlib import Path

import numpy as np

__all__ = ["Callback", "CallbackList", "EarlyStopping", "ModelCheckpoint", "ReduceLROnPlateau",
           "CSVLogger", "TerminateOnNaN", "LearningRateScheduler", "LambdaCallback"]


class Callback:
    """Keras's callback: every hook takes ``logs`` (a dict, possibly empty) as Keras passes it.

    Beyond Keras: ``on_after_backward(batch, logs)`` and ``on_before_optimizer_step(batch,
    logs)`` (gradients are in ``.grad``; ``self.model.fit_state`` has the epoch, batch, global
    step, loss and augmentation generator), and ``state_dict()`` / ``load_state_dict(state)``
    so a resumed run continues a stateful callback where it was. A loaded state survives the
    ``on_train_begin`` that would otherwise reset it.
    """

    def __init__(self):
        self.model = None
        self.params: dict = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params: dict):
        self.params = params

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_batch_begin(self, batch, logs=None): ...
    def on_batch_end(self, batch, logs=None): ...

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)  # Keras's backwards-compatible alias

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_test_begin(self, logs=None): ...
    def on_test_end(self, logs=None): ...
    def on_test_batch_begin(self, batch, logs=None): ...
    def on_test_batch_end(self, batch, logs=None): ...
    def on_predict_begin(self, logs=None): ...
    def on_predict_end(self, logs=None): ...
    def on_predict_batch_begin(self, batch, logs=None): ...
    def on_predict_batch_end(self, batch, logs=None): ...
    def on_after_backward(self, batch, logs=None): ...
    def on_before_optimizer_step(self, batch, logs=None): ...

    # -- state for resume ---------------------------------------------------------------
    #: attributes ``state_dict`` saves (JSON-friendly values); subclasses list theirs
    state_keys: tuple = ()

    def state_dict(self) -> dict:
        """The callback's progress as plain values (JSON-friendly), for a checkpoint."""
        return {k: _plain(getattr(self, k, None)) for k in self.state_keys}

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state_dict()``'s values (kept through the next ``on_train_begin``)."""
        unknown = set(state) - set(self.state_keys)
        if unknown:
            raise KeyError(f"{type(self).__name__}.load_state_dict: unknown keys {sorted(unknown)}; "
                           f"expected {list(self.state_keys)}")
        for k, v in state.items():
            setattr(self, k, v)
        self._loaded_state = dict(state)

    def _reset_unless_loaded(self, **fresh) -> None:
        """``on_train_begin``'s reset: ``fresh`` values, or the loaded state once after a load."""
        loaded = self.__dict__.pop("_loaded_state", None)
        for k, v in fresh.items():
            setattr(self, k, v)
        for k, v in (loaded or {}).items():
            setattr(self, k, v)


def _plain(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def _overrides(cb, event: str) -> bool:
    """Does ``cb`` do something on ``event`` (a method of its own or a LambdaCallback hook)?"""
    if event in vars(cb):
        return True
    mine = getattr(type(cb), event, None)
    if mine is not getattr(Callback, event, None):
        return True
    alias = {"on_train_batch_begin": "on_batch_begin", "on_train_batch_end": "on_batch_end"}.get(event)
    return alias is not None and _overrides(cb, alias)


class CallbackList:
    """Dispatches each event to every callback, in order."""

    def __init__(self, callbacks, model, params):
        self.callbacks = []
        for cb in list(callbacks or []):
            self.append(cb, model, params)

    def append(self, cb, model, params) -> None:
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks must be cnnkit.callbacks.Callback objects, got {cb!r}")
        cb.set_model(model)
        cb.set_params(params)
        self.callbacks.append(cb)

    def wants(self, event: str) -> bool:
        """Whether any callback listens to ``event`` (per-batch logs cost a host sync)."""
        return any(_overrides(cb, event) for cb in self.callbacks)

    def any(self, flag: str) -> bool:
        return any(getattr(cb, flag, False) for cb in self.callbacks)

    @property
    def wants_batch_logs(self) -> bool:
        return self.wants("on_train_batch_end")

    def on_train_begin(self, logs=None):
        # callbacks that restore a training state (BackupAndRestore) go first, so the others
        # begin from what was restored
        first = [cb for cb in self.callbacks if getattr(cb, "restores_training", False)]
        for cb in first + [cb for cb in self.callbacks if cb not in first]:
            cb.on_train_begin(logs)

    def __getattr__(self, event):
        if not event.startswith("on_"):
            raise AttributeError(event)

        def dispatch(*args, **kwargs):
            for cb in self.callbacks:
                getattr(cb, event)(*args, **kwargs)
        return dispatch


def _monitor_mode(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    return "max" if any(k in monitor for k in ("acc", "auc", "precision", "recall", "f1")) else "min"


class _Monitor(Callback):
    """Shared logic: watch one log key and tell whether a value improves on the best."""

    def __init__(self, monitor: str, mode: str, min_delta: float):
        super().__init__()
        self.monitor = monitor
        self.mode = _monitor_mode(monitor, mode)
        self.min_delta = abs(min_delta)
        self.best = None

    def _improves(self, value: float, reference) -> bool:
        if reference is None:
            return True
        if self.mode == "max":
            return value - self.min_delta > reference
        return value + self.min_delta < reference

    def _current(self, logs):
        """The monitored value; None on an epoch fit did not validate (``validation_freq``),
        which Keras's callbacks skip."""
        logs = logs or {}
        state = getattr(self.model, "fit_state", None)
        if self.monitor not in logs and self.monitor.startswith("val_") \
                and getattr(state, "validated", None) is False:
            return None
        if self.monitor not in logs:
            raise KeyError(f"{type(self).__name__} monitors {self.monitor!r} but the logs only have "
                           f"{sorted(logs)}; pass validation data for 'val_' keys or change monitor=")
        return float(logs[self.monitor])


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved for ``patience`` epochs."""

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta)
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch

    state_keys = ("wait", "stopped_epoch", "best", "best_epoch", "best_weights")

    def on_train_begin(self, logs=None):
        self._reset_unless_loaded(wait=0, stopped_epoch=0, best=None, best_epoch=0, best_weights=None)

    def state_dict(self) -> dict:
        """Counters and best value; ``best_weights`` (numpy arrays, for restore_best_weights)
        is the only non-JSON entry: a checkpoint writer keeps it with the tensors."""
        state = super().state_dict()
        if not self.restore_best_weights:
            state.pop("best_weights")
        return state

    def on_epoch_end(self, epoch, logs=None):
        current = self._current(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        self.wait += 1
        if self._improves(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._improves(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(_Monitor):
    """Save the model (or only its weights) after each epoch (or every ``save_freq`` batches),
    or only when ``monitor`` improves.

    ``filepath`` may hold ``{epoch:02d}``, ``{batch}`` and log keys like ``{val_loss:.2f}``.
    The suffix chooses the format through ``model.save`` / ``model.save_weights``: ``.keras``
    (a single Keras file), ``.weights.h5`` (HDF5 weights, with ``save_weights_only=True``),
    ``.safetensors`` (weights) or a cnnkit model folder.
    """

    state_keys = ("best",)

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__(monitor, mode, 0.0)
        self.filepath = os.fspath(filepath)
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only or self.filepath.endswith(".safetensors")
        if save_freq != "epoch" and not (isinstance(save_freq, int) and save_freq > 0):
            raise ValueError(f"ModelCheckpoint save_freq must be 'epoch' or a positive number of "
                             f"batches, got {save_freq!r}")
        if self.save_weights_only and self.filepath.endswith(".keras"):
            raise ValueError(f"ModelCheckpoint: save_weights_only=True writes weights, but {self.filepath!r} "
                             "ends in .keras (a whole model); use a path ending in .weights.h5")
        if not self.save_weights_only and self.filepath.endswith(".weights.h5"):
            raise ValueError(f"ModelCheckpoint: {self.filepath!r} is a weights file; pass "
                             "save_weights_only=True or use a path ending in .keras")
        self.save_freq = save_freq
        self.best = initial_value_threshold
        self._batches_seen = 0
        self._epoch = 0
        if save_freq != "epoch":  # only then a batch hook (batch logs cost a host sync each)
            self.on_train_batch_end = self._batch_end

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _batch_end(self, batch, logs=None):
        self._batches_seen += 1
        if self._batches_seen % self.save_freq == 0:
            self._save(self._epoch, logs or {}, batch=batch)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, logs or {})

    def file_path(self, epoch: int, logs: dict, batch: int | None = None) -> str:
        """``filepath`` formatted as Keras does: 1-based ``epoch`` (and ``batch``), log keys."""
        extra = {} if batch is None else {"batch": batch + 1}
        try:
            return self.filepath.format(epoch=epoch + 1, **extra, **logs)
        except KeyError as err:
            raise KeyError(f"ModelCheckpoint filepath {self.filepath!r} names {err} but the logs only "
                           f"have {sorted(logs)}") from None

    def _save(self, epoch, logs, batch=None):
        path = self.file_path(epoch, logs, batch)
        if self.save_best_only:
            current = self._current(logs)
            if current is None:
                return
            if not self._improves(current, self.best):
                if self.verbose:
                    print(f"Epoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return
            if self.verbose:
                best = "inf" if self.best is None else f"{self.best:.5f}"
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {best} to {current:.5f}, "
                      f"saving model to {path}")
            self.best = current
        elif self.verbose:
            print(f"Epoch {epoch + 1}: saving model to {path}")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path, overwrite=True)


class ReduceLROnPlateau(_Monitor):
    """Multiply the learning rate by ``factor`` after ``patience`` epochs without improvement."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau factor must be < 1, got {factor}")
        super().__init__(monitor, mode, min_delta)
        self.factor, self.patience, self.verbose = factor, patience, verbose
        self.cooldown, self.min_lr = cooldown, min_lr

    state_keys = ("wait", "cooldown_counter", "best")

    def on_train_begin(self, logs=None):
        self._reset_unless_loaded(wait=0, cooldown_counter=0, best=None)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.model.learning_rate
        current = self._current(logs)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improves(current, self.best):
            self.best = current
            self.wait = 0
            return
        if self.cooldown_counter > 0:
            return
        self.wait += 1
        if self.wait >= self.patience:
            old = self.model.learning_rate
            if old > self.min_lr:
                new = max(old * self.factor, self.min_lr)
                self.model.learning_rate = new
                if self.verbose:
                    print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new:.4g}.")
                self.cooldown_counter = self.cooldown
                self.wait = 0


class CSVLogger(Callback):
    """Write one CSV row per epoch: epoch, then the log keys."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = str(filename)
        self.separator = separator
        self.append = append
        self.keys = None

    def on_train_begin(self, logs=None):
        self.keys = None
        exists = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        if exists:
            with open(self.filename, newline="") as f:
                header = next(csv.reader(f, delimiter=self.separator), None)
            self.keys = header[1:] if header else None
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._writer = csv.writer(self._file, delimiter=self.separator)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            self._writer.writerow(["epoch"] + self.keys)
        self._writer.writerow([epoch] + [logs.get(k, "NA") for k in self.keys])
        self._file.flush()

    def on_train_end(self, logs=None):
        self._file.close()


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch loss is NaN or infinite, as Keras does: the epoch ends
    there, is validated and recorded in History (its loss NaN), and ``on_train_end`` runs.

    ``restore_last_good=True`` (cnnkit's option) then puts back the weights of the last epoch
    whose loss was finite, and says so.
    """

    terminates_on_nan = True  # the engine leaves NaN handling to this callback

    def __init__(self, restore_last_good: bool = False):
        super().__init__()
        self.restore_last_good = restore_last_good
        self._good = None

    def on_train_begin(self, logs=None):
        self._good = (None, self.model.get_weights()) if self.restore_last_good else None
        self.nan_seen = False

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True
            self.nan_seen = True

    def on_epoch_end(self, epoch, logs=None):
        if self.restore_last_good and not self.nan_seen:
            self._good = (epoch, self.model.get_weights())

    def on_train_end(self, logs=None):
        if self.restore_last_good and self.nan_seen and self._good is not None:
            epoch, weights = self._good
            self.model.set_weights(weights)
            where = "from before training" if epoch is None else f"of epoch {epoch + 1}"
            print(f"TerminateOnNaN: restored the weights {where}, the last with a finite loss")


class LearningRateScheduler(Callback):
    """Set the learning rate at each epoch start from ``schedule(epoch[, lr])``."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose
        self._takes_lr = len(inspect.signature(schedule).parameters) >= 2

    def on_epoch_begin(self, epoch, logs=None):
        lr = self.model.learning_rate
        new = self.schedule(epoch, lr) if self._takes_lr else self.schedule(epoch)
        new = float(new)
        if not np.isfinite(new):
            raise ValueError(f"LearningRateScheduler: schedule returned {new} at epoch {epoch}")
        self.model.learning_rate = new
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {new:.4g}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.model.learning_rate


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``."""

    def __init__(self, **hooks):
        super().__init__()
        for name, fn in hooks.items():
            if not name.startswith("on_") or not callable(getattr(Callback, name, None)):
                raise ValueError(f"LambdaCallback takes Keras's on_* hooks (on_epoch_end, "
                                 f"on_train_batch_begin, ...), got {name!r}")
            setattr(self, name, fn)
