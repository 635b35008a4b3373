"""Progress output: a tqdm bar per epoch in a terminal, one plain line per epoch otherwise."""

from __future__ import annotations

import sys
import time


def _fmt_logs(logs: dict) -> str:
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items() if isinstance(v, (int, float)))


def use_bar(verbose) -> bool:
    if verbose == "auto":
        verbose = 1
    return verbose == 1 and sys.stdout.isatty()


class EpochProgress:
    """Shows one epoch. ``update(step, running)`` is cheap; metrics are read at refresh time."""

    def __init__(self, epoch: int, epochs: int, steps: int, verbose=1, refresh_s: float = 0.25):
        self.verbose = 1 if verbose == "auto" else verbose
        self.epoch, self.epochs, self.steps = epoch, epochs, steps
        self.refresh_s = refresh_s
        self.start = time.perf_counter()
        self._last = 0.0
        self.bar = None
        if self.verbose and use_bar(self.verbose):
            from tqdm.auto import tqdm
            self.bar = tqdm(total=steps, desc=f"Epoch {epoch + 1}/{epochs}", unit="step",
                            leave=True, dynamic_ncols=True, file=sys.stdout)

    def update(self, step: int, running) -> None:
        """``running`` is a zero-argument callable returning the running logs (a host sync)."""
        if self.bar is None:
            return
        now = time.perf_counter()
        if now - self._last >= self.refresh_s or step == self.steps:
            self.bar.n = step
            self.bar.set_postfix_str(_fmt_logs(running()), refresh=False)
            self.bar.refresh()
            self._last = now

    def close(self, logs: dict) -> None:
        seconds = time.perf_counter() - self.start
        if self.bar is not None:
            self.bar.n = self.steps
            self.bar.set_postfix_str(_fmt_logs(logs), refresh=True)
            self.bar.close()
        elif self.verbose:
            per_step = 1000 * seconds / max(self.steps, 1)
            print(f"Epoch {self.epoch + 1}/{self.epochs} - {self.steps} steps - {seconds:.1f}s "
                  f"({per_step:.0f}ms/step) - {_fmt_logs(logs)}", flush=True)
