"""BackupAndRestore: Keras's callback for fits that may be interrupted, on cnnkit's resume.

At the end of each epoch (or every ``save_freq`` batches) it writes a resumable checkpoint
in ``backup_dir`` with ``cnnkit.runs.save_checkpoint``: weights, optimizer state, RNG states
(the augmentation generator's too) and the other callbacks' ``state_dict()`` (EarlyStopping's
patience count, ReduceLROnPlateau's, ModelCheckpoint's best). When ``fit`` starts again with
the same ``backup_dir`` it loads that checkpoint and continues with the next epoch; a fit that
ends normally deletes the backup (``delete_checkpoint=True``), as Keras does.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from .callbacks import Callback

__all__ = ["BackupAndRestore", "callback_states", "restore_callback_states"]


def callback_states(callbacks) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """The ``state_dict()`` of each stateful callback, for a checkpoint: a JSON-friendly list
    (``index``, ``class``, ``state``) and the tensors that cannot be JSON (EarlyStopping's best
    weights, as ``callback{index}.best_weights.{j}``). ``runs.save_checkpoint(extra=,
    tensors=)`` takes them as they are."""
    states, tensors = [], {}
    for index, cb in enumerate(callbacks):
        if not cb.state_keys:
            continue
        state = cb.state_dict()
        for j, w in enumerate(state.pop("best_weights", None) or []):
            tensors[f"callback{index}.best_weights.{j}"] = torch.from_numpy(np.ascontiguousarray(w))
        states.append({"index": index, "class": type(cb).__name__, "state": state})
    return states, tensors


def restore_callback_states(callbacks, states: list[dict], tensors: dict) -> None:
    """``load_state_dict`` each callback from ``callback_states``' output (matched by position
    and class; callbacks not saved start fresh)."""
    for index, cb in enumerate(callbacks):
        entry = next((s for s in states if s["index"] == index and s["class"] == type(cb).__name__), None)
        if entry is None or not cb.state_keys:
            continue
        state = dict(entry["state"])
        prefix = f"callback{index}.best_weights."
        keys = sorted((k for k in tensors if k.startswith(prefix)), key=lambda k: int(k[len(prefix):]))
        if keys:
            state["best_weights"] = [tensors[k].numpy() for k in keys]
        cb.load_state_dict(state)


class BackupAndRestore(Callback):
    restores_training = True  # its on_train_begin runs before the other callbacks'

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False, delete_checkpoint=True):
        super().__init__()
        if not backup_dir:
            raise ValueError("BackupAndRestore needs a backup_dir, e.g. BackupAndRestore('backup')")
        if save_freq != "epoch" and not (isinstance(save_freq, int) and save_freq > 0):
            raise ValueError(f"BackupAndRestore save_freq must be 'epoch' or a positive number of "
                             f"batches, got {save_freq!r}")
        from ..runs import RunDir
        self.backup_dir = Path(backup_dir)
        self.run = RunDir(self.backup_dir)
        self.save_freq = save_freq
        self.double_checkpoint = double_checkpoint  # cnnkit's checkpoint is atomic already
        self.delete_checkpoint = delete_checkpoint
        self.restored_epoch = None
        self._batches = 0
        self._epoch = 0
        if save_freq != "epoch":  # only then a batch hook (batch logs cost a host sync each)
            self.on_train_batch_end = self._batch_end

    # -- restore ---------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        from .. import runs
        if not (self.run.checkpoint / "state.json").is_file():
            return
        ckpt = runs.load_checkpoint(self.run)
        runs.restore_training_state(ckpt, model=self.model, optimizer=self.model.optimizer)
        state = getattr(self.model, "fit_state", None)
        gens = {"augment": state.aug_generator} if state is not None else {}
        runs.set_rng_state(ckpt.tensors, ckpt.meta["rng"], gens)
        restore_callback_states(self._others(), ckpt.meta.get("callbacks", []), ckpt.tensors)
        self.restored_epoch = ckpt.epoch
        self.model._initial_epoch = ckpt.epoch  # the epoch to run next
        print(f"BackupAndRestore: resuming from {self.backup_dir} at epoch {ckpt.epoch + 1}")

    def _others(self):
        state = getattr(self.model, "fit_state", None)
        cbs = getattr(state, "callbacks", None)
        return [cb for cb in (cbs.callbacks if cbs is not None else []) if cb is not self]

    # -- back up ---------------------------------------------------------------------
    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _batch_end(self, batch, logs=None):
        self._batches += 1
        if self._batches % self.save_freq == 0:
            self._save(next_epoch=self._epoch)  # the epoch is run again from its start

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(next_epoch=epoch + 1)

    def _save(self, next_epoch: int):
        from .. import runs
        states, tensors = callback_states(self._others())
        fit_state = getattr(self.model, "fit_state", None)
        gens = {"augment": fit_state.aug_generator} if fit_state is not None else {}
        runs.save_checkpoint(self.run, model=self.model, optimizer=self.model.optimizer, epoch=next_epoch,
                             generators=gens, extra={"callbacks": states}, tensors=tensors)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and self.run.checkpoint.is_dir():
            shutil.rmtree(self.run.checkpoint)
