"""Optimizer names (Keras spelling) -> torch.optim, with Keras's default learning rates."""

from __future__ import annotations

import inspect

import torch

__all__ = ["Optimizer", "Adam", "AdamW", "SGD", "RMSprop", "get", "NAMES"]


class Optimizer:
    """A deferred optimizer: a name plus settings, built once the model's parameters exist.

    ``cnnkit.optimizers.Adam(learning_rate=1e-3)`` reads like Keras; ``build(params)`` returns
    the ``torch.optim`` object. A ready ``torch.optim.Optimizer`` is accepted by compile too.
    """

    torch_class: type = torch.optim.Adam
    defaults: dict = {}

    def __init__(self, learning_rate: float | None = None, weight_decay: float = 0.0, **kwargs):
        self.learning_rate = learning_rate if learning_rate is not None else self.defaults.get("lr", 1e-3)
        self.weight_decay = weight_decay
        self.kwargs = kwargs

    def build(self, params, device: torch.device | None = None) -> torch.optim.Optimizer:
        opts = {k: v for k, v in self.defaults.items() if k != "lr"}
        opts.update(self.kwargs)
        opts["lr"] = self.learning_rate
        opts["weight_decay"] = self.weight_decay
        accepted = inspect.signature(self.torch_class).parameters
        params = list(params)
        # fused: the whole update in one kernel (CPU and CUDA float tensors); else foreach:
        # one kernel per parameter group instead of a Python loop per tensor
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
    torch_class = torch.optim.Adam
    defaults = {"lr": 1e-3, "eps": 1e-7}  # Keras's epsilon

    def __init__(self, learning_rate=None, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, betas=(beta_1, beta_2), eps=epsilon, **kwargs)


class AdamW(Adam):
    torch_class = torch.optim.AdamW

    def __init__(self, learning_rate=None, weight_decay=0.004, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, **kwargs)


class SGD(Optimizer):
    torch_class = torch.optim.SGD
    defaults = {"lr": 0.01}

    def __init__(self, learning_rate=None, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, momentum=momentum, nesterov=nesterov, **kwargs)


class RMSprop(Optimizer):
    torch_class = torch.optim.RMSprop
    defaults = {"lr": 1e-3}

    def __init__(self, learning_rate=None, rho=0.9, momentum=0.0, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, alpha=rho, momentum=momentum, eps=epsilon, **kwargs)


_OPTIMIZERS = {"adam": Adam, "adamw": AdamW, "sgd": SGD, "rmsprop": RMSprop}
NAMES = tuple(_OPTIMIZERS)


def get(optimizer, learning_rate: float | None = None):
    """A name, a cnnkit Optimizer, or a torch.optim.Optimizer -> something with build()/ready."""
    if isinstance(optimizer, (Optimizer, torch.optim.Optimizer)):
        return optimizer
    key = str(optimizer).lower()
    if key not in _OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; valid names: {', '.join(NAMES)}")
    return _OPTIMIZERS[key](learning_rate=learning_rate)
