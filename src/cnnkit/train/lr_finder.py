"""The learning-rate finder: fastai's ``lr_find`` on cnnkit's engine.

The rate grows exponentially from ``start_lr`` to ``end_lr`` over ``num_it`` training steps
(step ``i`` trains at ``start_lr * (end_lr / start_lr) ** (i / num_it)``, fastai's
``SchedExp``); the batch losses are smoothed by an exponential moving average with
debiasing (``beta`` 0.98, fastai's ``AvgSmoothLoss``), and the sweep stops early once the
smoothed loss exceeds 4x its minimum (``stop_div``) or is not finite. Suggestions follow
fastai 2.x, on the sweep without its first tenth and last 5 steps:

- ``valley`` (fastai's default): the longest run of falling losses; two thirds along it,
- ``steepest``: where the smoothed loss falls fastest per decade of rate,
- ``minimum``: a tenth of the rate at the lowest smoothed loss.

Afterwards the model's weights and buffers, the optimizer's state and rates and torch's
global random state are put back as they were (fastai restores its model and optimizer too),
and the batches are drawn by a generator of the sweep's own (``seed``), so a run trains the
same with or without a sweep before it, apart from the rate it picks. A sweep whose smoothed
loss never fell 2% below its start (a model that learns nothing in ``num_it`` steps at any
rate) warns that its suggestions are noise (``LRFindResult.warning``).
"""

from __future__ import annotations

import copy
import io
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..config import LR_SUGGESTIONS

__all__ = ["LRFindResult", "LRFinderError", "lr_find", "smooth_losses", "suggest",
           "flat_warning", "LR_SUGGESTIONS"]


class LRFinderError(ValueError):
    """A sweep that cannot run or that gave too few steps to suggest a rate."""


@dataclass
class LRFindResult:
    """One sweep: the rate of each step, its smoothed loss (and the raw one), the suggestions
    (name -> rate) and where each is marked on the curve (name -> (rate, loss))."""

    lrs: list[float]
    losses: list[float]
    raw_losses: list[float]
    suggestions: dict[str, float]
    points: dict[str, tuple[float, float]] = field(default_factory=dict)
    stopped: str = ""            # why the sweep ended ('' = all num_it steps ran)
    settings: dict = field(default_factory=dict)
    warning: str = ""            # a sweep whose loss hardly fell: its suggestions are noise

    def suggestion(self, name: str = "valley") -> float:
        if name not in self.suggestions:
            raise LRFinderError(f"no {name!r} suggestion; choose one of "
                                f"{', '.join(self.suggestions)}")
        return self.suggestions[name]

    def to_dict(self) -> dict:
        return {"settings": self.settings, "stopped": self.stopped, "warning": self.warning,
                "suggestions": self.suggestions,
                "points": {k: list(v) for k, v in self.points.items()},
                "lrs": self.lrs, "losses": _finite(self.losses),
                "raw_losses": _finite(self.raw_losses)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def plot(self, path=None, skip_end: int = 5, narrow: bool = False):
        """Draw smoothed loss vs rate (log axis) with the suggestions marked; writes a PNG
        at ``path`` (returns it) or, without one, returns the PNG's bytes. ``narrow``: sized
        for a phone (report.html's ``x.narrow.png``)."""
        from matplotlib.figure import Figure
        n = max(len(self.lrs) - skip_end, min(len(self.lrs), 2))  # fastai leaves out the end
        fig = Figure(figsize=(3.6, 3.2) if narrow else (6, 4))
        ax = fig.add_subplot()
        ax.plot(self.lrs[:n], self.raw_losses[:n], color="#8c959f", alpha=0.4, linewidth=1,
                label="batch loss")
        ax.plot(self.lrs[:n], self.losses[:n], color="#0969da", label="smoothed loss")
        colours = ("#cf222e", "#1a7f37", "#8250df")
        for (name, (lr, loss)), colour in zip(self.points.items(), colours):
            label = "minimum/10" if name == "minimum" else name  # marked at the minimum
            ax.plot([lr], [loss], "o", color=colour, markersize=7,
                    label=f"{label}: {self.suggestions[name]:.2e}")
        shown = [v for v in self.losses[:n] if math.isfinite(v)]
        if shown:  # the smoothed curve fills the height; raw spikes may leave it
            low, high = min(shown), max(shown)
            pad = 0.1 * (high - low) or 0.1 * abs(high) or 0.1
            ax.set_ylim(low - pad, high + pad)
        ax.set_xscale("log")
        ax.set_xlabel("Learning rate (log scale)")
        ax.set_ylabel("Loss")
        ax.set_title("Learning-rate finder")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8 if narrow else None)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        if path is None:
            return buffer.getvalue()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buffer.getvalue())
        return path


def _finite(values) -> list:
    """JSON has no NaN: a diverged step's loss is written as null."""
    return [v if math.isfinite(v) else None for v in values]


def smooth_losses(losses, beta: float = 0.98) -> list[float]:
    """fastai's AvgSmoothLoss: ``avg = beta * avg + (1 - beta) * loss``, divided by
    ``1 - beta ** count`` (the debiasing of a moving average started at 0)."""
    avg, out = 0.0, []
    for count, loss in enumerate(losses, start=1):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta ** count))
    return out


def _valley(lrs, losses) -> int:
    """fastai's ``valley``: the longest strictly falling subsequence of the losses; the index
    two thirds of the way along it (fastai's arithmetic, index for index)."""
    n = len(losses)
    max_start, max_end = 0, 0
    lds = [1] * n
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    return max_start + int(sections) + int(sections / 2)


def _steepest(lrs, losses) -> int:
    """fastai's ``steep``: the most negative slope of loss per log-rate."""
    slopes = [(losses[i + 1] - losses[i]) / (math.log(lrs[i + 1]) - math.log(lrs[i]))
              for i in range(len(lrs) - 1)]
    return min(range(len(slopes)), key=slopes.__getitem__)


def suggest(lrs, losses, num_it: int) -> tuple[dict, dict]:
    """(name -> suggested rate, name -> (rate, loss) marked on the curve), as fastai computes
    them on ``lrs[num_it // 10:-5]`` (the whole sweep when that leaves too few steps)."""
    lrs_t, losses_t = list(lrs[num_it // 10:-5]), list(losses[num_it // 10:-5])
    if len(lrs_t) < 3:
        lrs_t, losses_t = list(lrs), list(losses)
    if len(lrs_t) < 3:
        raise LRFinderError(f"the sweep ran only {len(lrs)} step(s) before the loss diverged: "
                            "too few to suggest a rate; lower start_lr or check the data")
    out, points = {}, {}
    i = _valley(lrs_t, losses_t)
    out["valley"], points["valley"] = lrs_t[i], (lrs_t[i], losses_t[i])
    i = _steepest(lrs_t, losses_t)
    out["steepest"], points["steepest"] = lrs_t[i], (lrs_t[i], losses_t[i])
    i = min(range(len(losses_t)), key=losses_t.__getitem__)
    out["minimum"], points["minimum"] = lrs_t[i] / 10, (lrs_t[i], losses_t[i])
    return out, points


FLAT = 0.02  # a smoothed loss that falls by less than this share of its start has not learned


def flat_warning(losses, num_it: int) -> str:
    """'' unless the smoothed loss never fell ``FLAT`` below where it started (the model did
    not learn during the sweep at any rate, so the curve's shape, and the suggestions, are
    noise): then what to do about it."""
    finite = [v for v in losses if math.isfinite(v)]
    if not finite or finite[0] - min(finite) >= FLAT * abs(finite[0]):
        return ""
    return (f"the smoothed loss fell by less than {FLAT:.0%} during the {len(losses)}-step sweep "
            "(the model hardly learned at any rate), so the suggestions are noise; sweep longer "
            f"(more than num_it / --lr-find-steps {num_it}) or keep the default rate")


def _check(start_lr, end_lr, num_it, beta, batch_size) -> None:
    if not (start_lr > 0 and math.isfinite(start_lr)):
        raise LRFinderError(f"lr_find: start_lr must be a positive number, got {start_lr!r}")
    if not (end_lr > start_lr and math.isfinite(end_lr)):
        raise LRFinderError(f"lr_find: end_lr must be larger than start_lr ({start_lr}), "
                            f"got {end_lr!r}")
    if int(num_it) != num_it or num_it < 10:
        raise LRFinderError(f"lr_find: num_it must be a whole number >= 10, got {num_it!r}")
    if not 0 <= beta < 1:
        raise LRFinderError(f"lr_find: beta must be in [0, 1), got {beta!r}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise LRFinderError(f"lr_find: batch_size must be >= 1, got {batch_size!r}")


class _Saved:
    """The model's and optimizer's state and torch's random state, to put back after a sweep."""

    def __init__(self, model, optimizer):
        self.weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.optimizer = copy.deepcopy(optimizer.state_dict())
        self.schedule = getattr(optimizer, "schedule", None)  # a Keras optimizer's schedule
        self.training = model.training
        self.rng = torch.get_rng_state()
        self.cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None

    def restore(self, model, optimizer) -> None:
        from . import optim as optim_mod
        optim_mod.clear_grads(optimizer)
        with torch.no_grad():
            model.load_state_dict(self.weights)
        optimizer.load_state_dict(self.optimizer)
        if self.schedule is not None:
            optimizer.schedule = self.schedule
        model.train(self.training)
        torch.set_rng_state(self.rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)


def _batches(images, labels, batch_size, seed, device):
    """Shuffled batches, reshuffled each pass, for as long as the sweep wants them."""
    from ..data.loader import InMemoryLoader
    loader = InMemoryLoader(images, labels, batch_size=batch_size, shuffle=True, seed=seed,
                            device=device)
    while True:
        yield from loader


def lr_find(model, images, labels, *, batch_size: int = 32, start_lr: float = 1e-7,
            end_lr: float = 10.0, num_it: int = 100, stop_div: bool = True, beta: float = 0.98,
            seed: int = 0) -> LRFindResult:
    """Sweep the rate on a compiled ``model`` over (``images``, ``labels``) tensors (see the
    module docstring); the model and optimizer are left as they were."""
    from . import engine
    _check(start_lr, end_lr, num_it, beta, batch_size)
    optimizer = model.optimizer
    if optimizer is None:
        raise LRFinderError("lr_find: the model has no optimizer yet; call compile() (and "
                            "build the model) first")
    saved = _Saved(model, optimizer)
    base = optimizer.param_groups[0]["lr"] or 1.0
    ratios = [g["lr"] / base for g in optimizer.param_groups]  # discriminative rates keep theirs
    if saved.schedule is not None:
        optimizer.schedule = None  # the sweep sets the rate itself
    device = model.device or next(model.parameters()).device
    lrs, raw, smooth = [], [], []
    avg, best, stopped = 0.0, math.inf, ""
    try:
        for i, batch in zip(range(int(num_it)), _batches(images, labels, batch_size, seed, device)):
            lr = start_lr * (end_lr / start_lr) ** (i / num_it)
            for group, ratio in zip(optimizer.param_groups, ratios):
                group["lr"] = lr * ratio
            loss = engine.train_batch(model, optimizer, model.loss, [], batch, device=device,
                                      precision=model.precision)["loss"]
            avg = beta * avg + (1 - beta) * loss
            value = avg / (1 - beta ** (i + 1))
            lrs.append(lr)
            raw.append(loss)
            smooth.append(value)
            if not math.isfinite(value):
                stopped = f"the loss was not finite at lr {lr:.2e}"
                break
            best = min(best, value)
            if stop_div and value > 4 * best:
                stopped = f"the smoothed loss passed 4x its minimum at lr {lr:.2e}"
                break
    finally:
        saved.restore(model, optimizer)
    finite = next((k for k, v in enumerate(smooth) if not math.isfinite(v)), len(smooth))
    suggestions, points = suggest(lrs[:finite], smooth[:finite], int(num_it))
    settings = {"start_lr": start_lr, "end_lr": end_lr, "num_it": int(num_it), "beta": beta,
                "stop_div": stop_div, "batch_size": int(batch_size), "seed": seed,
                "steps_run": len(lrs)}
    warning = flat_warning(smooth, int(num_it))
    if warning:
        warnings.warn(f"lr_find: {warning}", UserWarning, stacklevel=3)
    return LRFindResult(lrs, smooth, raw, suggestions, points, stopped, settings, warning)
