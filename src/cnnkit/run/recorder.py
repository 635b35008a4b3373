"""What a run keeps as it trains: history.csv, checkpoints, best/ and last/.

The weights are serialised once per epoch: the checkpoint's ``model-*.safetensors`` is the
one write, and ``best/`` and ``last/`` are model folders whose ``model.safetensors`` is a
hard link to it (a copy where the file system has no links). ``best/`` is linked when an
epoch improves on the best so far (written, once, only when that epoch writes no
checkpoint); ``last/`` on an interrupt and at the end. No copy of the weights is kept in
memory for either.

In a data-parallel job it runs on every rank (a checkpoint gathers each rank's RNG states
and buffers) but only rank 0 (``main``) writes files.
"""

from __future__ import annotations

import math

import torch

from ..train.callbacks import Callback

__all__ = ["RunRecorder"]


def _cpu_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _split_state(state: dict, prefix: str) -> tuple[dict, dict]:
    """(tensors under ``prefix.<key>``, the JSON-able rest) of a callback's state_dict."""
    tensors, plain = {}, {}
    for key, value in (state or {}).items():
        if isinstance(value, torch.Tensor):
            tensors[f"{prefix}.{key}"] = value
        else:
            plain[key] = value
    return tensors, plain


class RunRecorder(Callback):
    """Last in the callback list: sees the epoch's logs after every other callback."""

    def __init__(self, run, plan, *, interrupt, ckpt, cut, clock, every: int, main: bool,
                 multi: bool):
        super().__init__()
        self.run, self.plan, self.interrupt, self.ckpt = run, plan, interrupt, ckpt
        self.cut, self.clock, self.every = cut, clock, every
        self.main, self.multi = main, multi
        self.loader = plan.loader
        meta = ckpt.meta if ckpt is not None else {}
        self.rows: list[dict] = list(meta.get("history") or [])
        self.best: dict = dict(meta.get("best") or {})
        # (epochs done, step) of the newest checkpoint and its model weights file
        self.saved_at = (ckpt.epoch, ckpt.step) if ckpt is not None else None
        self.model_file = ckpt.model_file if ckpt is not None else None
        if ckpt is not None and main and self.best.get("in_checkpoint"):
            self._link(self.run.best)  # killed between the checkpoint and its best/ link
        # a cut epoch's seconds, carried over to the run that finishes it
        self.partial: dict = dict(meta.get("partial_epoch") or {})
        self.stopped_at = None    # (epoch, step) when interrupted
        self.saved_interrupt = False
        self.last_state = None
        if ckpt is not None:
            clock.total = float(meta.get("train_seconds", 0.0))

    # -- events -----------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        from .checkpoint import set_rng_state
        if self.ckpt is not None:
            for index, cb in enumerate(self.plan.callbacks):
                if hasattr(cb, "load_state_dict"):
                    key = f"callbacks.{index}"
                    state = dict((self.ckpt.meta.get("callbacks") or {}).get(str(index)) or {})
                    state.update(self.ckpt.group(key))
                    if state:
                        cb.load_state_dict(state)
            set_rng_state(self.ckpt.tensors, self.ckpt.meta["rng"], self._generators())
        if self.interrupt.hit:
            self.model.stop_training = True

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.epoch_start = self.clock.seconds

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        timing = self.model.timing[-1] if getattr(self.model, "timing", None) else {}
        spent = {"epoch_s": self.clock.seconds - self.epoch_start,
                 "data_wait_s": timing.get("data_wait_s", 0.0),
                 "compute_s": timing.get("compute_s", 0.0)}
        spent = {k: v + float(self.partial.get(k, 0.0)) for k, v in spent.items()}
        if self.cut():
            self.partial = spent
            self.stopped_at = (epoch, self.loader.yielded)
            self._save_interrupted(epoch, self.loader.yielded, self.loader.epoch_start_state)
            return
        self.partial = {}
        row = {"epoch": epoch + 1}
        row.update({k: float(v) for k, v in logs.items() if isinstance(v, (int, float))})
        row["lr"] = float(self.model.optimizer.param_groups[0]["lr"])
        row.update({k: round(v, 4) for k, v in spent.items()})
        row["seconds"] = round(self.clock.seconds, 3)
        self.rows.append(row)
        if self.main:
            self.run.write_history(self.rows)
        done = epoch + 1
        improved = self._track_best(logs, done)
        finished = done == self.params.get("epochs") or self.plan.finished()
        if (self.every and done % self.every == 0) or self.interrupt.hit or finished:
            self._checkpoint(done, 0, self.loader.generator.get_state(), best_now=improved)
            if improved and self.main:
                self._link(self.run.best)
        elif improved and self.main:
            self.model.save(self.run.best)  # no checkpoint holds these weights
        if self.interrupt.hit:
            self.stopped_at = (done, 0)
            self.saved_interrupt = True
            if self.main:
                self._link(self.run.last)

    def on_train_end(self, logs=None):
        if self.interrupt.hit and not self.saved_interrupt:
            # stopped before any step ran: checkpoint where we stand
            epoch = self.rows[-1]["epoch"] if self.rows else (self.ckpt.epoch if self.ckpt else 0)
            self.stopped_at = (epoch, self.loader.skip)
            self._save_interrupted(epoch, self.loader.skip, self.loader.generator.get_state())

    # -- best / last --------------------------------------------------------------------
    def _track_best(self, logs, done: int) -> bool:
        if not self.plan.keep_best:
            return False
        monitor = "val_map" if "val_map" in logs else (  # multi-label: mAP
            "val_accuracy" if "val_accuracy" in logs else "accuracy")
        value = logs.get(monitor)
        if value is None or not math.isfinite(value) or (
                self.best and value <= self.best.get("value", -math.inf)):
            return False
        self.best = {"monitor": monitor, "value": float(value), "epoch": done}
        return True

    def _link(self, folder) -> None:
        """``folder`` (best/ or last/) as a model folder of the newest checkpoint's weights."""
        from ..models.saving import save_model
        save_model(self.plan.model, folder, weights_from=self.model_file)  # (self.model is
        # not set yet when a resumed run re-links best/ in __init__)

    def _holds_last(self) -> bool:
        """Whether the newest checkpoint holds the model's weights now (the last epoch's)."""
        last = self.rows[-1]["epoch"] if self.rows else None
        return self.model_file is not None and self.saved_at == (last, 0)

    def save_final(self) -> str:
        """Write last/ and best/ at the end of training; the model is left holding the weights
        the final evaluation reports (best when the plan keeps a best, else the last)."""
        from safetensors.torch import load_file

        from ..models.saving import WEIGHTS_FILE
        if self._holds_last():
            self._link(self.run.last)
        else:
            self.model.save(self.run.last)
        last_epoch = self.rows[-1]["epoch"] if self.rows else None
        if not self.plan.keep_best or not self.best:
            self._link(self.run.best) if self._holds_last() else self.model.save(self.run.best)
            return "last"  # (a recipe keeps its final weights only)
        if self.best.get("epoch") != last_epoch:
            self.last_state = _cpu_state(self.model)
            self.model.load_state_dict(load_file(str(self.run.best / WEIGHTS_FILE)))
        return "best"

    def restore_last(self) -> None:
        """Put the last weights back after the final evaluation of the best (as Keras's
        ``fit`` leaves them)."""
        if self.last_state is not None:
            self.model.load_state_dict(self.last_state)
            self.last_state = None

    def train_seconds(self) -> float:
        return self.clock.seconds

    # -- checkpoints -------------------------------------------------------------------
    def _generators(self) -> dict:
        return {"augment": self.plan.aug_gen} if self.plan.aug_gen is not None else {}

    def _callback_state(self) -> tuple[dict, dict]:
        tensors, plain = {}, {}
        for index, cb in enumerate(self.plan.callbacks):
            if hasattr(cb, "state_dict"):
                t, p = _split_state(cb.state_dict(), f"callbacks.{index}")
                tensors.update(t)
                plain[str(index)] = p
        return tensors, plain

    def _checkpoint(self, epoch: int, step: int, loader_state, best_now: bool = False) -> None:
        from ..train import ddp
        from .checkpoint import rank_local_tensors, save_checkpoint
        self.clock.pause()  # writing is not training
        tensors, plain = self._callback_state()
        ranks = None
        if self.multi:  # a collective: every rank takes part, rank 0 writes
            ranks = ddp.gather_tensors(rank_local_tensors(self.model, self._generators(), tensors))
        if self.main:
            # in_checkpoint: best/ is (to be) linked to this checkpoint's weights
            best = {**self.best, "in_checkpoint": best_now} if self.best else {}
            state = save_checkpoint(
                self.run, model=self.model, optimizer=self.model.optimizer, epoch=epoch,
                step=step, generators=self._generators(), loader_state=loader_state,
                scheduler=self.plan.scheduler, tensors=tensors, ranks=ranks,
                extra={"history": self.rows, "best": best, "callbacks": plain,
                       "partial_epoch": self.partial, "train_seconds": self.clock.total,
                       **self.plan.meta()})
            self.model_file = state.parent / self.run.read_json(state)["model_tensors"]
        self.saved_at = (epoch, step)
        self.clock.resume()

    def _save_interrupted(self, epoch: int, step: int, loader_state) -> None:
        self._checkpoint(epoch, step, loader_state)
        if self.main:
            self._link(self.run.last)
        self.saved_interrupt = True
