"""TensorBoard: Keras's callback writing event files TensorBoard opens.

As Keras lays them out: ``log_dir/train`` and ``log_dir/validation``, scalars
``epoch_<metric>`` at each epoch (``val_`` keys go to ``validation`` without the prefix),
``epoch_learning_rate``, ``batch_<metric>`` every ``update_freq`` batches when it is a number
or 'batch', weight histograms every ``histogram_freq`` epochs, and the model graph once
(``write_graph``). Written with ``torch.utils.tensorboard`` (the ``tensorboard`` package:
``pip install cnnkit[tensorboard]``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from .callbacks import Callback

__all__ = ["TensorBoard"]


def _summary_writer():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ImportError("cnnkit.callbacks.TensorBoard needs the tensorboard package: "
                          "pip install 'cnnkit[tensorboard]' (or pip install tensorboard)") from err
    return SummaryWriter


class TensorBoard(Callback):
    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0,
                 embeddings_freq=0, embeddings_metadata=None):
        super().__init__()
        self._writer_class = _summary_writer()  # fail here, at construction, if it is missing
        if update_freq not in ("epoch", "batch") and not (isinstance(update_freq, int) and update_freq > 0):
            raise ValueError(f"TensorBoard update_freq must be 'epoch', 'batch' or a positive number of "
                             f"batches, got {update_freq!r}")
        self.log_dir = Path(log_dir)
        self.histogram_freq, self.write_graph = histogram_freq, write_graph
        self.update_freq = 1 if update_freq == "batch" else update_freq
        self._writers = {}
        self._batch_step = 0
        self._graph_written = False
        self.purge_step = None  # a resumed run: events from this step on are hidden (re-trained)
        if self.update_freq != "epoch":  # only then a batch hook (batch logs cost a host sync each)
            self.on_train_batch_end = self._batch_end

    state_keys = ("_batch_step",)

    def _writer(self, name):
        if name not in self._writers:
            self._writers[name] = self._writer_class(str(self.log_dir / name),
                                                     purge_step=self.purge_step)
        return self._writers[name]

    def write_text(self, tag: str, text: str, step: int = 0) -> None:
        """A text (markdown) summary in ``train/``, e.g. a run's settings."""
        self._writer("train").add_text(tag, text, step)

    def on_train_begin(self, logs=None):
        if self.write_graph and not self._graph_written:
            self._write_graph()

    def _write_graph(self):
        self._graph_written = True
        shape = getattr(self.model, "torch_input_shape", None)
        if shape is None:
            return
        try:
            device = next(self.model.parameters()).device
            was = self.model.training
            self.model.eval()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._writer("train").add_graph(self.model, torch.zeros((1, *shape), device=device))
            self.model.train(was)
        except Exception as err:  # noqa: BLE001 - tracing is best effort; the scalars matter
            warnings.warn(f"TensorBoard: the model graph was not written ({type(err).__name__}: {err})",
                          RuntimeWarning, stacklevel=2)

    def _batch_end(self, batch, logs=None):
        self._batch_step += 1
        if self._batch_step % self.update_freq == 0:
            for key, value in (logs or {}).items():
                if isinstance(value, (int, float)):
                    self._writer("train").add_scalar(f"batch_{key}", value, self._batch_step)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        has_rate = "learning_rate" in logs or "lr" in logs  # (a run's history names it lr)
        if not has_rate and getattr(self.model, "optimizer", None) is not None:
            try:
                logs["learning_rate"] = float(self.model.learning_rate)
            except (AttributeError, RuntimeError):
                pass
        for key, value in logs.items():
            if not isinstance(value, (int, float)):
                continue
            split, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            self._writer(split).add_scalar(f"epoch_{name}", value, epoch)
        if self.histogram_freq and (epoch + 1) % self.histogram_freq == 0:
            for name, param in self.model.named_parameters():
                values = param.detach().float().cpu()
                self._writer("train").add_histogram(name.replace(".", "/"), values, epoch)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
