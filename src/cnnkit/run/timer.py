"""The one clock of a run: wall seconds that can pause (evaluation, checkpoints) and resume.

On CUDA it synchronises the model's device before reading the time, so queued kernels are
counted where they ran.
"""

from __future__ import annotations

import time

__all__ = ["Clock"]


class Clock:
    """``start()``, ``pause()``/``resume()``, ``seconds`` (running total), ``stop()``."""

    def __init__(self, model_or_device=None, seconds: float = 0.0):
        self._device = model_or_device
        self.total = float(seconds)   # seconds counted before the current stretch
        self._since: float | None = None

    def _now(self) -> float:
        dev = self._device
        if dev is not None and not isinstance(dev, str):
            dev = getattr(dev, "device", None) or dev
        import torch
        if isinstance(dev, torch.device) and dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return time.perf_counter()

    def start(self) -> "Clock":
        self._since = self._now()
        return self

    resume = start

    def pause(self) -> float:
        if self._since is not None:
            self.total += self._now() - self._since
            self._since = None
        return self.total

    stop = pause

    @property
    def running(self) -> bool:
        return self._since is not None

    @property
    def seconds(self) -> float:
        return self.total + (self._now() - self._since if self._since is not None else 0.0)
