"""``torch.optim.Optimizer`` subclasses that apply Keras 3's update rules exactly.

Each step does what Keras's ``apply`` does, in its order: the learning rate for this step
(a schedule's value at ``iterations``), gradient clipping (``clipnorm`` per tensor,
``global_clipnorm``, ``clipvalue``), decoupled weight decay ``w -= w * weight_decay * lr``,
then the optimizer's own rule, then ``iterations += 1``. Adam and AdamW call torch's fused
kernel with Keras's epsilon placement; the others are a few tensor ops per parameter.

The state lives where torch keeps it (``optimizer.state``, ``param_groups``), so
``state_dict``, checkpoints and torch LR schedulers work; ``iterations`` is a plain int in
every param group (no host sync to read it).
"""

from __future__ import annotations

import math

import torch
import torch.optim.optimizer as torch_optimizer

__all__ = ["KerasOptimizer", "KerasSGD", "KerasRMSprop", "KerasAdam", "KerasAdagrad",
           "KerasAdadelta", "KerasAdamax", "KerasNadam", "KerasFtrl", "KerasLion", "LearningRate"]

SCHEDULE_NOT_SETTABLE = (
    "This optimizer was created with a LearningRateSchedule object as its learning_rate "
    "argument, hence its learning rate is not settable. If you need the learning rate to be "
    "settable, create the optimizer with a float learning_rate.")


class LearningRate(float):
    """The rate ``optimizer.learning_rate`` reads: a float that also answers Keras's variable
    calls (``.numpy()``, ``.assign(value)``, ``keras.ops.convert_to_numpy`` style use)."""

    def __new__(cls, value, optimizer=None):
        obj = super().__new__(cls, value)
        obj._optimizer = optimizer
        return obj

    def numpy(self):
        import numpy as np
        return np.float32(self)

    def assign(self, value):
        if self._optimizer is None:
            raise TypeError("this learning rate is not attached to an optimizer")
        self._optimizer.learning_rate = value
        return self._optimizer.learning_rate


class KerasOptimizer(torch.optim.Optimizer):
    """Shared Keras semantics; subclasses implement ``_update(group, params, grads, it)``."""

    keras_name = "optimizer"

    def __init__(self, params, lr: float, *, schedule=None, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, loss_scale_factor=None, **hyper):
        if sum(v is not None and v > 0 for v in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError("use only one of clipnorm, clipvalue and global_clipnorm")
        super().__init__(params, dict(lr=float(lr), weight_decay=float(weight_decay or 0.0),
                                      iterations=0, **hyper))
        base = self.param_groups[0]["lr"]  # the first group's rate is "the" rate, as before
        for group in self.param_groups:  # discriminative rates keep their ratio to it
            group.setdefault("lr_ratio", group["lr"] / base if base else 1.0)
        self.schedule = schedule
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.loss_scale_factor = loss_scale_factor
        if schedule is not None:
            self._set_scheduled_rate()

    # -- Keras's optimizer attributes -------------------------------------------------
    @property
    def iterations(self) -> int:
        return int(self.param_groups[0]["iterations"]) if self.param_groups else 0

    @iterations.setter
    def iterations(self, value: int) -> None:
        for group in self.param_groups:
            group["iterations"] = int(value)

    @property
    def learning_rate(self) -> LearningRate:
        if self.schedule is not None:
            return LearningRate(self._scheduled_rate(), self)
        group = self.param_groups[0]
        return LearningRate(group["lr"] / (group["lr_ratio"] or 1.0), self)

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        if self.schedule is not None:
            raise TypeError(SCHEDULE_NOT_SETTABLE)
        value = float(value)
        for group in self.param_groups:
            group["lr"] = value * group["lr_ratio"]

    lr = learning_rate  # Keras 2 spelling

    def get_config(self) -> dict:
        group = self.param_groups[0]
        skip = {"params", "lr", "iterations", "lr_ratio"}
        config = {"name": self.keras_name, "learning_rate": float(self.learning_rate),
                  "clipnorm": self.clipnorm, "clipvalue": self.clipvalue,
                  "global_clipnorm": self.global_clipnorm}
        config.update({k: v for k, v in group.items() if k not in skip})
        return config

    def __getstate__(self):  # copy / pickle keep Keras's settings (torch's keeps only its own)
        state = super().__getstate__()
        state.update({k: getattr(self, k) for k in
                      ("schedule", "clipnorm", "clipvalue", "global_clipnorm", "loss_scale_factor")})
        return state

    # -- the step ---------------------------------------------------------------------
    def _scheduled_rate(self) -> float:
        """A LearningRateSchedule gets the step count; another callable no argument (Keras)."""
        from .schedules import LearningRateSchedule
        if isinstance(self.schedule, LearningRateSchedule):
            return float(self.schedule(self.iterations))
        return float(self.schedule())

    def _set_scheduled_rate(self):
        rate = self._scheduled_rate()
        for group in self.param_groups:
            group["lr"] = rate * group["lr_ratio"]

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.apply_gradients()
        return loss

    @torch.no_grad()
    def apply_gradients(self):
        """One Keras update from the ``.grad`` of each parameter (unwrapped by torch's hooks)."""
        if self.schedule is not None:
            self._set_scheduled_rate()
        work = [(g, [p for p in g["params"] if p.grad is not None]) for g in self.param_groups]
        work = [(g, ps) for g, ps in work if ps]
        grads = self._clipped([[p.grad for p in ps] for _, ps in work])
        for (group, params), group_grads in zip(work, grads):
            if group["weight_decay"]:
                torch._foreach_mul_(params, 1.0 - group["weight_decay"] * group["lr"])
            self._update(group, params, group_grads, group["iterations"])
        for group in self.param_groups:
            group["iterations"] += 1

    def _clipped(self, grads: list[list[torch.Tensor]]) -> list[list[torch.Tensor]]:
        if self.loss_scale_factor:
            grads = [torch._foreach_div(gs, float(self.loss_scale_factor)) for gs in grads]
        if self.clipnorm and self.clipnorm > 0:
            # each tensor: g * clipnorm / max(||g||, clipnorm)
            out = []
            for gs in grads:
                norms = torch._foreach_norm(gs)
                torch._foreach_maximum_(norms, float(self.clipnorm))
                out.append([g * (self.clipnorm / n) for g, n in zip(gs, norms)])
            return out
        if self.global_clipnorm and self.global_clipnorm > 0:
            flat = [g for gs in grads for g in gs]
            norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(flat)))
            scale = self.global_clipnorm * torch.clamp(1.0 / norm, max=1.0 / self.global_clipnorm)
            scale = scale + (norm - norm)  # NaN for a non-finite norm, as Keras makes it
            return [torch._foreach_mul(gs, scale) for gs in grads]
        if self.clipvalue and self.clipvalue > 0:
            v = float(self.clipvalue)
            return [[g.clamp(-v, v) for g in gs] for gs in grads]
        return grads

    def _update(self, group, params, grads, it):
        raise NotImplementedError

    def _slots(self, params, *names, init=0.0):
        """Per-parameter state tensors ``names`` (created as ``init`` on first use)."""
        out = []
        for name in names:
            slot = []
            for p in params:
                state = self.state[p]
                if name not in state:
                    state[name] = torch.full_like(p, init, memory_format=torch.preserve_format)
                slot.append(state[name])
            out.append(slot)
        return out if len(out) > 1 else out[0]


def fast_step(optimizer: KerasOptimizer):
    """``optimizer.step`` without torch's per-call profiler wrapper, unless hooks need it."""
    hooks = (optimizer._optimizer_step_pre_hooks, optimizer._optimizer_step_post_hooks,
             torch_optimizer._global_optimizer_pre_hooks, torch_optimizer._global_optimizer_post_hooks)

    def step():
        if any(hooks):
            return optimizer.step()
        optimizer._opt_called = True  # what torch's wrapper records; LR schedulers check it
        return optimizer.apply_gradients()
    return step


class KerasSGD(KerasOptimizer):
    """``m = momentum * m - lr * g; w += m`` (nesterov: ``w += momentum * m - lr * g``)."""

    keras_name = "SGD"

    def __init__(self, params, lr=0.01, momentum=0.0, nesterov=False, **kw):
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        super().__init__(params, lr, momentum=float(momentum), nesterov=bool(nesterov), **kw)

    def _update(self, group, params, grads, it):
        lr, momentum = group["lr"], group["momentum"]
        if not momentum:
            torch._foreach_add_(params, grads, alpha=-lr)
            return
        ms = self._slots(params, "momentum")
        torch._foreach_mul_(ms, momentum)
        torch._foreach_add_(ms, grads, alpha=-lr)
        if group["nesterov"]:
            torch._foreach_add_(params, ms, alpha=momentum)
            torch._foreach_add_(params, grads, alpha=-lr)
        else:
            torch._foreach_add_(params, ms)


class KerasRMSprop(KerasOptimizer):
    """Keras's RMSprop: epsilon inside the square root, ``lr * g / sqrt(v + eps)``."""

    keras_name = "RMSprop"

    def __init__(self, params, lr=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, **kw):
        super().__init__(params, lr, rho=float(rho), momentum=float(momentum), epsilon=float(epsilon),
                         centered=bool(centered), **kw)

    def _update(self, group, params, grads, it):
        lr, rho, eps = group["lr"], group["rho"], group["epsilon"]
        vs = self._slots(params, "velocity")
        torch._foreach_mul_(vs, rho)
        torch._foreach_addcmul_(vs, grads, grads, value=1 - rho)
        if group["centered"]:
            ag = self._slots(params, "average_gradient")
            torch._foreach_mul_(ag, rho)
            torch._foreach_add_(ag, grads, alpha=1 - rho)
            denom = torch._foreach_sub(vs, torch._foreach_mul(ag, ag))
            torch._foreach_add_(denom, eps)
        else:
            denom = torch._foreach_add(vs, eps)
        torch._foreach_sqrt_(denom)
        increment = torch._foreach_div(torch._foreach_mul(grads, lr), denom)
        if group["momentum"] > 0:
            ms = self._slots(params, "momentum")
            torch._foreach_mul_(ms, group["momentum"])
            torch._foreach_add_(ms, increment)
            torch._foreach_sub_(params, ms)
        else:
            torch._foreach_sub_(params, increment)


class KerasAdam(KerasOptimizer):
    """Keras's Adam (and AdamW, which is Adam with a default weight decay) on torch's fused
    kernel. Keras adds epsilon to ``sqrt(v)`` before the bias correction of ``v``, torch after;
    passing torch ``epsilon / sqrt(1 - beta_2 ** t)`` gives Keras's step exactly."""

    keras_name = "Adam"

    def __init__(self, params, lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **kw):
        super().__init__(params, lr, beta_1=float(beta_1), beta_2=float(beta_2),
                         epsilon=float(epsilon), amsgrad=bool(amsgrad), **kw)

    def _update(self, group, params, grads, it):
        b1, b2 = group["beta_1"], group["beta_2"]
        t = it + 1
        eps = group["epsilon"] / math.sqrt(1 - b2 ** t)
        slots, steps, fusable = self._tensors(group, params)
        torch._foreach_add_(steps, 1)
        if fusable and not any(g.is_sparse for g in grads):
            torch._fused_adam_(params, grads, slots[0], slots[1], slots[2] if group["amsgrad"] else [],
                               steps, lr=group["lr"], beta1=b1, beta2=b2, weight_decay=0.0, eps=eps,
                               amsgrad=group["amsgrad"], maximize=False)
            return
        m, v = slots[0], slots[1]  # the same rule in plain ops (sparse or mixed tensors)
        if any(g.is_sparse for g in grads):
            grads = [g.to_dense() for g in grads]
        torch._foreach_lerp_(m, grads, 1 - b1)
        torch._foreach_mul_(v, b2)
        torch._foreach_addcmul_(v, grads, grads, value=1 - b2)
        if group["amsgrad"]:
            torch._foreach_maximum_(slots[2], v)
            v = slots[2]
        alpha = group["lr"] * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        denom = torch._foreach_add(torch._foreach_sqrt(v), group["epsilon"])
        torch._foreach_addcdiv_(params, m, denom, value=-alpha)


    def _tensors(self, group, params):
        """(moment lists, step counters, fusable) for these parameters; kept between steps
        (the lists, not the values) until the parameters or the loaded state change."""
        key = (id(group), tuple(id(p) for p in params))
        cache = self.__dict__.setdefault("_tensor_cache", {})
        if key not in cache:
            names = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())
            slots = self._slots(params, *names)
            steps = []
            for p in params:  # torch's own per-parameter step counter, as its Adam keeps it
                state = self.state[p]
                if "step" not in state:
                    state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                steps.append(state["step"])
            fusable = all(p.device.type in ("cpu", "cuda", "mps") and p.is_floating_point() for p in params) \
                and len({(p.device, p.dtype) for p in params}) == 1
            cache[key] = (slots, steps, fusable)
        return cache[key]

    def load_state_dict(self, state_dict):
        self.__dict__.pop("_tensor_cache", None)  # the loaded state brings new tensors
        return super().load_state_dict(state_dict)


class KerasAdagrad(KerasOptimizer):
    keras_name = "Adagrad"

    def __init__(self, params, lr=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kw):
        super().__init__(params, lr, initial_accumulator_value=float(initial_accumulator_value),
                         epsilon=float(epsilon), **kw)

    def _update(self, group, params, grads, it):
        acc = self._slots(params, "accumulator", init=group["initial_accumulator_value"])
        torch._foreach_addcmul_(acc, grads, grads)
        denom = torch._foreach_sqrt(torch._foreach_add(acc, group["epsilon"]))
        torch._foreach_addcdiv_(params, grads, denom, value=-group["lr"])


class KerasAdadelta(KerasOptimizer):
    keras_name = "Adadelta"

    def __init__(self, params, lr=0.001, rho=0.95, epsilon=1e-7, **kw):
        super().__init__(params, lr, rho=float(rho), epsilon=float(epsilon), **kw)

    def _update(self, group, params, grads, it):
        rho, eps = group["rho"], group["epsilon"]
        acc_g, acc_dx = self._slots(params, "accumulated_grad", "accumulated_delta_var")
        for p, g, ag, ad in zip(params, grads, acc_g, acc_dx):
            ag.mul_(rho).addcmul_(g, g, value=1 - rho)
            delta = -(ad + eps).sqrt() * g / (ag + eps).sqrt()
            ad.mul_(rho).addcmul_(delta, delta, value=1 - rho)
            p.add_(delta, alpha=group["lr"])


class KerasAdamax(KerasOptimizer):
    keras_name = "Adamax"

    def __init__(self, params, lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kw):
        super().__init__(params, lr, beta_1=float(beta_1), beta_2=float(beta_2),
                         epsilon=float(epsilon), **kw)

    def _update(self, group, params, grads, it):
        b1, b2 = group["beta_1"], group["beta_2"]
        m, u = self._slots(params, "m", "u")
        scale = group["lr"] / (1 - b1 ** (it + 1))
        for p, g, mi, ui in zip(params, grads, m, u):
            mi.lerp_(g, 1 - b1)
            torch.maximum(ui * b2, g.abs(), out=ui)
            p.sub_(scale * mi / (ui + group["epsilon"]))


class KerasNadam(KerasOptimizer):
    keras_name = "Nadam"

    def __init__(self, params, lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kw):
        super().__init__(params, lr, beta_1=float(beta_1), beta_2=float(beta_2),
                         epsilon=float(epsilon), u_product=1.0, **kw)

    def _update(self, group, params, grads, it):
        b1, b2 = group["beta_1"], group["beta_2"]
        group["u_product"] *= b1 * (1.0 - 0.5 * 0.96 ** (it + 1))
        u_t = b1 * (1.0 - 0.5 * 0.96 ** (it + 1))
        u_t_1 = b1 * (1.0 - 0.5 * 0.96 ** (it + 2))
        u_product_t = group["u_product"]
        u_product_t_1 = u_product_t * u_t_1
        m, v = self._slots(params, "momentum", "velocity")
        for p, g, mi, vi in zip(params, grads, m, v):
            mi.lerp_(g, 1 - b1)
            vi.mul_(b2).addcmul_(g, g, value=1 - b2)
            m_hat = u_t_1 * mi / (1 - u_product_t_1) + (1 - u_t) * g / (1 - u_product_t)
            v_hat = vi / (1 - b2 ** (it + 1))
            p.sub_(m_hat * group["lr"] / (v_hat.sqrt() + group["epsilon"]))


class KerasFtrl(KerasOptimizer):
    keras_name = "Ftrl"

    def __init__(self, params, lr=0.001, learning_rate_power=-0.5, initial_accumulator_value=0.1,
                 l1_regularization_strength=0.0, l2_regularization_strength=0.0,
                 l2_shrinkage_regularization_strength=0.0, beta=0.0, **kw):
        if learning_rate_power > 0:
            raise ValueError(f"learning_rate_power must be <= 0, got {learning_rate_power}")
        super().__init__(params, lr, learning_rate_power=float(learning_rate_power),
                         initial_accumulator_value=float(initial_accumulator_value),
                         l1_regularization_strength=float(l1_regularization_strength),
                         l2_regularization_strength=float(l2_regularization_strength),
                         l2_shrinkage_regularization_strength=float(l2_shrinkage_regularization_strength),
                         beta=float(beta), **kw)

    def _update(self, group, params, grads, it):
        lr, power = group["lr"], group["learning_rate_power"]
        l1 = group["l1_regularization_strength"]
        l2 = group["l2_regularization_strength"] + group["beta"] / (2.0 * lr)
        accs = self._slots(params, "accumulator", init=group["initial_accumulator_value"])
        linears = self._slots(params, "linear")
        for p, g, acc, lin in zip(params, grads, accs, linears):
            g_shrunk = g + 2 * group["l2_shrinkage_regularization_strength"] * p
            new_acc = acc + g * g
            lin.add_(g_shrunk - (new_acc.pow(-power) - acc.pow(-power)) / lr * p)
            quadratic = new_acc.pow(-power) / lr + 2 * l2
            p.copy_((lin.clamp(-l1, l1) - lin) / quadratic)
            acc.copy_(new_acc)


class KerasLion(KerasOptimizer):
    keras_name = "Lion"

    def __init__(self, params, lr=0.001, beta_1=0.9, beta_2=0.99, **kw):
        super().__init__(params, lr, beta_1=float(beta_1), beta_2=float(beta_2), **kw)

    def _update(self, group, params, grads, it):
        b1, b2 = group["beta_1"], group["beta_2"]
        for p, g, m in zip(params, grads, self._slots(params, "momentum")):
            p.sub_(group["lr"] * (m * b1 + g * (1 - b1)).sign())
            m.mul_(b2).add_(g, alpha=1 - b2)
