"""Keras-named losses (``cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True)``)."""

from .train.losses import (BinaryCrossentropy, CategoricalCrossentropy, Loss,  # noqa: F401
                           MeanAbsoluteError, MeanSquaredError, SparseCategoricalCrossentropy)
