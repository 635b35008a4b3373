"""The training engine: one loop for every model, Keras-style facade or plain nn.Module.

The loop knows nothing of Keras names. It takes any iterable of (x, y[, w]) batches, a model
(``nn.Module``; ``forward_logits`` used when present), a loss, metrics and callbacks, and emits
Keras's events. Running sums stay on the device; a host sync happens only when the progress
bar refreshes, a callback asks for batch logs, or the epoch ends.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings

import torch

from .. import perf
from . import losses as losses_mod
from . import optim as optim_mod
from .callbacks import CallbackList
from .history import History
from .progress import EpochProgress, track

__all__ = ["fit_loop", "evaluate_loop", "predict_loop", "StepTiming"]


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
    if precision in ("bf16", "fp16") or (precision == "auto" and device.type == "cuda"):
        dtype = torch.float16 if precision == "fp16" else torch.bfloat16
        return torch.autocast(device.type, dtype=dtype)
    return contextlib.nullcontext()


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


def _snapshot(model):
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def fit_loop(model, optimizer, loss, metrics, train_data, *, epochs: int, val_data=None,
             initial_epoch: int = 0, callbacks=(), augment=None, class_weight=None,
             verbose="auto", device=None, precision: str = "auto", scheduler=None,
             history: History | None = None) -> History:
    """Train ``model`` for ``epochs`` (counted from 0, starting at ``initial_epoch``)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    perf.ensure_configured(device)  # threads for the free cores, denormals flushed (once)
    history = history or History()
    steps = len(train_data) if hasattr(train_data, "__len__") else None
    params = {"epochs": epochs, "steps": steps, "verbose": verbose}
    history.params = params
    # History records last, after callbacks have added their keys (as Keras orders it).
    cbs = CallbackList(list(callbacks) + [history_callback(history)], model, params)
    weights_vec = None
    if class_weight:
        n_out = max(class_weight) + 1
        weights_vec = torch.ones(n_out, device=device)
        for cls, w in class_weight.items():
            weights_vec[int(cls)] = float(w)
    model.stop_training = False
    model.timing = []
    last_good = _snapshot(model)
    aug_gen = torch.Generator(device="cpu")
    aug_gen.manual_seed(int(torch.initial_seed()) % 2**63)
    on_cpu = device.type == "cpu"
    optimizer_step = optim_mod.step_function(optimizer)
    cbs.on_train_begin()
    logs = {}
    for epoch in range(initial_epoch, epochs):
        if model.stop_training:
            break
        model.train()
        cbs.on_epoch_begin(epoch)
        timing = StepTiming()
        total_loss = torch.zeros((), device=device)
        seen = 0
        for m in metrics:
            m.reset()
        bar = EpochProgress(epoch, epochs, steps or 0, verbose)
        t_wait = time.perf_counter()
        nan_batch = None
        for step, batch in enumerate(train_data):
            t_start = time.perf_counter()
            timing.data_s += t_start - t_wait
            cbs.on_train_batch_begin(step)
            x, y, w = _split_batch(batch, device)
            x = _to_float(model, x)
            if augment is not None:
                x = augment(x, aug_gen)
            x = _memory_format(model, x)
            with _autocast(device, precision):
                outputs, is_logits = model_outputs(model, x, loss)
                sample_w = w
                if weights_vec is not None:
                    cls_idx = y if y.ndim == 1 else y.argmax(dim=1)
                    sample_w = weights_vec[cls_idx.long()] * (w if w is not None else 1)
                batch_loss = loss(outputs.float(), y, sample_weight=sample_w,
                                  outputs_are_logits=is_logits)
            optim_mod.clear_grads(optimizer)
            batch_loss.backward()
            optimizer_step()
            if scheduler is not None:
                scheduler.step()
            n = len(x)
            total_loss += batch_loss.detach() * n
            seen += n
            with torch.no_grad():
                for m in metrics:
                    m.update(outputs.detach().float(), y, is_logits)
            if (on_cpu or step % 50 == 0) and not torch.isfinite(batch_loss):
                nan_batch = step
            batch_logs = None
            if cbs.wants_batch_logs:
                batch_logs = {"loss": float(batch_loss.detach())}
            cbs.on_train_batch_end(step, batch_logs)
            running = lambda: {"loss": float(total_loss) / max(seen, 1),  # noqa: E731
                               **{m.name: m.result() for m in metrics}}
            bar.update(step + 1, running, seen)
            t_wait = time.perf_counter()
            timing.compute_s += t_wait - t_start
            if nan_batch is not None or model.stop_training:
                break
        logs = {"loss": float(total_loss) / max(seen, 1), **{m.name: m.result() for m in metrics}}
        if nan_batch is not None or not math.isfinite(logs["loss"]):
            model.load_state_dict(last_good)
            model.stop_training = True
            model.nan_stopped = True
            bar.close(logs)
            warnings.warn(f"Epoch {epoch + 1}, batch {nan_batch}: the loss became NaN or infinite; "
                          "training stopped and the weights from the last good epoch were restored. "
                          "Lower the learning rate or check the data for NaN values.",
                          RuntimeWarning, stacklevel=3)
            break
        if val_data is not None:
            val_logs = evaluate_loop(model, val_data, loss, metrics, device=device,
                                     precision=precision, callbacks=cbs,
                                     verbose=verbose in (1, "auto"))
            logs.update({f"val_{k}": v for k, v in val_logs.items()})
        model.timing.append(timing.as_dict())
        cbs.on_epoch_end(epoch, logs)
        bar.close(logs)
        last_good = _snapshot(model)
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
                  callbacks: CallbackList | None = None, verbose=0) -> dict:
    """Mean loss and metrics over ``data`` in eval mode; ``verbose``: progress over the batches."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    perf.ensure_configured(device)
    metrics = [copy.copy(m) for m in metrics]  # do not disturb the training metrics' state
    was_training = model.training
    model.eval()
    if callbacks is not None:
        callbacks.on_test_begin()
    total, seen = torch.zeros((), device=device), 0
    for m in metrics:
        m.reset()
    for batch in track(data, "evaluating", unit="batch", enabled=bool(verbose)):
        x, y, w = _split_batch(batch, device)
        x = _memory_format(model, _to_float(model, x))
        with _autocast(device, precision):
            outputs, is_logits = model_outputs(model, x, loss)
        outputs = outputs.float()
        if loss is not None:
            total += loss(outputs, y, sample_weight=w, outputs_are_logits=is_logits) * len(x)
        for m in metrics:
            m.update(outputs, y, is_logits)
        seen += len(x)
    logs = {"loss": float(total) / max(seen, 1)} if loss is not None else {}
    logs.update({m.name: m.result() for m in metrics})
    if callbacks is not None:
        callbacks.on_test_end(logs)
    model.train(was_training)
    return logs


@torch.no_grad()
def predict_loop(model, data, *, device=None, precision="auto", logits: bool = False,
                 verbose=0) -> torch.Tensor:
    """Stack the model's outputs over ``data`` (on the CPU). ``logits`` skips a final softmax.
    ``verbose``: progress over the batches (``cnnkit.train.progress.track``)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    perf.ensure_configured(device)
    was_training = model.training
    model.eval()
    outs = []
    for batch in track(data, "predicting", unit="batch", enabled=bool(verbose)):
        x, _, _ = _split_batch(batch, device)
        x = _memory_format(model, x)
        with _autocast(device, precision):
            out = model.forward_logits(x) if logits and hasattr(model, "forward_logits") else model(x)
        outs.append(out.float().cpu())
    model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0)
