"""The training engine: one loop for every model, Keras-style facade or plain nn.Module.

The loop knows nothing of Keras names. It takes any iterable of (x, y[, w]) batches, a model
(``nn.Module``; ``forward_logits`` used when present), a loss, metrics and callbacks, and emits
Keras's events. Running sums stay on the device; a host sync happens only when the progress
bar refreshes, a callback asks for batch logs, or the epoch ends.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import MutableMapping
import math
import time
import warnings

import torch

from .. import constraints as constraints_mod
from ..speed import perf
from .. import regularizers as regularizers_mod
from ..speed import policy as speed_policy
from . import losses as losses_mod
from . import optim as optim_mod
from .callbacks import CallbackList
from .history import History
from .last_good import LastGood
from .progress import EpochProgress, track


def _penalty_and_constrain(model):
    """(sum of model.losses or None, the constraints' step or None): None where no layer has any."""
    return regularizers_mod.penalty_function(model), constraints_mod.step_function(model)


__all__ = ["fit_loop", "evaluate_loop", "predict_loop", "StepTiming", "FitState", "should_validate"]


class StepTiming:
    """Seconds spent waiting for batches vs computing on them, per epoch."""

    def __init__(self):
        self.data_s = 0.0
        self.compute_s = 0.0

    def as_dict(self):
        return {"data_wait_s": round(self.data_s, 4), "compute_s": round(self.compute_s, 4)}


def _split_batch(batch, device):
    if isinstance(batch, (list, tuple)):
        parts = [b.to(device, non_blocking=True) if isinstance(b, torch.Tensor) else b for b in batch]
        x, y = parts[0], parts[1] if len(parts) > 1 else None
        w = parts[2] if len(parts) > 2 else None
        return x, y, w
    return batch.to(device, non_blocking=True), None, None


def _to_float(model, x):
    pre = getattr(model, "preprocess", None)
    if pre is not None:
        return pre.to_float(x)
    return x.float() if not x.is_floating_point() else x


def _memory_format(model, x):
    """channels_last for models that declare it (the facade, the zoo); plain modules may use
    ``.view`` on their activations, so they get the default contiguous layout."""
    fmt = getattr(model, "memory_format", torch.contiguous_format)
    if x.ndim == 4:
        return x.contiguous(memory_format=fmt)
    return x


def _autocast(device: torch.device, precision: str):
    dtype = speed_policy.autocast_dtype(device, precision)  # 'auto': bf16 on CUDA, fp32 on CPU
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def model_outputs(model, x, loss: losses_mod.Loss | None):
    """(outputs, outputs_are_logits) for the loss: pre-activation output when it can fuse."""
    out_act = getattr(model, "output_activation", None)
    if loss is not None and loss.fused_activation and out_act == loss.fused_activation \
            and hasattr(model, "forward_logits"):
        return model.forward_logits(x), True
    if out_act in ("softmax", "sigmoid"):
        return model(x), False
    # No final squashing: the outputs are logits (PyTorch convention).
    return model(x), True


class FitState:
    """What a running ``fit`` exposes to callbacks and to resume, as ``model.fit_state``:
    the epoch and batch being run, ``global_step`` (optimizer steps so far, counted from
    ``fit_loop``'s ``start_step``), the augmentation generator (its state is part of a
    resumable checkpoint), the last batch's loss tensor and the optimizer."""

    def __init__(self, aug_generator: torch.Generator, optimizer, start_step: int = 0):
        self.epoch = 0
        self.batch = 0
        self.global_step = int(start_step)
        self.aug_generator = aug_generator
        self.optimizer = optimizer
        self.batch_loss: torch.Tensor | None = None
        self.validated: bool | None = None  # whether this epoch ran validation (None: no data)


def should_validate(epoch: int, validation_freq) -> bool:
    """Keras's rule: an int validates every ``validation_freq`` epochs, a container on the
    listed (1-based) epochs."""
    if isinstance(validation_freq, int):
        if validation_freq < 1:
            raise ValueError(f"validation_freq must be >= 1, got {validation_freq}")
        return (epoch + 1) % validation_freq == 0
    return (epoch + 1) in validation_freq


OUT_OF_DATA = ("Your input ran out of data; interrupting training. Make sure that your dataset or "
               "generator can generate at least `steps_per_epoch * epochs` batches.")


class _Batches:
    """The training batches of each epoch: a fresh pass over ``data``, or with
    ``steps_per_epoch`` that many batches from one stream that continues across epochs (as
    Keras draws them; a finite source that runs out ends training with Keras's warning)."""

    def __init__(self, data, steps_per_epoch: int | None):
        self.data, self.steps_per_epoch = data, steps_per_epoch
        self.stream = None
        self.exhausted = False

    def epoch(self):
        if self.steps_per_epoch is None:
            yield from self.data
            return
        for _ in range(self.steps_per_epoch):
            if self.stream is None:
                self.stream = iter(self.data)
            try:
                yield next(self.stream)
            except StopIteration:
                self.exhausted = True
                warnings.warn(OUT_OF_DATA, UserWarning, stacklevel=4)
                return


def _running_logs(total_loss, seen, metrics) -> dict:
    """Mean loss and metric results so far (a host sync)."""
    out = {"loss": float(total_loss) / max(seen, 1)} if total_loss is not None else {}
    out.update({m.name: m.result() for m in metrics})
    return out


class BatchLogs(MutableMapping):
    """A batch's logs (Keras's running means), computed when first read: reading is a host
    sync, so a callback that ignores its ``logs`` costs the loop nothing. The values are this
    batch's even if read later (the running sums and metric states are snapshotted, no sync)."""

    def __init__(self, total_loss, seen, metrics):
        self._args = (None if total_loss is None else total_loss.detach().clone(), seen,
                      [copy.copy(m) for m in metrics])  # metrics replace, not mutate, their tensors
        self._data = None

    def _logs(self) -> dict:
        if self._data is None:
            self._data = _running_logs(*self._args)
        return self._data

    def __getitem__(self, key):
        return self._logs()[key]

    def __setitem__(self, key, value):
        self._logs()[key] = value

    def __delitem__(self, key):
        del self._logs()[key]

    def __iter__(self):
        return iter(self._logs())

    def __len__(self):
        return len(self._logs())

    def __repr__(self):
        return repr(self._logs())


def class_weight_vector(class_weight, device) -> torch.Tensor | None:
    """Keras's ``class_weight`` dict as a per-class weight tensor (1 for classes not named)."""
    if not class_weight:
        return None
    weights_vec = torch.ones(max(int(c) for c in class_weight) + 1, device=device)
    for cls, w in class_weight.items():
        weights_vec[int(cls)] = float(w)
    return weights_vec


def _forward_loss(model, loss, x, y, w, weights_vec, augment, aug_generator, device, precision,
                  penalty=None):
    """One training forward pass: float, augmented, laid out; the weighted loss (plus the
    layers' regularization ``penalty()``, Keras's ``model.losses``). A batch mixer
    (MixUp/CutMix, ``data/mixing.py``) also turns ``y`` into soft targets, returned."""
    from ..data.mixing import is_mixer
    x = _to_float(model, x)
    draw = None
    if is_mixer(augment):
        x, draw = augment.mix_images(x, aug_generator)
    elif augment is not None:
        x = augment(x, aug_generator)
    x = _memory_format(model, x)
    with _autocast(device, precision):
        outputs, is_logits = model_outputs(model, x, loss)
        if draw is not None:  # soft N×K rows, K = the model's output width
            y = augment.mix_targets(y, draw, outputs.shape[1])
        sample_w = w
        if weights_vec is not None:
            cls_idx = y if y.ndim == 1 else y.argmax(dim=1)
            sample_w = weights_vec[cls_idx.long()] * (w if w is not None else 1)
        batch_loss = loss(outputs.float(), y, sample_weight=sample_w, outputs_are_logits=is_logits)
        if penalty is not None:
            batch_loss = batch_loss + penalty()
    return x, y, outputs, is_logits, batch_loss


def train_batch(model, optimizer, loss, metrics, batch, *, class_weight=None, device=None,
                precision="auto") -> dict:
    """Keras's ``train_on_batch``: one optimizer step on ``batch`` = (x, y[, w]); the logs of
    that batch alone (metrics are reset first)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    perf.ensure_configured(device)
    model.train()
    x, y, w = _split_batch(batch, device)
    for m in metrics:
        m.reset()
    penalty, constrain = _penalty_and_constrain(model)
    _, y, outputs, is_logits, batch_loss = _forward_loss(
        model, loss, x, y, w, class_weight_vector(class_weight, device), None, None, device, precision,
        penalty)
    optim_mod.clear_grads(optimizer)
    loss_scale = getattr(optimizer, "loss_scale_factor", None)
    (batch_loss * loss_scale if loss_scale else batch_loss).backward()
    optim_mod.step_function(optimizer)()
    if constrain is not None:
        constrain()
    with torch.no_grad():
        for m in metrics:
            m.update(outputs.detach().float(), y, is_logits)
    return {"loss": float(batch_loss.detach()), **{m.name: m.result() for m in metrics}}


def fit_loop(model, optimizer, loss, metrics, train_data, *, epochs: int, val_data=None,
             initial_epoch: int = 0, callbacks=(), augment=None, class_weight=None,
             verbose="auto", device=None, precision: str = "auto", scheduler=None,
             history: History | None = None, steps_per_epoch: int | None = None,
             validation_steps: int | None = None, validation_freq=1,
             aug_generator: torch.Generator | None = None, start_step: int = 0) -> History:
    """Train ``model`` for ``epochs`` (counted from 0, starting at ``initial_epoch``).

    ``steps_per_epoch``, ``validation_steps`` and ``validation_freq`` are Keras's.
    ``aug_generator`` is the generator handed to ``augment`` (a seeded one by default)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    perf.ensure_configured(device)  # threads for the free cores, denormals flushed (once)
    history = history or History()
    steps = steps_per_epoch or (len(train_data) if hasattr(train_data, "__len__") else None)
    params = {"epochs": epochs, "steps": steps, "verbose": verbose}
    history.params = params
    # History records last, after callbacks have added their keys (as Keras orders it).
    cbs = callbacks if isinstance(callbacks, CallbackList) else CallbackList(list(callbacks), model, params)
    cbs.append(history_callback(history), model, params)
    weights_vec = class_weight_vector(class_weight, device)
    model.stop_training = False
    model.timing = []
    # TerminateOnNaN present: Keras's behaviour (the NaN epoch is recorded); else cnnkit's guard
    keras_nan = cbs.any("terminates_on_nan")
    last_good = None if keras_nan else LastGood(model)
    if aug_generator is None:
        aug_generator = torch.Generator(device="cpu")
        aug_generator.manual_seed(int(torch.initial_seed()) % 2**63)
    state = FitState(aug_generator, optimizer, start_step)
    state.train_data = train_data  # the training batches (SWA's BatchNorm pass at the end)
    model.fit_state = state
    nan_every = speed_policy.for_device(device).nan_check_every  # a host sync: 1 on CPU, 50 on CUDA
    optimizer_step = optim_mod.step_function(optimizer)
    penalty, constrain = _penalty_and_constrain(model)  # model.losses; constraints after each step
    loss_scale = getattr(optimizer, "loss_scale_factor", None)
    batch_logs_wanted = cbs.wants("on_train_batch_end")
    grad_hooks = cbs.wants("on_after_backward") or cbs.wants("on_before_optimizer_step")
    batches = _Batches(train_data, steps_per_epoch)
    state.callbacks = cbs
    model._initial_epoch = None
    cbs.on_train_begin({})
    # a callback may move the start (BackupAndRestore resuming an interrupted fit)
    initial_epoch = model.__dict__.pop("_initial_epoch", None) or initial_epoch
    logs = {}
    for epoch in range(initial_epoch, epochs):
        if model.stop_training:
            break
        state.epoch = epoch
        model.train()
        cbs.on_epoch_begin(epoch, {})
        timing = StepTiming()
        total_loss = torch.zeros((), device=device)
        seen = 0
        for m in metrics:
            m.reset()
        bar = EpochProgress(epoch, epochs, steps or 0, 0 if cbs.any("is_progbar") else verbose)
        t_wait = time.perf_counter()
        nan_batch = None
        for step, batch in enumerate(batches.epoch()):
            t_start = time.perf_counter()
            timing.data_s += t_start - t_wait
            state.batch = step
            cbs.on_train_batch_begin(step, {})
            x, y, w = _split_batch(batch, device)
            x, y, outputs, is_logits, batch_loss = _forward_loss(
                model, loss, x, y, w, weights_vec, augment, aug_generator, device, precision, penalty)
            state.batch_loss = batch_loss
            optim_mod.clear_grads(optimizer)
            (batch_loss * loss_scale if loss_scale else batch_loss).backward()
            if grad_hooks:
                cbs.on_after_backward(step, {})
                cbs.on_before_optimizer_step(step, {})
            optimizer_step()
            if constrain is not None:
                constrain()
            state.global_step += 1
            if scheduler is not None:
                scheduler.step()
            n = len(x)
            total_loss += batch_loss.detach() * n
            seen += n
            with torch.no_grad():
                for m in metrics:
                    m.update(outputs.detach().float(), y, is_logits)
            if not keras_nan and step % nan_every == 0 and not torch.isfinite(batch_loss):
                nan_batch = step
            batch_logs = BatchLogs(total_loss, seen, metrics) if batch_logs_wanted else {}
            cbs.on_train_batch_end(step, batch_logs)
            bar.update(step + 1, lambda: _running_logs(total_loss, seen, metrics), seen)
            t_wait = time.perf_counter()
            timing.compute_s += t_wait - t_start
            if nan_batch is not None or model.stop_training:
                break
        if batches.exhausted:
            model.stop_training = True
        if not seen and batches.exhausted:
            break  # the stream had nothing left for this epoch
        logs = _running_logs(total_loss, seen, metrics)
        if last_good is not None and (nan_batch is not None or not math.isfinite(logs["loss"])):
            last_good.restore()
            model.stop_training = True
            model.nan_stopped = True
            bar.close(logs)
            warnings.warn(f"Epoch {epoch + 1}, batch {nan_batch}: the loss became NaN or infinite; "
                          "training stopped and the weights from the last good epoch were restored. "
                          "Lower the learning rate or check the data for NaN values.",
                          RuntimeWarning, stacklevel=3)
            break
        # None: no validation data at all (a 'val_' monitor is then a mistake to name)
        state.validated = None if val_data is None else should_validate(epoch, validation_freq)
        if state.validated:
            val_logs = evaluate_loop(model, val_data, loss, metrics, device=device,
                                     precision=precision, callbacks=cbs, steps=validation_steps,
                                     verbose=verbose in (1, "auto"))
            logs.update({f"val_{k}": v for k, v in val_logs.items()})
        model.timing.append(timing.as_dict())
        cbs.on_epoch_end(epoch, logs)
        bar.close(logs)
        if last_good is not None and epoch + 1 < epochs:  # (after the last epoch: no use)
            last_good.keep()
    cbs.on_train_end(logs)
    return history


def history_callback(history: History):
    from .callbacks import Callback

    class _Recorder(Callback):
        def on_epoch_end(self, epoch, logs=None):
            history.append(epoch, dict(logs or {}))

    return _Recorder()


@torch.no_grad()
def evaluate_loop(model, data, loss, metrics, *, device=None, precision="auto",
                  callbacks: CallbackList | None = None, steps: int | None = None,
                  verbose=0, tta: str = "none") -> dict:
    """Mean loss and metrics over ``data`` (the first ``steps`` batches) in eval mode, with
    Keras's ``on_test_*`` events on ``callbacks``; ``verbose``: progress over the batches;
    ``tta``: test-time augmentation views averaged (``train/tta.py``)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    perf.ensure_configured(device)
    metrics = [copy.copy(m) for m in metrics]  # do not disturb the training metrics' state
    was_training = model.training
    model.eval()
    callbacks = callbacks if callbacks is not None else CallbackList([], model, {})
    batch_logs_wanted = callbacks.wants("on_test_batch_end")
    callbacks.on_test_begin({})
    total, seen = torch.zeros((), device=device), 0
    penalty, _ = _penalty_and_constrain(model)  # Keras's loss includes model.losses
    for m in metrics:
        m.reset()
    batches = track(data, "evaluating", unit="batch", enabled=bool(verbose))
    for step, batch in enumerate(batches):
        if steps is not None and step >= steps:
            break
        callbacks.on_test_batch_begin(step, {})
        x, y, w = _split_batch(batch, device)
        x = _memory_format(model, _to_float(model, x))
        with _autocast(device, precision):
            if tta != "none":
                from .tta import tta_outputs
                outputs, is_logits = tta_outputs(model, x, loss, tta)
            else:
                outputs, is_logits = model_outputs(model, x, loss)
        outputs = outputs.float()
        if loss is not None:
            batch_loss = loss(outputs, y, sample_weight=w, outputs_are_logits=is_logits)
            if penalty is not None:
                batch_loss = batch_loss + penalty()
            total += batch_loss * len(x)
        for m in metrics:
            m.update(outputs, y, is_logits)
        seen += len(x)
        test_logs = BatchLogs(total if loss is not None else None, seen, metrics) if batch_logs_wanted else {}
        callbacks.on_test_batch_end(step, test_logs)
    logs = _running_logs(total if loss is not None else None, seen, metrics)
    callbacks.on_test_end(logs)
    model.train(was_training)
    return logs


@torch.no_grad()
def predict_loop(model, data, *, device=None, precision="auto", logits: bool = False,
                 callbacks: CallbackList | None = None, steps: int | None = None,
                 verbose=0) -> torch.Tensor:
    """Stack the model's outputs over ``data`` (the first ``steps`` batches; on the CPU), with
    Keras's ``on_predict_*`` events. ``logits`` skips a final softmax. ``verbose``: progress
    over the batches (``cnnkit.train.progress.track``)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    perf.ensure_configured(device)
    was_training = model.training
    model.eval()
    callbacks = callbacks if callbacks is not None else CallbackList([], model, {})
    callbacks.on_predict_begin({})
    outs = []
    batches = track(data, "predicting", unit="batch", enabled=bool(verbose))
    for step, batch in enumerate(batches):
        if steps is not None and step >= steps:
            break
        callbacks.on_predict_batch_begin(step, {})
        x, _, _ = _split_batch(batch, device)
        x = _memory_format(model, x)
        with _autocast(device, precision):
            out = model.forward_logits(x) if logits and hasattr(model, "forward_logits") else model(x)
        outs.append(out.float().cpu())
        callbacks.on_predict_batch_end(step, {"outputs": outs[-1]})
    callbacks.on_predict_end({})
    model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0)
