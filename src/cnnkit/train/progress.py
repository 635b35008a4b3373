"""Progress output: a tqdm bar per epoch in a terminal, one plain line per epoch otherwise."""

from __future__ import annotations

import os
import sys
import time

FALLBACK_WIDTH = 80


def _fmt_logs(logs: dict) -> str:
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items() if isinstance(v, (int, float)))


def use_bar(verbose) -> bool:
    if verbose == "auto":
        verbose = 1
    return verbose == 1 and sys.stdout.isatty()


def _env_columns() -> int | None:
    """``$COLUMNS`` when it is a positive number."""
    value = os.environ.get("COLUMNS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def terminal_width(stream=None) -> int | None:
    """Columns for a bar on ``stream`` (stdout by default): ``$COLUMNS`` when it is a positive
    number, else what the terminal reports; None where that is zero or cannot be read (a pty
    opened without a size, some CI and container consoles)."""
    columns = _env_columns()
    if columns:
        return columns
    try:
        columns = os.get_terminal_size((stream or sys.stdout).fileno()).columns
    except (AttributeError, ValueError, OSError):
        return None
    return columns if columns > 0 else None


def _bar_width(stream) -> dict:
    """tqdm's width arguments. tqdm asks the terminal itself and ignores ``$COLUMNS``; a
    terminal reporting zero columns gives it a negative width and cut-off lines. So
    ``$COLUMNS`` gives a fixed width, a zero or unknown width a fixed 80 columns, and only a
    terminal that reports its width is followed as it is resized."""
    columns = _env_columns()
    if columns:
        return {"ncols": columns}
    return {"dynamic_ncols": True} if terminal_width(stream) else {"ncols": FALLBACK_WIDTH}


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
                            leave=True, file=sys.stdout, **_bar_width(sys.stdout))

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
