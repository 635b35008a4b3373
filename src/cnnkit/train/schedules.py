"""Learning-rate schedules as step -> factor functions, and their ``LambdaLR`` form.

    warmup_then(kind, total_steps, warmup_steps, step_every)  # cnnkit train's --schedule
    triangle(total_steps, start, peak, end)                   # the airbench recipes

A factor multiplies each parameter group's base learning rate at an optimizer step
(counted from 0), so a schedule is one ``torch.optim.lr_scheduler.LambdaLR`` whose state a
checkpoint keeps without pickling a function.
"""

from __future__ import annotations

import math

from ..config import SCHEDULES  # the one list of the schedule names

__all__ = ["SCHEDULES", "warmup_then", "triangle", "lambda_lr"]


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
