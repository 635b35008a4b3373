"""Small utilities with Keras names: to_categorical, set_random_seed, device choice."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["to_categorical", "set_random_seed", "pick_device", "device_problem", "DeviceError",
           "image_dataset_from_directory", "load_img", "img_to_array", "array_to_img",
           "plot_model"]


class DeviceError(ValueError, RuntimeError):
    """A device that is not a device name, or that this machine does not have."""


def __getattr__(name):
    # Keras's keras.utils data helpers, loaded on first use (they pull in the data package).
    if name == "image_dataset_from_directory":
        from .data.keras_folder import image_dataset_from_directory
        return image_dataset_from_directory
    if name in ("load_img", "img_to_array", "array_to_img"):
        from .data import keras_image
        return getattr(keras_image, name)
    raise AttributeError(f"module 'cnnkit.utils' has no attribute {name!r}")


def plot_model(model, to_file="model.png", **kwargs):
    """Keras's ``plot_model``: a PNG of the model's graph, drawn with matplotlib."""
    from .models.plot import plot_model as draw
    return draw(model, to_file, **kwargs)


def to_categorical(y, num_classes: int | None = None, dtype="float32") -> np.ndarray:
    """One-hot encode integer labels, as ``keras.utils.to_categorical``.

    A trailing axis of size 1 (labels shaped (N, 1), as CIFAR-10 ships them) is dropped.
    """
    y = np.asarray(y, dtype="int64")
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y.reshape(y.shape[:-1])
    if y.size and y.min() < 0:
        raise ValueError(f"to_categorical: labels must be >= 0, got {int(y.min())}")
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 0
    elif y.size and y.max() >= num_classes:
        raise ValueError(f"to_categorical: label {int(y.max())} is outside [0, {num_classes})")
    out = np.zeros(y.shape + (num_classes,), dtype=dtype)
    np.put_along_axis(out, y[..., None], 1, axis=-1)
    return out


def set_random_seed(seed: int) -> None:
    """Seed Python, NumPy and PyTorch so a CPU run repeats exactly."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The device to train on: the one asked for, else cuda, else mps, else cpu.

    The environment variable CNNKIT_DEVICE overrides the automatic choice.
    """
    if device is None or device == "auto":
        device = os.environ.get("CNNKIT_DEVICE") or None
    if device is not None and device != "auto":
        problem = device_problem(device)
        if problem:
            raise DeviceError(f"device {str(device)!r}: {problem}")
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def device_problem(device) -> str | None:
    """Why ``device`` ('cpu', 'cuda', 'cuda:N', 'mps', 'auto') cannot be used here, or None."""
    if device is None or str(device) == "auto":
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        return "not a device name; use auto, cpu, cuda, cuda:N or mps"
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return ("was asked for but CUDA is not available here; use device='cpu' or leave it "
                    "out to pick automatically")
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            return (f"this machine has {n} CUDA device{'s' if n != 1 else ''} "
                    f"(cuda:0{f' .. cuda:{n - 1}' if n > 1 else ''})")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            return "MPS is not available here; use device='cpu' or leave it out"
    elif dev.type != "cpu":
        return "cnnkit runs on auto, cpu, cuda, cuda:N or mps"
    return None
