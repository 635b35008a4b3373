"""Averages of the weights as callbacks: ``EMA`` (exponential moving average, timm's
ModelEmaV3 rule) and ``SWA`` (stochastic weight averaging, ``torch.optim.swa_utils``).

EMA swaps weights rather than keeping a second model: while an epoch trains, the model holds
the trained weights and ``EMA.shadow`` the average; from the end of an epoch (and for the
validation run inside ``fit``) until the next epoch begins, the model holds the average and
``shadow`` the trained weights. So everything that reads the model at an epoch end
(validation, ``ModelCheckpoint``, a run's best/ and last/, its checkpoints, the final
evaluation) sees the averaged weights, and the next epoch trains on from the trained ones.
A checkpoint holds the model as it is plus ``shadow`` (``state_dict``), so a resumed run
continues with the identical average. Buffers (BatchNorm statistics) are not averaged: the
average uses the model's own (timm's ``exclude_buffers``: a copy of the buffers).
"""

from __future__ import annotations

import math
import warnings

import torch

from .callbacks import Callback

__all__ = ["EMA", "SWA", "with_model_ema", "ema_decay"]


def ema_decay(decay: float, update: int, warmup: bool) -> float:
    """The decay of the ``update``-th update (1-based). With ``warmup``, timm ModelEmaV3's
    ``min(decay, 1 - (1 + s) ** -2/3)`` for ``s = update - 1`` (0 at the first update: the
    average starts as the weights after one step)."""
    if not warmup:
        return decay
    step = update - 1
    return 0.0 if step <= 0 else min(decay, 1 - (1 + step) ** (-2 / 3))


def _weights(model) -> list[tuple[str, torch.Tensor]]:
    return [(n, p) for n, p in model.named_parameters() if p.is_floating_point()]


class EMA(Callback):
    """``ema = decay * ema + (1 - decay) * w`` after every optimizer step (``torch._foreach_lerp_``
    on the parameters); the model holds the average at each epoch end and after ``fit``.

    ``decay``: per step, in (0, 1); ``warmup``: ramp the decay up (see ``ema_decay``). Given to
    ``model.compile(ema=0.999)`` it is ``model.ema`` and ``fit`` runs it first; or pass one
    to ``fit(callbacks=[EMA(0.999), ...])`` first in the list. Between two ``fit`` calls the
    model holds the average and the next ``fit`` trains on from the trained weights
    (``hold_trained()`` puts them back now; weights loaded in between are replaced by them).
    """

    def __init__(self, decay: float = 0.999, warmup: bool = True):
        super().__init__()
        if not (isinstance(decay, (int, float)) and 0 < decay < 1):
            raise ValueError(f"EMA decay must be in (0, 1), e.g. 0.999; got {decay!r}")
        self.decay, self.warmup = float(decay), bool(warmup)
        self.updates = 0
        self.shadow: list[torch.Tensor] | None = None  # the weights the model does not hold now
        self.holding = False  # the model holds the average (shadow: the trained weights)

    @property
    def current_decay(self) -> float:
        return ema_decay(self.decay, max(self.updates, 1), self.warmup)

    # -- swapping ------------------------------------------------------------------------
    @torch.no_grad()
    def _swap(self) -> None:
        params = [p for _, p in _weights(self.model)]
        held = [p.detach().clone() for p in params]
        torch._foreach_copy_(params, self.shadow)
        self.shadow = held
        self.holding = not self.holding

    def hold_average(self) -> None:
        if not self.holding and self.shadow is not None:
            self._swap()

    def hold_trained(self) -> None:
        if self.holding:
            self._swap()

    @property
    def average(self) -> list[torch.Tensor]:
        """The averaged weights (in ``named_parameters`` order), wherever they are now."""
        return [p.detach() for _, p in _weights(self.model)] if self.holding else self.shadow

    # -- events --------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        params = self._params = [p.detach() for _, p in _weights(self.model)]  # for each step
        if self.shadow is None or [s.shape for s in self.shadow] != [p.shape for p in params]:
            self.shadow = [p.detach().clone() for p in params]
            self.updates, self.holding = 0, False

    def on_epoch_begin(self, epoch, logs=None):
        self.hold_trained()

    @torch.no_grad()
    def on_train_batch_end(self, batch, logs=None):
        self.updates += 1
        torch._foreach_lerp_(self.shadow, self._params, 1.0 - ema_decay(self.decay, self.updates,
                                                                        self.warmup))

    def on_test_begin(self, logs=None):
        self.hold_average()  # fit's own validation sees the average

    def on_epoch_end(self, epoch, logs=None):
        self.hold_average()
        if logs is not None:
            logs["ema_decay"] = self.current_decay  # in the history: these are EMA weights

    def on_train_end(self, logs=None):
        if not getattr(self.model, "nan_stopped", False):  # else: the last good epoch's
            self.hold_average()

    # -- checkpoints ---------------------------------------------------------------------
    def state_dict(self) -> dict:
        names = [n for n, _ in _weights(self.model)]
        state = {"decay": self.decay, "warmup": self.warmup, "updates": self.updates,
                 "holding": self.holding}
        state.update({f"shadow.{n}": s.detach().cpu().clone() for n, s in zip(names, self.shadow)})
        return state

    def load_state_dict(self, state: dict) -> None:
        named = _weights(self.model)
        missing = [n for n, _ in named if f"shadow.{n}" not in state]
        if missing:
            raise KeyError(f"EMA.load_state_dict: no average for {', '.join(missing[:3])}")
        self.decay, self.warmup = float(state["decay"]), bool(state["warmup"])
        self.updates, self.holding = int(state["updates"]), bool(state["holding"])
        self.shadow = [state[f"shadow.{n}"].to(p.device, p.dtype).clone() for n, p in named]


def with_model_ema(model, callbacks) -> list:
    """``fit``'s callbacks with ``model.ema`` (from ``compile(ema=...)``) first, unless the
    list already holds it (a run's plan puts it there, possibly wrapped)."""
    ema = getattr(model, "ema", None)
    if ema is None:
        return callbacks  # as given (a list, or a CallbackList)
    listed = list(getattr(callbacks, "callbacks", callbacks) or [])
    if any(cb is ema or getattr(cb, "inner", None) is ema for cb in listed):
        return callbacks
    return [ema] + listed


class SWA(Callback):
    """Stochastic weight averaging: the mean of the weights at the end of each epoch after the
    first ``start_epoch`` epochs (``torch.optim.swa_utils.get_swa_multi_avg_fn``); at the end
    of training the model gets the mean and its BatchNorm statistics are recomputed
    (as ``update_bn`` does) on ``bn_data`` (images, or a loader of batches), by default ``fit``'s
    training batches.

    ``lr``: SWA's rate, reached by ``torch.optim.swa_utils.SWALR`` (``anneal_epochs``,
    ``anneal_strategy``) and held through the averaged epochs over any other schedule; None
    keeps the optimizer's rate and schedule. The per-epoch validation sees the trained
    weights; the model holds the average from the end of the last epoch."""

    def __init__(self, start_epoch: int, lr: float | None = None, anneal_epochs: int = 1,
                 anneal_strategy: str = "cos", bn_data=None, bn_batch_size: int = 256):
        super().__init__()
        if int(start_epoch) != start_epoch or start_epoch < 0:
            raise ValueError(f"SWA start_epoch must be an epoch count >= 0, got {start_epoch!r}")
        if lr is not None and not (lr > 0 and math.isfinite(lr)):
            raise ValueError(f"SWA lr must be a positive number or None, got {lr!r}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError("SWA anneal_strategy must be 'cos' or 'linear', got "
                             f"{anneal_strategy!r}")
        self.start_epoch, self.lr = int(start_epoch), lr
        self.anneal_epochs, self.anneal_strategy = int(anneal_epochs), anneal_strategy
        self.bn_data, self.bn_batch_size = bn_data, int(bn_batch_size)
        self.n_averaged = 0
        self.average: list[torch.Tensor] | None = None
        self.finished = False
        self.scheduler = None
        self.lrs: list[float] | None = None  # SWALR's rates this epoch, per group
        self._scheduler_state = None

    # -- the rate ------------------------------------------------------------------------
    def _set_rates(self) -> None:
        for group, lr in zip(self.model.optimizer.param_groups, self.lrs):
            group["lr"] = lr  # what SWALR set, whatever the run's schedule did since

    def _schedule_epoch(self) -> None:
        from torch.optim.swa_utils import SWALR
        with warnings.catch_warnings():  # cnnkit's lean optimizer step is not torch's wrapper
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
            if self.scheduler is None:
                self.scheduler = SWALR(self.model.optimizer, swa_lr=self.lr,
                                       anneal_epochs=self.anneal_epochs,
                                       anneal_strategy=self.anneal_strategy)
                if self._scheduler_state is not None:  # resumed: continue where it was
                    self.scheduler.load_state_dict(self._scheduler_state)
                    self._scheduler_state = None
                    self._set_rates()
                    self.scheduler.step()
            else:
                self._set_rates()
                self.scheduler.step()
        self.lrs = [g["lr"] for g in self.model.optimizer.param_groups]

    def on_epoch_begin(self, epoch, logs=None):
        if epoch >= self.start_epoch and self.lr is not None and not self.finished:
            self._schedule_epoch()

    def on_train_batch_begin(self, batch, logs=None):
        if self.scheduler is not None and not self.finished:
            self._set_rates()

    # -- the average ---------------------------------------------------------------------
    @torch.no_grad()
    def on_epoch_end(self, epoch, logs=None):
        if epoch < self.start_epoch or self.finished:
            return
        from torch.optim.swa_utils import get_swa_multi_avg_fn
        params = [p.detach() for _, p in _weights(self.model)]
        if self.average is None or self.n_averaged == 0:
            self.average = [p.clone() for p in params]
        else:
            get_swa_multi_avg_fn()(self.average, params, self.n_averaged)
        self.n_averaged += 1
        if epoch + 1 == self.params.get("epochs"):
            self.finish()  # before validation and the run's checkpoint of this last epoch
            if logs is not None:
                logs["swa_epochs"] = self.n_averaged

    def on_train_end(self, logs=None):
        if not getattr(self.model, "nan_stopped", False):
            self.finish()

    @torch.no_grad()
    def finish(self) -> None:
        """Put the average into the model and recompute its BatchNorm statistics."""
        if self.finished or not self.n_averaged:
            return
        torch._foreach_copy_([p for _, p in _weights(self.model)], self.average)
        self.finished = True
        norms = [m for m in self.model.modules()
                 if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        if norms:
            self._update_bn(norms)

    @torch.no_grad()
    def _update_bn(self, norms) -> None:
        """``torch.optim.swa_utils.update_bn``'s cumulative average of each batch's statistics,
        reached with momentum ``1 / (k + 1)`` at batch ``k`` instead of ``momentum=None``:
        cnnkit's BatchNormalization corrects every update to Keras's (biased) variance and
        needs a number there."""
        momenta, was = [m.momentum for m in norms], self.model.training
        before = [{k: v.clone() for k, v in m.state_dict().items()} for m in norms]
        for m in norms:
            m.reset_running_stats()
        self.model.train()
        seen = 0
        try:
            for x in self._bn_batches(next(self.model.parameters()).device):
                seen += 1
                for m in norms:
                    m.momentum = 1.0 / seen
                self.model(x)
        finally:
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum
            self.model.train(was)
        if not seen:  # a one-pass iterable already used up: keep the statistics there were
            for m, state in zip(norms, before):
                m.load_state_dict(state)
            warnings.warn("SWA: no batches to recompute the BatchNorm statistics with (the "
                          "training data was a one-pass iterable); pass SWA(..., bn_data=images)",
                          RuntimeWarning, stacklevel=2)

    def _bn_batches(self, device):
        from .engine import _memory_format, _to_float
        data = self.bn_data
        if data is None:
            data = getattr(getattr(self.model, "fit_state", None), "train_data", None)
        if data is None:
            raise ValueError("SWA: the model has BatchNorm layers; pass bn_data=training images "
                             "to recompute their statistics")
        if isinstance(data, torch.Tensor) or hasattr(data, "__array__"):
            from ..data.loader import as_images
            images = as_images(data, getattr(self.model, "torch_input_shape", None))
            data = (images[lo:lo + self.bn_batch_size]
                    for lo in range(0, len(images), self.bn_batch_size))
        for batch in data:
            x = batch[0] if isinstance(batch, (list, tuple)) else batch
            yield _memory_format(self.model, _to_float(self.model, x.to(device)))

    # -- checkpoints ---------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = {"n_averaged": self.n_averaged, "finished": self.finished, "lrs": self.lrs}
        if self.scheduler is not None:
            full = self.scheduler.state_dict()
            state["scheduler"] = {k: full[k] for k in ("last_epoch", "_step_count", "base_lrs",
                                                       "_last_lr") if k in full}
        if self.average is not None:
            names = [n for n, _ in _weights(self.model)]
            state.update({f"average.{n}": a.detach().cpu().clone()
                          for n, a in zip(names, self.average)})
        return state

    def load_state_dict(self, state: dict) -> None:
        self.n_averaged, self.finished = int(state["n_averaged"]), bool(state["finished"])
        self.lrs = state.get("lrs")
        self._scheduler_state = state.get("scheduler")
        named = _weights(self.model)
        if self.n_averaged:
            self.average = [state[f"average.{n}"].to(p.device, p.dtype).clone() for n, p in named]
