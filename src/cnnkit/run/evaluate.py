"""The one evaluation path: loss, accuracy and (optionally) per-sample outputs of a model.

Per-epoch validation (``Validate``), a recipe's held-out accuracy with test-time
augmentation, a run's final metrics, ``cnnkit evaluate`` and the report all call
:func:`evaluate`, so ``history.csv``, ``metrics.json`` and the report give the same numbers
for the same weights on the same split. The loss is the model's compiled loss (label
smoothing included), computed as the training loop computes it.
"""

from __future__ import annotations

import numpy as np
import torch

from ..train.callbacks import Callback
from ..train.engine import _autocast, _to_float
from ..train.tta import TTA_MODES, resolve, tta_outputs

__all__ = ["evaluate", "Validate", "KeptEvaluation", "TTA_MODES"]

# How report.finish evaluates a run's final weights (batch 256 is `cnnkit evaluate`'s too):
# a kept evaluation is reused only when it was made exactly so.
FINAL_DEFAULTS = {"batch_size": 256, "tta": "none", "precision": None, "reduce_ranks": False}

@torch.no_grad()
def evaluate(model, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 256,
             tta: str = "none", precision: str | None = None, per_sample: bool = False,
             class_names=None, reduce_ranks: bool = False, thresholds=None) -> dict:
    """Evaluate ``model`` on uint8 (or float) N×C×H×W ``images`` with int64 ``labels``.

    Returns ``{"loss", "accuracy", "n"}``; with ``per_sample`` also numpy ``probabilities``
    (N, K), ``per_sample_loss``, ``predicted``, ``labels`` and, given ``class_names``, the
    ``report`` (per-class precision/recall/F1, confusion matrix). ``tta``: 'none', 'flip'
    (probabilities of the image and its mirror averaged) or 'flip_translate'
    (``train/tta.py``; True means 'flip'). ``reduce_ranks``: each rank
    passes its shard and the sums are added over the ranks of a data-parallel job.

    Multi-label ``labels`` (float N×L multi-hot): ``accuracy`` is the share of the N×L
    decisions right at 0.5 (Keras's binary accuracy), the result adds ``map`` (over every
    rank's images with ``reduce_ranks``), and ``report`` is ``metrics_multilabel.multilabel_report`` at
    ``thresholds`` (None: 0.5).
    """
    tta = resolve(tta)
    loss = getattr(model, "loss", None)
    dev = getattr(model, "device", None) or next(model.parameters()).device
    precision = precision or getattr(model, "precision", "auto")
    was = model.training
    model.eval()
    loss_sum = torch.zeros((), device=dev, dtype=torch.float64)
    correct = torch.zeros((), device=dev, dtype=torch.long)
    probs, losses, preds = [], [], []
    multi = labels.ndim == 2  # multi-hot rows: a sigmoid per label
    try:
        for lo in range(0, len(images), batch_size):
            x = _to_float(model, images[lo:lo + batch_size].to(dev, non_blocking=True))
            y = labels[lo:lo + batch_size].to(dev, non_blocking=True)
            with _autocast(dev, precision):
                out, is_logits = tta_outputs(model, x, loss, tta)
            if loss is not None:
                values = loss.per_sample(out, y, is_logits)
                loss_sum += values.double().sum()
            if multi:
                pred = out > 0 if is_logits else out > 0.5
                correct += (pred == (y > 0.5)).sum()
            else:
                pred = out.argmax(1)
                correct += (pred == y).sum()
            if per_sample or multi:
                p = out.softmax(1) if is_logits and out.shape[1] > 1 and not multi else \
                    (out.sigmoid() if is_logits else out)
                probs.append(p.cpu())
                preds.append(pred.cpu())
                if loss is not None:
                    losses.append(values.float().cpu())
    finally:
        model.train(was)
    n = len(images)
    total_loss, n_correct = float(loss_sum), float(correct)
    if reduce_ranks:
        from ..train import ddp
        total_loss, n_correct, n = ddp.all_reduce_sum([total_loss, n_correct, float(n)])
    decisions = n * (labels.shape[1] if multi else 1)
    result = {"loss": total_loss / n if n and loss is not None else float("nan"),
              "accuracy": n_correct / decisions if n else float("nan"), "n": int(n)}
    if multi:
        from ..metrics_multilabel import mean_average_precision, multilabel_report
        p = torch.cat(probs).numpy() if probs else np.zeros((0, labels.shape[1]))
        y = labels.cpu().numpy().astype(np.float32)
        if reduce_ranks:  # mAP ranks the whole split: every rank's scores, not a sum
            from .multilabel import gathered
            p, y = gathered(p, y, int(n))
        result["map"] = mean_average_precision(p, y)
        if per_sample:
            result.update(probabilities=p, predicted=torch.cat(preds).numpy(), labels=y,
                          per_sample_loss=torch.cat(losses).numpy() if losses else np.zeros(0),
                          multi_label=True)
            if class_names is not None:
                result["report"] = multilabel_report(p, y, list(class_names), thresholds)
        return result
    if per_sample:
        y = labels.cpu().numpy().astype(np.int64)
        result.update(probabilities=torch.cat(probs).numpy() if probs else np.zeros((0, 0)),
                      predicted=torch.cat(preds).numpy() if preds else np.zeros(0, np.int64),
                      per_sample_loss=torch.cat(losses).numpy() if losses else np.zeros(0),
                      labels=y)
        if class_names is not None:
            from ..metrics import classification_report
            result["report"] = classification_report(y, result["predicted"], list(class_names),
                                                     num_classes=len(class_names))
    return result


def _same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    """The same images: one tensor, or views of the same memory with the same layout."""
    return a is b or (a.shape == b.shape and a.dtype == b.dtype and a.device == b.device
                      and a.stride() == b.stride() and a.data_ptr() == b.data_ptr())


class KeptEvaluation:
    """A held-out evaluation's per-sample result, kept for the run's final evaluation to reuse
    when it would evaluate the same weights the same way (computed once, not twice)."""

    def __init__(self, images, labels, kwargs: dict):
        self.images, self.labels, self.kwargs = images, labels, kwargs
        self.outputs: tuple[int, dict] | None = None  # (epochs done, evaluate()'s result)

    def keep(self, epochs_done: int, result: dict) -> None:
        self.outputs = (epochs_done, result)

    def outputs_for(self, images, labels, epochs_done: int, **kwargs) -> dict | None:
        """The kept result if it is what ``evaluate(model, images, labels, per_sample=True,
        **kwargs)`` would compute now: the same tensors, the same batches and settings, the
        weights of epoch ``epochs_done`` (those evaluated last)."""
        if self.outputs is None or self.outputs[0] != epochs_done:
            return None
        same = _same_tensor(images, self.images) and _same_tensor(labels, self.labels) and all(
            self.kwargs.get(k) == v for k, v in {**FINAL_DEFAULTS, **kwargs}.items())
        return self.outputs[1] if same else None


class Validate(Callback):
    """At each epoch end, evaluate on the held-out ``(images, labels)`` and add ``val_loss``
    and ``val_accuracy`` to the logs (for the callbacks after it, the history and the bar).

    Under a data-parallel job each rank passes its shard and the numbers are summed over
    the ranks. ``timer``: a ``run.timer.Clock`` paused while evaluating (training time only)."""

    def __init__(self, images, labels, *, batch_size: int = 256, tta: str = "none",
                 precision: str | None = None, reduce_ranks: bool = False, timer=None,
                 keep_outputs: bool = False):
        super().__init__()
        self.images, self.labels = images, labels
        self.kwargs = dict(batch_size=batch_size, tta=tta, precision=precision,
                           reduce_ranks=reduce_ranks, per_sample=keep_outputs)
        self.timer = timer
        self.seconds = 0.0   # evaluation seconds of the last epoch
        # keep_outputs: the last validation's per-sample result, for the final evaluation
        self.kept = KeptEvaluation(images, labels, self.kwargs)

    @property
    def outputs(self) -> tuple[int, dict] | None:
        return self.kept.outputs

    def outputs_for(self, images, labels, epochs_done: int, **kwargs) -> dict | None:
        """See ``KeptEvaluation.outputs_for``."""
        return self.kept.outputs_for(images, labels, epochs_done, **kwargs)

    def on_epoch_end(self, epoch, logs=None):
        from .timer import Clock
        clock = Clock(self.model).start()
        if self.timer is not None:
            self.timer.pause()
        ev = evaluate(self.model, self.images, self.labels, **self.kwargs)
        if self.kwargs["per_sample"]:
            self.kept.keep(epoch + 1, ev)
        self.seconds = clock.stop()
        if self.timer is not None:
            self.timer.resume()
        if logs is not None:
            logs["val_loss"], logs["val_accuracy"] = ev["loss"], ev["accuracy"]
            if "map" in ev:  # multi-label: mAP decides the best weights (run.recorder)
                logs["val_map"] = ev["map"]
