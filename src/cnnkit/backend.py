"""``cnnkit.backend``: the parts of ``keras.backend`` image-classification code calls."""

from __future__ import annotations

import gc

import torch

__all__ = ["clear_session", "image_data_format", "backend"]


def clear_session(free_memory: bool = True) -> None:
    """Keras's ``clear_session()``: forget what earlier models left behind. cnnkit names layers
    per model (so there are no session name counters to reset); this frees the memory of
    models no longer referenced, and the GPU's cached blocks."""
    if free_memory:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def image_data_format() -> str:
    """The layout the Keras facade takes and returns images in."""
    return "channels_last"


def backend() -> str:
    return "torch"
