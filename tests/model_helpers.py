"""The tiny model the export and serve tests share (import it: tests/ is on sys.path)."""

from __future__ import annotations

import torch

from cnnkit.models.registry import create

TINY_CLASS_NAMES = ["ant", "bee", "cat", "dog"]


def tiny_model():
    """The tutorial CNN at 16×16×3 with four named classes, seeded, in eval mode: a real
    cnnkit.Model, fast. A fresh one per call; fixtures decide how widely to share it."""
    torch.manual_seed(0)
    model = create("simple-cnn", num_classes=4, input_shape=(16, 16, 3))
    model.class_names = list(TINY_CLASS_NAMES)
    return model.eval()
