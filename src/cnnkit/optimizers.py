"""Keras-named optimizers (``cnnkit.optimizers.Adam(learning_rate=1e-3)``)."""

from .train.optim import SGD, Adam, AdamW, Optimizer, RMSprop  # noqa: F401
