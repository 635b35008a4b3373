"""Learning-rate schedules, in the one module that holds them.

Keras's schedules: ``schedule(step) -> rate``, evaluated once per optimizer step.

Pass one as an optimizer's ``learning_rate`` (``cnnkit.optimizers.SGD(learning_rate=
ExponentialDecay(0.1, 1000, 0.96))``); ``step`` is the optimizer's ``iterations`` before the
update, as in Keras. Plain Python floats: no tensor, no host sync in the loop.
"""

from __future__ import annotations

import math

from ..config import SCHEDULES  # the one list of cnnkit train's --schedule names

__all__ = ["LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay", "InverseTimeDecay",
           "PolynomialDecay", "CosineDecay", "CosineDecayRestarts", "serialize", "deserialize",
           "SCHEDULES", "warmup_then", "triangle", "lambda_lr"]


class LearningRateSchedule:
    """Base class: subclasses implement ``__call__(step)`` and ``get_config()``."""

    def __call__(self, step: int) -> float:
        raise NotImplementedError(f"learning rate schedule '{type(self).__name__}' must "
                                  "override __call__(self, step)")

    def get_config(self) -> dict:
        raise NotImplementedError(f"learning rate schedule '{type(self).__name__}' must "
                                  "override get_config() to be saved")

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self):
        try:
            args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        except NotImplementedError:
            args = ""
        return f"{type(self).__name__}({args})"


def _positive(name, value):
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


class _RateDecay(LearningRateSchedule):
    """Keras's (initial_learning_rate, decay_steps, decay_rate, staircase) schedules; subclasses
    give ``__call__`` in terms of :meth:`_progress`."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name=None):
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = _positive("decay_steps", decay_steps)
        self.decay_rate = float(decay_rate)
        self.staircase = bool(staircase)
        self.name = name or type(self).__name__

    def _progress(self, step) -> float:
        """``step / decay_steps``, floored with ``staircase``."""
        p = step / self.decay_steps
        return math.floor(p) if self.staircase else p

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class ExponentialDecay(_RateDecay):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)`` (floored with staircase)."""

    def __call__(self, step):
        return self.initial_learning_rate * self.decay_rate ** self._progress(step)


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` up to and including ``boundaries[0]``, then ``values[1]`` ... ."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        if len(boundaries) != len(values) - 1:
            raise ValueError(f"PiecewiseConstantDecay needs one more value than boundaries, got "
                             f"{len(boundaries)} boundaries and {len(values)} values")
        self.boundaries = list(boundaries)
        self.values = [float(v) for v in values]
        self.name = name

    def __call__(self, step):
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return value
        return self.values[-1]

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class InverseTimeDecay(_RateDecay):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)``."""

    def __call__(self, step):
        return self.initial_learning_rate / (1 + self.decay_rate * self._progress(step))


class PolynomialDecay(LearningRateSchedule):
    """From ``initial_learning_rate`` to ``end_learning_rate`` over ``decay_steps`` along
    ``(1 - step / decay_steps) ** power``; ``cycle`` restarts at each multiple of decay_steps."""

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0,
                 cycle=False, name="PolynomialDecay"):
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = _positive("decay_steps", decay_steps)
        self.end_learning_rate = float(end_learning_rate)
        self.power = float(power)
        self.cycle = bool(cycle)
        self.name = name

    def __call__(self, step):
        decay_steps = self.decay_steps
        if self.cycle:
            decay_steps = decay_steps * (1.0 if step == 0 else math.ceil(step / self.decay_steps))
        else:
            step = min(step, decay_steps)
        p = step / decay_steps
        return (self.initial_learning_rate - self.end_learning_rate) * (1 - p) ** self.power \
            + self.end_learning_rate

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "end_learning_rate": self.end_learning_rate, "power": self.power,
                "cycle": self.cycle, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Optional linear warmup from ``initial_learning_rate`` to ``warmup_target`` over
    ``warmup_steps``, then cosine decay over ``decay_steps`` down to ``alpha`` times the peak."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = _positive("decay_steps", decay_steps)
        self.alpha = float(alpha)
        self.name = name
        self.warmup_target = None if warmup_target is None else float(warmup_target)
        self.warmup_steps = warmup_steps

    def _decay(self, step, peak):
        cosine = 0.5 * (1.0 + math.cos(math.pi * step / self.decay_steps))
        return peak * ((1 - self.alpha) * cosine + self.alpha)

    def __call__(self, step):
        if self.warmup_target is None:
            return self._decay(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            delta = self.warmup_target - self.initial_learning_rate
            return delta * step / self.warmup_steps + self.initial_learning_rate
        return self._decay(step - self.warmup_steps, self.warmup_target)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay restarted every period; periods grow by ``t_mul``, peaks by ``m_mul``."""

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0,
                 name="SGDRDecay"):
        self.initial_learning_rate = float(initial_learning_rate)
        self.first_decay_steps = _positive("first_decay_steps", first_decay_steps)
        self.t_mul, self.m_mul, self.alpha = float(t_mul), float(m_mul), float(alpha)
        self.name = name

    def __call__(self, step):
        fraction = step / self.first_decay_steps
        if self.t_mul == 1.0:
            restarts = math.floor(fraction)
            fraction -= restarts
        else:
            restarts = math.floor(math.log(1.0 - fraction * (1.0 - self.t_mul)) / math.log(self.t_mul))
            sum_r = (1.0 - self.t_mul ** restarts) / (1.0 - self.t_mul)
            fraction = (fraction - sum_r) / self.t_mul ** restarts
        m_fac = self.m_mul ** restarts
        cosine = 0.5 * m_fac * (1.0 + math.cos(math.pi * fraction))
        return self.initial_learning_rate * ((1 - self.alpha) * cosine + self.alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "first_decay_steps": self.first_decay_steps, "t_mul": self.t_mul,
                "m_mul": self.m_mul, "alpha": self.alpha, "name": self.name}


_CLASSES = {c.__name__: c for c in (ExponentialDecay, PiecewiseConstantDecay, InverseTimeDecay,
                                      PolynomialDecay, CosineDecay, CosineDecayRestarts)}


def serialize(schedule: LearningRateSchedule) -> dict:
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config: dict) -> LearningRateSchedule:
    """A schedule from ``serialize``'s dict; only cnnkit's own classes (nothing read from a file
    chooses code to run)."""
    name = config.get("class_name")
    if name not in _CLASSES:
        raise ValueError(f"unknown learning rate schedule {name!r}; known: {', '.join(_CLASSES)}")
    return _CLASSES[name].from_config(config.get("config", {}))

# -- cnnkit's own step -> factor schedules -------------------------------------------------
# A factor multiplies each parameter group's base learning rate at an optimizer step (counted
# from 0), so a schedule is one ``torch.optim.lr_scheduler.LambdaLR`` whose state a checkpoint
# keeps without pickling a function:
#     warmup_then(kind, total_steps, warmup_steps, step_every)  # cnnkit train's --schedule
#     triangle(total_steps, start, peak, end)                   # the airbench recipes


def warmup_then(kind: str, total_steps: int, warmup_steps: int = 0, step_every: int = 1):
    """Linear warm-up over ``warmup_steps``, then ``kind`` over the remaining steps:
    'constant', 'cosine' (to 0), 'linear' (to 0) or 'step' (x0.1 every ``step_every``)."""
    if kind not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {kind!r}")
    total, warm = max(1, total_steps), int(warmup_steps)
    step_every = max(1, step_every)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(1, total - warm)
        if kind == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
        if kind == "linear":
            return max(0.0, 1 - t)
        if kind == "step":
            return 0.1 ** ((step - warm) // step_every)
        return 1.0
    return factor


def triangle(total_steps: int, start: float, peak: float, end: float):
    """Step -> LR factor: linear from ``start`` to 1 at ``peak``·total, then to ``end``."""
    peak_step = max(1, int(round(peak * total_steps)))
    total_steps = max(total_steps, peak_step + 1)

    def factor(step: int) -> float:
        if step <= peak_step:
            return start + (1.0 - start) * step / peak_step
        t = min(step, total_steps)
        return 1.0 + (end - 1.0) * (t - peak_step) / (total_steps - peak_step)
    return factor


def lambda_lr(optimizer, factors):
    """``LambdaLR`` over ``optimizer`` with one factor function (or one per group)."""
    import torch
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factors)
