"""Keras-named losses (``cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True)``,
``CategoricalFocalCrossentropy``, ``Hinge`` ...) and Keras's per-sample loss functions."""

from .train.keras_losses import *  # noqa: F401,F403
from .train.keras_losses import (kl_divergence as kld, mean_absolute_error as mae,  # noqa: F401
                                 mean_absolute_percentage_error as mape,
                                 mean_squared_error as mse, mean_squared_logarithmic_error as msle)
from .train.losses import (BinaryCrossentropy, CategoricalCrossentropy, Loss,  # noqa: F401
                           MeanAbsoluteError, MeanSquaredError, SparseCategoricalCrossentropy, get)
