"""Optimizer names and Keras's optimizer classes, built once the model's parameters exist.

``cnnkit.optimizers.Adam(learning_rate=1e-3)`` reads like Keras; ``compile`` calls
``build(params)``, which returns a ``torch.optim.Optimizer`` applying Keras's update rule
(``keras_updates``): ``model.optimizer.learning_rate`` reads and sets the rate of the next
step, a schedule may be the learning rate, and clipping / weight decay follow Keras.
"""

from __future__ import annotations

import inspect
import numbers

import torch

from ..speed.fused_step import clear_grads, step_function  # noqa: F401 (re-exported)
from . import keras_updates as ku
from .schedules import LearningRateSchedule

__all__ = ["Optimizer", "Adam", "AdamW", "SGD", "RMSprop", "Adagrad", "Adadelta", "Adamax", "Nadam",
           "Ftrl", "Lion", "get", "NAMES", "step_function", "clear_grads"]

_UNSUPPORTED = ("use_ema", "gradient_accumulation_steps")


class Optimizer:
    """A deferred optimizer: a name plus settings, built once the model's parameters exist.

    Subclasses set ``torch_class``; ``kwargs`` holds the optimizer's own hyperparameters
    (Keras names), ``learning_rate`` a float or a ``LearningRateSchedule``. A ready
    ``torch.optim.Optimizer`` is accepted by compile too.
    """

    torch_class: type = ku.KerasAdam
    defaults: dict = {}

    def __init__(self, learning_rate=None, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, loss_scale_factor=None, name=None, **kwargs):
        for key in _UNSUPPORTED:
            if kwargs.pop(key, None) not in (None, False):
                raise NotImplementedError(f"{type(self).__name__}({key}=...) is not supported by "
                                          "cnnkit; leave it unset")
        for key in ("ema_momentum", "ema_overwrite_frequency"):
            kwargs.pop(key, None)
        if learning_rate is None:
            learning_rate = self.defaults.get("lr", 1e-3)
        if not isinstance(learning_rate, numbers.Real) and not callable(learning_rate):
            raise TypeError(f"learning_rate must be a number or a schedule, got {learning_rate!r}")
        self.built_optimizer = None
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.loss_scale_factor = loss_scale_factor
        self.name = name or type(self).__name__.lower()
        self.kwargs = kwargs

    # After compile, the object the user made speaks for the optimizer compile built from it
    # (Keras's model.optimizer is the object passed): its rate and step count are the live ones.
    @property
    def learning_rate(self):
        if self.built_optimizer is not None and hasattr(self.built_optimizer, "schedule"):
            return self.built_optimizer.learning_rate
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if self.built_optimizer is not None and hasattr(self.built_optimizer, "schedule"):
            self.built_optimizer.learning_rate = value
        else:
            self._learning_rate = value

    @property
    def iterations(self) -> int:
        return getattr(self.built_optimizer, "iterations", 0)

    def build(self, params, device: torch.device | None = None) -> torch.optim.Optimizer:
        params = list(params)
        if not issubclass(self.torch_class, ku.KerasOptimizer):
            return self._build_torch(params)
        rate = self._learning_rate
        schedule = None if isinstance(rate, numbers.Real) else rate
        lr = float(rate) if schedule is None else \
            float(schedule(0)) if isinstance(schedule, LearningRateSchedule) else 1.0  # set per step
        opt = self.torch_class(params, lr, schedule=schedule, weight_decay=self.weight_decay,
                               clipnorm=self.clipnorm, clipvalue=self.clipvalue,
                               global_clipnorm=self.global_clipnorm,
                               loss_scale_factor=self.loss_scale_factor, **self.kwargs)
        self.built_optimizer = opt
        return opt

    def _build_torch(self, params):
        """A plain ``torch.optim`` class (a subclass may name one): fused or foreach kernels."""
        opts = {k: v for k, v in self.defaults.items() if k != "lr"}
        opts.update(self.kwargs)
        opts["lr"] = self._learning_rate
        opts["weight_decay"] = self.weight_decay or 0.0
        accepted = inspect.signature(self.torch_class).parameters
        tensors = [t for p in params for t in (p["params"] if isinstance(p, dict) else [p])]
        fusable = all(t.is_floating_point() and t.device.type in ("cpu", "cuda") for t in tensors)
        if "fused" in accepted and fusable and "fused" not in opts and "foreach" not in opts:
            opts["fused"] = True
        elif "foreach" in accepted and "foreach" not in opts and "fused" not in opts:
            opts["foreach"] = True
        return self.torch_class(params, **opts)

    def __repr__(self):
        return f"{type(self).__name__}(learning_rate={self.learning_rate})"


class Adam(Optimizer):
    torch_class = ku.KerasAdam
    defaults = {"lr": 1e-3}

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 **kwargs):
        super().__init__(learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         amsgrad=amsgrad, **kwargs)


class AdamW(Adam):
    """Adam with decoupled weight decay (Keras's default 0.004)."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, **kwargs)


class SGD(Optimizer):
    torch_class = ku.KerasSGD
    defaults = {"lr": 0.01}

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, momentum=momentum, nesterov=nesterov, **kwargs)


class RMSprop(Optimizer):
    torch_class = ku.KerasRMSprop

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 **kwargs):
        super().__init__(learning_rate, rho=rho, momentum=momentum, epsilon=epsilon,
                         centered=centered, **kwargs)


class Adagrad(Optimizer):
    torch_class = ku.KerasAdagrad

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, initial_accumulator_value=initial_accumulator_value,
                         epsilon=epsilon, **kwargs)


class Adadelta(Optimizer):
    torch_class = ku.KerasAdadelta

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, rho=rho, epsilon=epsilon, **kwargs)


class Adamax(Optimizer):
    torch_class = ku.KerasAdamax

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, **kwargs)


class Nadam(Optimizer):
    torch_class = ku.KerasNadam

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, **kwargs)


class Ftrl(Optimizer):
    torch_class = ku.KerasFtrl

    def __init__(self, learning_rate=0.001, learning_rate_power=-0.5, initial_accumulator_value=0.1,
                 l1_regularization_strength=0.0, l2_regularization_strength=0.0,
                 l2_shrinkage_regularization_strength=0.0, beta=0.0, **kwargs):
        super().__init__(learning_rate, learning_rate_power=learning_rate_power,
                         initial_accumulator_value=initial_accumulator_value,
                         l1_regularization_strength=l1_regularization_strength,
                         l2_regularization_strength=l2_regularization_strength,
                         l2_shrinkage_regularization_strength=l2_shrinkage_regularization_strength,
                         beta=beta, **kwargs)


class Lion(Optimizer):
    torch_class = ku.KerasLion

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, **kwargs):
        super().__init__(learning_rate, beta_1=beta_1, beta_2=beta_2, **kwargs)


_OPTIMIZERS = {"adam": Adam, "adamw": AdamW, "sgd": SGD, "rmsprop": RMSprop, "adagrad": Adagrad,
               "adadelta": Adadelta, "adamax": Adamax, "nadam": Nadam, "ftrl": Ftrl, "lion": Lion}
NAMES = tuple(_OPTIMIZERS)


def get(optimizer, learning_rate: float | None = None):
    """A name, a cnnkit Optimizer, or a torch.optim.Optimizer -> something with build()/ready."""
    if isinstance(optimizer, (Optimizer, torch.optim.Optimizer)):
        return optimizer
    key = str(optimizer).lower()
    if key not in _OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; valid names: {', '.join(NAMES)}")
    return _OPTIMIZERS[key](learning_rate=learning_rate)
