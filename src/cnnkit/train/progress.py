"""Progress output for long work: a live bar in a terminal, a line at a steady interval otherwise.

Two faces, one rule. In a terminal a tqdm bar is redrawn in place. When the output is not a
terminal (piped, a log file, CI, a notebook's captured stream) nothing can be redrawn, so a
plain line is printed every ``$CNNKIT_PROGRESS_INTERVAL`` seconds (default 15; 0 turns the
lines off) with how far the work is, how fast it goes and when it will end.

- ``EpochProgress``: one training epoch (stdout, as Keras prints it), then the epoch line.
- ``Task`` / ``track``: any other long work (decoding a folder, downloading, exporting,
  evaluating), on stderr so that a command's own output stays clean to pipe.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time

__all__ = ["EpochProgress", "Task", "track", "use_bar", "terminal_width", "line_interval",
           "duration"]

FALLBACK_WIDTH = 80
INTERVAL_ENV = "CNNKIT_PROGRESS_INTERVAL"
DEFAULT_INTERVAL_S = 15.0


def _fmt_logs(logs: dict) -> str:
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items() if isinstance(v, (int, float)))


def use_bar(verbose, stream=None) -> bool:
    if verbose == "auto":
        verbose = 1
    return verbose == 1 and _is_terminal(stream or sys.stdout)


def _is_terminal(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def line_interval() -> float:
    """Seconds between progress lines when the output is not a terminal (0: no lines)."""
    value = os.environ.get(INTERVAL_ENV, "").strip()
    if not value:
        return DEFAULT_INTERVAL_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not (seconds >= 0 and math.isfinite(seconds)):
        raise ValueError(f"{INTERVAL_ENV}={value!r} is not a number of seconds; set it to e.g. 15, "
                         "or 0 to print no progress lines")
    return seconds


def duration(seconds: float) -> str:
    """12s, 1m36s, 2h05m."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _plural(unit: str) -> str:
    return unit + ("es" if unit.endswith(("s", "sh", "ch", "x")) else "s")


def _rate_eta(done: float, total, elapsed: float) -> tuple[float, float | None]:
    """(units per second, seconds left or None when unknown)."""
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = (total - done) / rate if total and rate > 0 else None
    return rate, eta


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
    """Shows one epoch. ``update(step, running, images)`` is cheap; metrics are read (a host
    sync) only when the bar is redrawn or a line is due.

    verbose: 1 / "auto" a bar in a terminal, else a line every ``line_interval()`` seconds;
    2 the epoch line only (Keras's one line per epoch); 0 nothing. ``clock`` and ``stream``
    are for tests.
    """

    def __init__(self, epoch: int, epochs: int, steps: int, verbose=1, refresh_s: float = 0.25,
                 *, clock=time.perf_counter, stream=None, interval_s: float | None = None):
        self.verbose = 1 if verbose == "auto" else verbose
        self.epoch, self.epochs, self.steps = epoch, epochs, steps
        self.refresh_s = refresh_s
        self.clock = clock
        self.stream = stream or sys.stdout
        self.interval_s = line_interval() if interval_s is None else interval_s
        self.start = clock()
        self._last = self.start
        self.step, self.images = 0, 0
        self.bar = None
        if self.verbose and use_bar(self.verbose, self.stream):
            from tqdm.auto import tqdm
            self.bar = tqdm(total=steps, desc=f"Epoch {epoch + 1}/{epochs}", unit="step",
                            leave=False, file=self.stream, **_bar_width(self.stream))

    @property
    def _lines(self) -> bool:
        return self.bar is None and self.verbose == 1 and self.interval_s > 0

    def update(self, step: int, running, images: int | None = None) -> None:
        """``running``: a zero-argument callable returning the running logs (a host sync).
        ``images``: images seen so far this epoch (for images/s)."""
        self.step, self.images = step, images or 0
        if self.bar is None and not self._lines:
            return
        now = self.clock()
        if self.bar is not None:
            if now - self._last >= self.refresh_s or step == self.steps:
                self.bar.n = step
                self.bar.set_postfix_str(self._speed(now) + _fmt_logs(running()), refresh=False)
                self.bar.refresh()
                self._last = now
        elif now - self._last >= self.interval_s and step < self.steps:
            rate, eta = _rate_eta(step, self.steps, now - self.start)
            where = f"step {step}/{self.steps} ({100 * step / max(self.steps, 1):.0f}%)" \
                if self.steps else f"step {step}"
            left = f" - ETA {duration(eta)}" if eta is not None else ""
            print(f"Epoch {self.epoch + 1}/{self.epochs} - {where} - {self._speed(now)}"
                  f"{duration(now - self.start)} elapsed{left} - {_fmt_logs(running())}",
                  file=self.stream, flush=True)
            self._last = now

    def _speed(self, now: float) -> str:
        elapsed = now - self.start
        if not self.images or elapsed <= 0:
            return ""
        return f"{self.images / elapsed:.0f} images/s - "

    def close(self, logs: dict) -> None:
        now = self.clock()
        seconds = now - self.start
        if self.bar is not None:
            self.bar.close()  # leave=False: the bar gives way to the full epoch line
        if self.verbose:
            steps = self.step or self.steps
            per_step = 1000 * seconds / max(steps, 1)
            speed = f", {self.images / seconds:.0f} images/s" if self.images and seconds > 0 else ""
            print(f"Epoch {self.epoch + 1}/{self.epochs} - {steps} steps - {seconds:.1f}s "
                  f"({per_step:.0f}ms/step{speed}) - {_fmt_logs(logs)}", file=self.stream,
                  flush=True)


class Task:
    """Progress of one piece of long work, counted in ``unit``s (files, bytes, batches, stages).

        with Task("decoding photos/", total=len(files), unit="file") as task:
            for ...: task.advance(n)

    In a terminal: a tqdm bar on ``stream`` (stderr), shown only once the work has taken
    ``delay_s``, and cleared at the end. Otherwise a line every ``line_interval()`` seconds,
    and a closing line when at least one was printed, so quick work stays silent.
    ``unit="B"`` counts bytes (shown as MB). ``note``: what the work is doing now (a stage).
    ``heartbeat``: work that advances in a few long stages (exporting) also gets its line
    from a background thread while a stage runs; ``rate=False`` leaves out the speed and
    ETA, which mean nothing for stages of different lengths.
    """

    def __init__(self, desc: str, total: int | None = None, unit: str = "item", *,
                 enabled: bool = True, stream=None, clock=time.perf_counter,
                 interval_s: float | None = None, delay_s: float = 1.0, heartbeat: bool = False,
                 rate: bool = True):
        self.desc, self.total, self.unit = desc, total, unit
        self.enabled, self.rate = enabled, rate
        self.stream = stream or sys.stderr
        self.clock = clock
        self.interval_s = line_interval() if interval_s is None else interval_s
        self.start = self._last = clock()
        self.done = 0
        self.note = ""
        self.lines = 0
        self.bar = None
        if enabled and _is_terminal(self.stream):
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=unit == "B",
                            leave=False, delay=delay_s, file=self.stream,
                            **_bar_width(self.stream))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        if heartbeat and self.bar is None and enabled and self.interval_s > 0:
            threading.Thread(target=self._beat, daemon=True, name="cnnkit-progress").start()

    def _beat(self) -> None:
        while not self._stop.wait(min(1.0, self.interval_s)):
            self._line_if_due()

    def __enter__(self) -> Task:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _amount(self, n: float) -> str:
        if self.unit == "B":
            return f"{n / 1e6:.1f} MB"
        return f"{n:g} {_plural(self.unit)}" if n != 1 else f"1 {self.unit}"

    def advance(self, n: int = 1, note: str | None = None) -> None:
        self.done += n
        if note is not None:
            self.note = note
        if self.bar is not None:
            if note is not None:
                self.bar.set_postfix_str(note, refresh=False)
            self.bar.update(n)
            return
        if self.enabled and self.interval_s > 0:
            self._line_if_due()

    def _line_if_due(self) -> None:
        with self._lock:
            now = self.clock()
            if now - self._last < self.interval_s or self._stop.is_set():
                return
            rate, eta = _rate_eta(self.done, self.total, now - self.start)
            of = f"/{self._amount(self.total)} ({100 * self.done / self.total:.0f}%)" \
                if self.total else ""
            done = f"{self.done / 1e6:.1f}" if self.unit == "B" and self.total else \
                (f"{self.done:g}" if self.total else self._amount(self.done))
            speed = f"{rate / 1e6:.1f} MB/s - " if self.unit == "B" else \
                f"{rate:.1f} {_plural(self.unit)}/s - "
            left = f" - ETA {duration(eta)}" if eta is not None else ""
            if not self.rate:
                speed, left = "", ""
            now_doing = f" - {self.note}" if self.note else ""
            print(f"{self.desc}: {done}{of} - {speed}{duration(now - self.start)} elapsed"
                  f"{left}{now_doing}", file=self.stream, flush=True)
            self.lines += 1
            self._last = now

    def close(self) -> None:
        self._stop.set()
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.lines:
            print(f"{self.desc}: {self._amount(self.done)} in {duration(self.clock() - self.start)}",
                  file=self.stream, flush=True)
            self.lines = 0


def track(iterable, desc: str, total: int | None = None, unit: str = "item", *,
          enabled: bool = True, **task_options):
    """Yield from ``iterable``, advancing a ``Task`` by one per item."""
    if total is None and hasattr(iterable, "__len__"):
        try:
            total = len(iterable)
        except TypeError:  # e.g. a DataLoader over an IterableDataset
            total = None
    with Task(desc, total, unit, enabled=enabled, **task_options) as task:
        for item in iterable:
            yield item
            task.advance()
