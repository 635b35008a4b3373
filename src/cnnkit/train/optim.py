"""Optimizer names (Keras spelling) -> torch.optim, with Keras's default learning rates."""

from __future__ import annotations

import inspect

import torch
import torch.optim.optimizer as torch_optimizer

__all__ = ["Optimizer", "Adam", "AdamW", "SGD", "RMSprop", "get", "NAMES", "step_function",
           "clear_grads"]


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


# -- the optimizer step without torch.optim's per-call bookkeeping -----------------------------
_FUSED_KERNELS = {torch.optim.Adam: "_fused_adam_", torch.optim.AdamW: "_fused_adamw_"}


def step_function(optimizer: torch.optim.Optimizer):
    """A callable doing ``optimizer.step()``, leaner where that is exactly equivalent.

    ``torch.optim``'s step wrapper opens two profiler ranges, checks graph capture and groups
    tensors on every call: ~0.2 ms per step on these CPU cores, 3-4% of a seed-003 step. For a
    fused Adam/AdamW with plain settings and no hooks this calls the same fused kernel on the
    same state (``optimizer.state`` keeps torch's keys, so ``state_dict``, checkpoints and a
    later ``optimizer.step()`` all see one optimizer). Anything else gets ``optimizer.step``.
    """
    kernel = _FUSED_KERNELS.get(type(optimizer))
    plain = kernel is not None and all(
        g.get("fused") and not g.get("amsgrad") and not g.get("maximize")
        and not g.get("capturable") and not g.get("differentiable")
        and not isinstance(g["lr"], torch.Tensor) for g in optimizer.param_groups)
    if not plain:
        return optimizer.step
    fused = getattr(torch, kernel)
    opt_hooks = (optimizer._optimizer_step_pre_hooks, optimizer._optimizer_step_post_hooks,
                 torch_optimizer._global_optimizer_pre_hooks,
                 torch_optimizer._global_optimizer_post_hooks)

    def step():
        if any(opt_hooks):  # hooks expect torch's own step
            return optimizer.step()
        work = []
        for group in optimizer.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            mixed = len({(p.device, p.dtype) for p in params}) > 1  # torch splits these
            if mixed or any(p.grad.is_sparse for p in params):
                return optimizer.step()
            if params:
                work.append((group, params))
        for group, params in work:
            states = [optimizer.state[p] for p in params]
            for p, state in zip(params, states):
                if not state:  # as torch's Adam._init_group makes it for a fused step
                    state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            steps = [s["step"] for s in states]
            torch._foreach_add_(steps, 1)
            beta1, beta2 = group["betas"]
            fused(params, [p.grad for p in params], [s["exp_avg"] for s in states],
                  [s["exp_avg_sq"] for s in states], [], steps, lr=group["lr"], beta1=beta1,
                  beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"],
                  amsgrad=False, maximize=False)

    return step


def clear_grads(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.zero_grad(set_to_none=True)`` without its profiler range."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = None
