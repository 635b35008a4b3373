"""Keras-named optimizers (``cnnkit.optimizers.Adam(learning_rate=1e-3)``) and their schedules
(``cnnkit.optimizers.schedules.ExponentialDecay``)."""

from ..train.optim import (SGD, Adadelta, Adagrad, Adam, Adamax, AdamW, Ftrl, Lion,  # noqa: F401
                           Nadam, Optimizer, RMSprop, get)
from . import schedules  # noqa: F401
