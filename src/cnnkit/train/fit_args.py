"""Keras's fit / evaluate / predict arguments checked and turned into engine settings.

Validation, ``evaluate`` and ``predict`` run in batches of 256 by default where the batch
size cannot change a number (eval mode); when it can change what is seen or which events
fire (``steps=`` / ``validation_steps=`` count batches, a callback listens to batch events)
Keras's batch size is used: the one given, else ``batch_size`` (fit) or 32.
"""

from __future__ import annotations

from .callbacks import Callback, CallbackList, _overrides

FAST_EVAL_BATCH = 256
KERAS_BATCH = 32


def check_steps(name: str, value) -> int | None:
    """``steps_per_epoch`` / ``validation_steps`` / ``steps``: None or a positive int."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive number of batches (or None), got {value!r}")
    return value


def check_validation_freq(value):
    if isinstance(value, bool) or not (isinstance(value, int) and value >= 1) and not (
            hasattr(value, "__contains__") and not isinstance(value, str)):
        raise ValueError(f"validation_freq must be a positive int or a list of epochs, got {value!r}")
    return value


def listens(callbacks, *events: str) -> bool:
    """Whether any of ``callbacks`` does something on one of ``events``."""
    cbs = callbacks.callbacks if isinstance(callbacks, CallbackList) else list(callbacks or [])
    return any(isinstance(cb, Callback) and _overrides(cb, e) for cb in cbs for e in events)


def eval_batch_size(given, *, keras_default: int, exact: bool) -> int:
    """The batch size for an eval-mode pass (see the module docstring)."""
    if given:
        return int(given)
    return keras_default if exact else max(keras_default, FAST_EVAL_BATCH)


def validation_parts(validation_data, is_dataset: bool):
    """Keras's ``validation_data``: a dataset, ``(x, y)`` or ``(x, y, sample_weight)`` ->
    (x, y, weights tensor or None)."""
    if is_dataset:
        return validation_data, None, None
    is_sequence = isinstance(validation_data, (tuple, list))
    if not is_sequence or len(validation_data) not in (2, 3):
        items = f" of {len(validation_data)} items" if is_sequence else ""
        raise ValueError("validation_data must be a dataset, (x, y) or (x, y, sample_weight); got "
                         f"{type(validation_data).__name__}{items}")
    if len(validation_data) == 2:
        return validation_data[0], validation_data[1], None
    import numpy as np
    import torch
    x, y, w = validation_data
    return x, y, None if w is None else torch.as_tensor(np.asarray(w), dtype=torch.float32)


def evaluate_result(logs: dict, return_dict: bool):
    """Keras's return value: the dict, a scalar loss alone, or ``[loss, *metrics]``."""
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values
