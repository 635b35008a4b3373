"""ProgbarLogger: Keras's progress printer as a callback.

``fit(verbose=1)`` draws a live line per epoch (``3/3 ━━━ 0s 5ms/step - accuracy: 0.4167 -
loss: 1.1789``), ``verbose=2`` one line at each epoch's end, ``verbose=0`` nothing; evaluate
and predict print when called on their own. While it is among the callbacks cnnkit's own bar
stays quiet, as Keras adds no second bar.
"""

from __future__ import annotations

import sys
import time

from .callbacks import Callback

__all__ = ["ProgbarLogger"]


def _fmt(logs) -> str:
    return " - ".join(f"{k}: {v:.4f}" for k, v in (logs or {}).items() if isinstance(v, (int, float)))


class ProgbarLogger(Callback):
    is_progbar = True

    def __init__(self, stream=None):
        super().__init__()
        self.stream = stream
        self.verbose, self.epochs, self.target = 1, 1, None
        self._in_fit = False

    def set_params(self, params):
        super().set_params(params)
        verbose = params.get("verbose", 1)
        self.verbose = 1 if verbose == "auto" else int(verbose)
        self.epochs = params.get("epochs", 1)
        self.target = params.get("steps")

    def _out(self):
        return self.stream or sys.stdout

    def _start(self):
        self.seen, self.t0, self._last = 0, time.perf_counter(), 0.0

    def _line(self, logs, final):
        seconds = time.perf_counter() - self.t0
        target = self.target or self.seen
        per_step = 1000 * seconds / max(self.seen, 1)
        width = 20
        done = int(width * self.seen / target) if target else width
        bar = "━" * done + " " * (width - done)
        text = f"{self.seen}/{target} {bar} {seconds:.0f}s {per_step:.0f}ms/step"
        metrics = _fmt(logs)
        return text + (f" - {metrics}" if metrics else "")

    def _update(self, batch, logs):
        self.seen = batch + 1
        now = time.perf_counter()
        if self.verbose == 1 and now - self._last >= 0.05:
            self._last = now
            self._out().write("\r" + self._line(logs, final=False))
            self._out().flush()

    def _finish(self, logs):
        if self.verbose == 1:
            self._out().write("\r" + self._line(logs, final=True) + "\n")
        elif self.verbose == 2:
            self._out().write(self._line(logs, final=True) + "\n")
        self._out().flush()

    def on_train_begin(self, logs=None):
        self._in_fit = True

    def on_train_end(self, logs=None):
        self._in_fit = False

    def on_epoch_begin(self, epoch, logs=None):
        self._start()
        if self.verbose and self.epochs > 1:
            self._out().write(f"Epoch {epoch + 1}/{self.epochs}\n")

    def on_train_batch_end(self, batch, logs=None):
        self._update(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._finish(logs)

    def on_test_begin(self, logs=None):
        if not self._in_fit:
            self._start()

    def on_test_batch_end(self, batch, logs=None):
        if not self._in_fit:
            self._update(batch, logs)

    def on_test_end(self, logs=None):
        if not self._in_fit:
            self._finish(logs)

    def on_predict_begin(self, logs=None):
        self._start()

    def on_predict_batch_end(self, batch, logs=None):
        self._update(batch, None)

    def on_predict_end(self, logs=None):
        self._finish(None)
