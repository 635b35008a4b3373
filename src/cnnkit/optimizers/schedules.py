"""Keras's learning-rate schedules (``cnnkit.optimizers.schedules.CosineDecay`` ...)."""

from ..train.schedules import *  # noqa: F401,F403
from ..train.schedules import __all__  # noqa: F401
