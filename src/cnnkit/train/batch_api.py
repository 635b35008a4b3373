"""Keras's single-batch calls: ``train_on_batch``, ``test_on_batch``, ``predict_on_batch``.

Each takes one batch as arrays (or tensors), as Keras does, and returns that batch's numbers:
the loss and metrics of this batch alone (``[loss, *metrics]``, a scalar, or a dict with
``return_dict=True``), or the predictions.
"""

from __future__ import annotations

import numpy as np
import torch

from . import engine, fit_args


def _batch(model, x, y, sample_weight):
    images, labels = model._images_labels(x, y)
    model._check_labels(labels)
    device = model.device or next(model.parameters()).device
    parts = [images.to(device), labels.to(device) if labels is not None else None]
    if sample_weight is not None:
        parts.append(torch.as_tensor(np.asarray(sample_weight), dtype=torch.float32, device=device))
    return parts, labels


def train_on_batch(model, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
    model._require_compiled()
    batch, labels = _batch(model, x, y, sample_weight)
    with model._labels_checked_on_first_batch(labels):
        logs = engine.train_batch(model, model.optimizer, model.loss, model.metrics_list, batch,
                                  class_weight=class_weight, device=model.device,
                                  precision=model.precision)
    return fit_args.evaluate_result(logs, return_dict)


def test_on_batch(model, x, y=None, sample_weight=None, return_dict=False):
    model._require_compiled()
    batch, labels = _batch(model, x, y, sample_weight)
    with model._labels_checked_on_first_batch(labels):
        logs = engine.evaluate_loop(model, [batch], model.loss, model.metrics_list,
                                    device=model.device, precision=model.precision)
    return fit_args.evaluate_result(logs, return_dict)


def predict_on_batch(model, x) -> np.ndarray:
    arr = x if isinstance(x, torch.Tensor) else np.asarray(x)
    return model.predict(arr, batch_size=max(len(arr), 1), verbose=0)
