"""Named training recipes: documented configs that reach a target accuracy fast.

    from cnnkit import recipes
    recipes.names()                  # ['fast', 'fast-long', 'mnist-fast', 'mnist-long']
    print(recipes.describe("fast", "cpu"))      # every setting, exactly as it will run here
    run = recipes.run_recipe("fast", train=(x, y), val=(vx, vy))
    run.history        # [{'epoch': 1, 'seconds': 14.2, 'val_accuracy': 0.71, ...}, ...]
    run.time_to(0.70)  # training seconds until held-out accuracy first reached 70%
    run.model.save("fast.cnnkit")

A recipe is a frozen :class:`Recipe` dataclass: the network, the optimiser, the schedule,
the augmentation and the speed settings, with units. Nothing else decides how it trains;
``run_recipe`` only carries it out, through the same engine as ``Model.fit`` (the recipe's
optimizer, scheduler, augmentation and callbacks are ordinary engine arguments). Fields in
``cpu`` / ``cuda`` override the rest on that device (a CPU gets a much narrower network);
:meth:`Recipe.resolve` applies them and ``describe`` prints the result.

The CIFAR recipes follow airbench94 (Keller Jordan; see ``cnnkit.models.zoo.airbench``):

- the network: patch-whitening first conv (frozen weights, bias trained for a few epochs),
  three conv groups with scale-free BatchNorm and GELU, identity-initialised convs;
- Nesterov SGD, label smoothing 0.2, a triangular LR schedule (up to the peak, down to
  ``schedule[2]``), BatchNorm biases at ``bias_scaler``× the learning rate;
- hyperparameters in airbench's decoupled units: ``lr`` and ``weight_decay`` are per 1024
  examples and independent of momentum, so changing the batch size or the momentum does not
  change the size of a step;
- batched flip + translate augmentation (``cnnkit.data.augment.Augment``), lookahead (an
  EMA of the weights copied back every few steps), test-time flip augmentation;
- channels_last memory; bfloat16 autocast on GPUs and on CPUs with native bf16
  (AVX512-BF16/AMX), ``torch.compile`` on GPUs.

Seconds are training seconds: from the first setup step (whitening) to the end of the last
step, evaluation excluded (as airbench counts them); ``wall_seconds`` in the history includes
everything. Under ``torchrun`` (see ``cnnkit.distributed``) the recipe trains data-parallel:
``batch_size`` is the global batch and every rank evaluates its share of the held-out set.

``cnnkit train --recipe`` checkpoints after every epoch and on Ctrl-C and continues a stopped
run to the weights of one never stopped: ``run_recipe(interrupt=, checkpoint=, resume=)``
with a :class:`RecipeProgress` (the recipe's own state: step count, lookahead average,
evaluations, clock). Checkpoint writing, like evaluation, is not counted in ``seconds``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from . import distributed, perf
from .data.loader import InMemoryLoader, Resumable, as_tensors
from .train.callbacks import Callback

__all__ = ["Recipe", "RecipeRun", "RecipeProgress", "RECIPES", "get", "names", "describe", "register",
           "run_recipe", "build_model", "build_optimizer", "evaluate", "triangle"]


@dataclass(frozen=True)
class Recipe:
    """A complete training configuration. Units are given with each field."""

    name: str
    description: str
    # -- network (cnnkit.models.zoo.airbench) ------------------------------------------
    model: str = "airbench"
    widths: tuple[int, int, int] = (64, 256, 256)  # channels of the three conv groups
    activation: str = "gelu"
    whiten: bool = True  # initialise the first conv as frozen patch whitening
    whiten_kernel: int = 2
    whiten_bias_epochs: float = 3.0  # epochs the whitening bias trains, then it is frozen
    whiten_images: int = 5000  # training images used to estimate the patch covariance
    bn_momentum: float = 0.4  # torch's convention (airbench writes 0.6 = 1 - 0.4)
    logit_scale: float = 1 / 9
    normalize: str = "data"  # 'data': per-channel mean/std of the training images; 'none'
    # -- optimisation ------------------------------------------------------------------
    epochs: float = 10.0  # may be fractional: the last epoch stops part-way
    batch_size: int = 1024  # global batch (split across ranks under torchrun)
    lr: float = 11.5  # per 1024 examples, decoupled from momentum (airbench units)
    momentum: float = 0.85  # Nesterov
    weight_decay: float = 0.0153  # per 1024 examples, decoupled from the learning rate
    bias_scaler: float = 64.0  # BatchNorm biases learn this many times faster (no extra decay)
    label_smoothing: float = 0.2
    schedule: tuple[float, float, float] = (0.2, 0.23, 0.07)  # triangle: start, peak at, end
    lookahead: tuple[float, float, float, int] | None = (3.0, 0.95, 3.0, 5)
    # ^ (start epoch, decay base, decay power, every n steps): EMA decay = base**n *
    #   (step / total)**power, the EMA copied back into the net at each update (airbench)
    # -- data augmentation and evaluation ---------------------------------------------
    flip: bool = True  # random horizontal flip per image
    translate: int = 2  # random shift by up to this many pixels (reflect-padded crop)
    tta: str = "flip"  # test-time augmentation: 'none' | 'flip' | 'flip_translate'
    eval_batch_size: int = 1000
    # -- speed -------------------------------------------------------------------------
    precision: str = "auto"  # 'auto' = perf.default_precision(device): bf16 where native
    compile: str = "auto"  # torch.compile: 'auto' (on CUDA) | 'on' | 'off'
    channels_last: bool = True
    # -- per-device overrides of any field above ------------------------------------------
    cpu: dict[str, Any] = field(default_factory=dict)
    cuda: dict[str, Any] = field(default_factory=dict)

    def resolve(self, device: torch.device | str = "cpu") -> "Recipe":
        """This recipe as it runs on ``device``: its overrides applied, auto settings decided."""
        device = torch.device(device)
        over = dict(self.cuda if device.type == "cuda" else self.cpu if device.type == "cpu" else {})
        r = dataclasses.replace(self, **over, cpu={}, cuda={})
        precision = perf.default_precision(device) if r.precision == "auto" else r.precision
        compile_ = ("on" if device.type == "cuda" else "off") if r.compile == "auto" else r.compile
        return dataclasses.replace(r, precision=precision, compile=compile_)

    def replace(self, **changes) -> "Recipe":
        """A copy with ``changes`` (validated)."""
        return dataclasses.replace(self, **changes)

    def __post_init__(self):
        problems = []
        if self.epochs <= 0:
            problems.append(f"epochs must be > 0, got {self.epochs}")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0 <= self.momentum < 1:
            problems.append(f"momentum must be in [0, 1), got {self.momentum}")
        if not 0 <= self.label_smoothing < 1:
            problems.append(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.tta not in ("none", "flip", "flip_translate"):
            problems.append(f"tta must be 'none', 'flip' or 'flip_translate', got {self.tta!r}")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            problems.append(f"precision must be auto, fp32, bf16 or fp16, got {self.precision!r}")
        if self.compile not in ("auto", "on", "off"):
            problems.append(f"compile must be 'auto', 'on' or 'off', got {self.compile!r}")
        if self.normalize not in ("data", "none"):
            problems.append(f"normalize must be 'data' or 'none', got {self.normalize!r}")
        start, peak, end = self.schedule
        if not 0 <= peak <= 1:
            problems.append(f"schedule peak position must be in [0, 1], got {peak}")
        if len(self.widths) != 3 or min(self.widths) < 1:
            problems.append(f"widths must be three positive channel counts, got {self.widths!r}")
        fields = {f.name for f in dataclasses.fields(self)} - {"cpu", "cuda", "name"}
        for dev, over in (("cpu", self.cpu), ("cuda", self.cuda)):
            unknown = set(over) - fields
            if unknown:
                problems.append(f"{dev} overrides unknown fields: {', '.join(sorted(unknown))}")
        if problems:
            raise ValueError(f"recipe {self.name!r}: " + "; ".join(problems))

    def to_dict(self) -> dict:
        """JSON-friendly (for run records and the CLI)."""
        return json_ready(dataclasses.asdict(self))


def json_ready(value):
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


# -- the recipes --------------------------------------------------------------------------
RECIPES: dict[str, Recipe] = {}


def register(recipe: Recipe) -> Recipe:
    RECIPES[recipe.name] = recipe
    return recipe


register(Recipe(
    name="fast",
    description="CIFAR-sized images, fast: airbench94 on a GPU (94% on CIFAR-10 in ~10 "
                "epochs); on a CPU a narrow version that passes 70% within a minute on two "
                "cores.",
    cuda=dict(epochs=9.9, tta="flip_translate"),  # airbench94's own settings
    cpu=dict(widths=(32, 64, 64), epochs=3.0, batch_size=512, whiten_bias_epochs=1.0,
             lookahead=None, lr=8.0),
))

register(Recipe(
    name="fast-long",
    description="CIFAR-sized images, more accurate: airbench94's network trained longer; on a "
                "CPU a wider net for 6 epochs (85%+ on CIFAR-10 in under 10 minutes on two "
                "cores).",
    epochs=16.0,
    cpu=dict(widths=(64, 128, 128), epochs=6.0, batch_size=512, whiten_bias_epochs=2.0,
             lookahead=(2.0, 0.95, 3.0, 5)),
))

register(Recipe(
    name="mnist-fast",
    description="28x28 digits: a small airbench-style net, two epochs; 99% on held-out MNIST "
                "in seconds on a CPU.",
    widths=(32, 64, 128), epochs=2.0, batch_size=512, translate=2, flip=False, tta="none",
    whiten=False, lookahead=None, label_smoothing=0.1, lr=6.0,
    cpu=dict(widths=(16, 32, 64)),
))

register(Recipe(
    name="mnist-long",
    description="28x28 digits, more accurate: mnist-fast's design at 32/64/128 for 8 epochs; "
                "99.5%+ on held-out MNIST in about a minute and a half on two cores.",
    widths=(32, 64, 128), epochs=8.0, batch_size=512, translate=2, flip=False, tta="none",
    whiten=False, lookahead=None, label_smoothing=0.1, lr=6.0,
))


def get(name: str | Recipe) -> Recipe:
    if isinstance(name, Recipe):
        return name
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}; recipes: {', '.join(names())}") from None


def names() -> list[str]:
    return sorted(RECIPES)


def describe(name: str | Recipe, device: torch.device | str = "cpu") -> str:
    """Every setting of the recipe as it will run on ``device``, one per line."""
    r = get(name).resolve(device)
    lines = [f"recipe {r.name} on {torch.device(device).type}: {r.description}"]
    for f in dataclasses.fields(r):
        if f.name not in ("name", "description", "cpu", "cuda"):
            lines.append(f"  {f.name:20s} {getattr(r, f.name)!r}")
    return "\n".join(lines)


# -- building blocks ------------------------------------------------------------------------
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


def build_model(recipe: Recipe, input_shape, num_classes: int, class_names=None, images=None):
    """The recipe's network as a ``cnnkit.Model`` (zoo entry ``recipe.model``), not yet trained.

    ``images``: uint8 N×C×H×W training images, for the normalisation statistics.
    """
    from .models import registry
    from .models.preprocess import Preprocess
    from .models.zoo import airbench  # noqa: F401  (registers 'airbench')

    model = registry.create(recipe.model, num_classes=num_classes, input_shape=tuple(input_shape),
                            class_names=class_names, widths=tuple(recipe.widths),
                            whiten_kernel=recipe.whiten_kernel, activation=recipe.activation,
                            bn_momentum=recipe.bn_momentum, logit_scale=recipe.logit_scale)
    if recipe.normalize == "data" and images is not None:
        sample = images[: min(len(images), 10000)].float()
        if images.dtype == torch.uint8:
            sample = sample / 255
        mean = sample.mean(dim=(0, 2, 3)).tolist()
        std = sample.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()
        model.preprocess = Preprocess(mean=mean, std=std)
    return model


def _param_groups(model, recipe: Recipe, batch_size: int):
    """(groups, names): whitening bias, BatchNorm biases, the rest; airbench's decoupled units."""
    from .models.zoo.airbench import AirbenchNet, ScaleFreeBatchNorm
    kilostep_scale = 1024 * (1 + 1 / (1 - recipe.momentum))
    # Per-example lr for a summed loss; the engine's loss is a batch mean, hence * batch_size.
    lr = recipe.lr / kilostep_scale * batch_size
    wd = recipe.weight_decay * batch_size / kilostep_scale  # decay per step, lr-independent
    net = model.module
    whiten_bias = []
    if isinstance(net, AirbenchNet):
        net.whiten.weight.requires_grad_(not recipe.whiten)
        whiten_bias = [net.whiten.bias]
    norm_biases = [m.bias for m in net.modules() if isinstance(m, ScaleFreeBatchNorm)]
    special = {id(p) for p in whiten_bias + norm_biases}
    others = [p for p in model.parameters() if p.requires_grad and id(p) not in special]
    lr_bias = lr * recipe.bias_scaler
    groups = [dict(params=whiten_bias, lr=lr, weight_decay=wd / lr),
              dict(params=norm_biases, lr=lr_bias, weight_decay=wd / lr_bias),
              dict(params=others, lr=lr, weight_decay=wd / lr)]
    return groups


def build_optimizer(model, recipe: Recipe, steps_per_epoch: int, total_steps: int):
    """Nesterov SGD over the recipe's parameter groups and its LambdaLR triangle schedule.

    The whitening bias follows the schedule until ``whiten_bias_epochs``, then its LR is 0
    (frozen without touching ``requires_grad``, which DDP and torch.compile would notice).
    """
    groups = _param_groups(model, recipe, recipe.batch_size)
    try:  # one fused kernel per step where this PyTorch offers it for the device
        opt = torch.optim.SGD(groups, lr=groups[2]["lr"], momentum=recipe.momentum,
                              nesterov=True, fused=True)
    except (RuntimeError, TypeError, ValueError):
        opt = torch.optim.SGD(groups, lr=groups[2]["lr"], momentum=recipe.momentum,
                              nesterov=True, foreach=True)
    tri = triangle(total_steps, *recipe.schedule)
    freeze_at = int(round(recipe.whiten_bias_epochs * steps_per_epoch)) if recipe.whiten else None

    def whiten_factor(step):
        return tri(step) if freeze_at is None or step < freeze_at else 0.0
    sched = torch.optim.lr_scheduler.LambdaLR(opt, [whiten_factor, tri, tri])
    return opt, sched


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def evaluate(model, images: torch.Tensor, labels: torch.Tensor, tta: str = "flip",
             batch_size: int = 1000, precision: str = "fp32") -> float:
    """Accuracy of ``model`` on (images, labels), with test-time augmentation ``tta``.

    Under torchrun pass each rank its share; the counts are summed over ranks.
    """
    from .train.engine import _autocast
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    fmt = getattr(model, "memory_format", torch.contiguous_format)
    correct = torch.zeros((), device=dev, dtype=torch.long)

    def logits(x):
        return model(x.contiguous(memory_format=fmt)).float()

    for lo in range(0, len(images), batch_size):
        x = model.preprocess.to_float(images[lo:lo + batch_size].to(dev, non_blocking=True))
        y = labels[lo:lo + batch_size].to(dev, non_blocking=True)
        with _autocast(dev, precision):
            out = logits(x)
            if tta in ("flip", "flip_translate"):
                out = 0.5 * out + 0.5 * logits(x.flip(-1))
            if tta == "flip_translate":
                pad = torch.nn.functional.pad(x, (1,) * 4, mode="reflect")
                h, w = x.shape[-2:]
                shifted = []
                for v in (pad[..., 0:h, 0:w], pad[..., 2:h + 2, 2:w + 2]):
                    shifted.append(0.5 * logits(v) + 0.5 * logits(v.flip(-1)))
                out = 0.5 * out + 0.25 * (shifted[0] + shifted[1])
        correct += (out.argmax(1) == y).sum()
    model.train(was)
    n_correct, n = distributed.all_reduce_sum([float(correct), float(len(images))])
    return n_correct / max(n, 1)


# -- callbacks that carry the recipe out ------------------------------------------------------
class _StepLimit(Callback):
    """Count optimiser steps; stop after ``total`` of them (a fractional last epoch)."""

    def __init__(self, total: int):
        super().__init__()
        self.total, self.done = total, 0

    def on_train_batch_end(self, batch, logs=None):
        self.done += 1
        if self.done >= self.total:
            self.model.stop_training = True


class _Lookahead(Callback):
    """airbench's lookahead: every ``every`` steps after ``start_step``, move an EMA of the
    weights toward the net and copy it back into the net; at epoch ends copy it back again
    (not at the end of an epoch cut short by an interrupt: the run continues from there)."""

    def __init__(self, steps: _StepLimit, start_step: int, base: float, power: float, every: int,
                 cut=lambda: False):
        super().__init__()
        self.steps, self.start_step, self.base, self.power, self.every = steps, start_step, base, power, every
        self.cut = cut
        self.ema = None

    def _named(self) -> dict[str, torch.Tensor]:
        return {k: t for k, t in self.model.state_dict().items() if t.is_floating_point()}

    def _tensors(self):
        return list(self._named().values())

    @torch.no_grad()
    def on_train_batch_end(self, batch, logs=None):
        done = self.steps.done  # steps finished, this one included
        if done < self.start_step or done % self.every:
            return
        if self.ema is None:
            self.ema = [t.detach().clone() for t in self._tensors()]
            return
        decay = self.base ** self.every * (done / self.steps.total) ** self.power
        net = self._tensors()
        torch._foreach_lerp_(self.ema, net, 1 - decay)
        torch._foreach_copy_(net, self.ema)

    @torch.no_grad()
    def on_epoch_end(self, epoch, logs=None):
        if self.ema is not None and not self.cut():
            torch._foreach_copy_(self._tensors(), self.ema)

    def state(self) -> dict[str, torch.Tensor]:
        """The EMA by state-dict key (empty before it starts)."""
        if self.ema is None:
            return {}
        return {f"lookahead.{k}": e for k, e in zip(self._named(), self.ema)}

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        named = self._named()
        if not any(k.startswith("lookahead.") for k in tensors):
            self.ema = None
            return
        missing = [k for k in named if f"lookahead.{k}" not in tensors]
        if missing:
            raise ValueError(f"the checkpoint's lookahead average lacks {', '.join(missing[:3])}")
        self.ema = [tensors[f"lookahead.{k}"].to(t.device, t.dtype).clone() for k, t in named.items()]


class _Monitor(Callback):
    """Training clock (evaluation excluded), held-out accuracy, time budget and target."""

    def __init__(self, run: "RecipeRun", steps: _StepLimit, val, recipe: Recipe, device,
                 time_budget_s, target_acc, eval_every_steps: int | None, t0: float,
                 cut=lambda: False):
        super().__init__()
        self.run, self.steps, self.val, self.recipe, self.device = run, steps, val, recipe, device
        self.budget, self.target, self.every = time_budget_s, target_acc, eval_every_steps
        self.cut = cut
        self.t0 = t0
        self.train_s = 0.0
        self.resumed = t0
        self.epoch = 0

    def seconds(self) -> float:
        return self.train_s + time.perf_counter() - self.resumed

    def _record(self, logs: dict | None, partial: bool) -> dict:
        _sync(self.device)
        self.train_s += time.perf_counter() - self.resumed
        done = self.steps.done
        if self.run.history and self.run.history[-1]["step"] == done:
            row = self.run.history[-1]  # evaluated a moment ago (the run stopped part-way)
        else:
            row = {"epoch": self.epoch + (0 if partial else 1), "step": done,
                   "seconds": round(self.train_s, 3)}
            if self.val is not None:
                acc = evaluate(self.model, *self.val, tta=self.recipe.tta,
                               batch_size=self.recipe.eval_batch_size,
                               precision=self.recipe.precision)
                row["val_accuracy"] = acc
                if self.target is not None and acc >= self.target:
                    self.model.stop_training = True
            self.run.history.append(row)
        if not partial:
            row["epoch"] = self.epoch + 1
        if logs:
            row.update({k: v for k, v in logs.items() if isinstance(v, (int, float))})
        row["wall_seconds"] = round(time.perf_counter() - self.t0, 3)
        if self.budget is not None and self.train_s >= self.budget:
            self.model.stop_training = True
        self.resumed = time.perf_counter()
        return row

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        done = self.steps.done
        last_of_epoch = done % max(1, self.params.get("steps") or 1) == 0
        if self.every and done % self.every == 0 and not last_of_epoch:
            self._record(None, partial=True)
        elif self.budget is not None and done % 10 == 0:
            over = self.seconds() >= self.budget
            if distributed.is_distributed():  # all ranks decide together
                over = distributed.all_reduce_sum([float(over)])[0] > 0
            if over:
                self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.cut():  # stopped inside the epoch to be continued later: nothing to record
            _sync(self.device)
            self.train_s += time.perf_counter() - self.resumed
            self.resumed = time.perf_counter()
            return
        row = self._record(logs, partial=False)
        if logs is not None:
            logs["seconds"] = row["seconds"]
            if "val_accuracy" in row:
                logs["val_accuracy"] = row["val_accuracy"]


class RecipeProgress:
    """Where a recipe run stands, for checkpoints: ``run_recipe(checkpoint=fn)`` calls ``fn``
    with it after each epoch (and when an interrupt stops training inside one), and
    ``run_recipe(resume=fn)`` calls ``fn`` with it once everything is built, to load a saved
    state into it. The model, optimizer, scheduler, loader and augmentation generator are the
    run's own objects (save them as for any training run); ``tensors()`` and ``meta()`` are the
    rest (step count, lookahead average, evaluations so far, training clock) and ``load``
    puts them back. ``cnnkit.experiment`` keeps all of it in the run directory's checkpoint.
    """

    def __init__(self, recipe: Recipe, model, optimizer, scheduler, loader, aug_gen,
                 steps: _StepLimit, lookahead: _Lookahead | None, monitor: _Monitor,
                 run: "RecipeRun"):
        self.recipe, self.model, self.optimizer, self.scheduler = recipe, model, optimizer, scheduler
        self.loader, self.aug_gen = loader, aug_gen
        self._steps, self._lookahead, self._monitor, self._run = steps, lookahead, monitor, run
        self.epoch = 0            # epochs fully done: where training continues
        self.step = 0             # steps done inside ``epoch`` (> 0 only when cut by an interrupt)
        self.loader_state = loader.generator.get_state()  # shuffle state at the start of ``epoch``
        self.cut = False          # stopped inside an epoch by an interrupt

    @property
    def steps_done(self) -> int:
        return self._steps.done

    @property
    def finished(self) -> bool:
        """All the recipe's steps are done."""
        return self._steps.done >= self._steps.total

    @property
    def history(self) -> list[dict]:
        return self._run.history

    def tensors(self) -> dict[str, torch.Tensor]:
        """The lookahead average (``lookahead.<state key>``), when the recipe has one running."""
        return self._lookahead.state() if self._lookahead is not None else {}

    def meta(self) -> dict:
        """JSON: the resolved recipe, step counts, evaluations so far and the training clock."""
        return {"settings": self.recipe.to_dict(), "steps_done": self._steps.done,
                "steps_total": self._steps.total, "steps_per_epoch": len(self.loader),
                "history": [dict(r) for r in self._run.history],
                "train_seconds": self._monitor.train_s,
                "wall_seconds": time.perf_counter() - self._monitor.t0}

    def load(self, tensors: dict, meta: dict, *, epoch: int, step: int,
             loader_state: torch.Tensor) -> None:
        """Continue from a saved state (``meta()``/``tensors()`` of the same recipe on the same
        data); the model, optimizer, scheduler and RNGs are loaded by the caller."""
        if (meta["steps_per_epoch"], meta["steps_total"]) != (len(self.loader), self._steps.total):
            raise ValueError(f"the saved run took {meta['steps_per_epoch']} steps an epoch and "
                             f"{meta['steps_total']} in all, this one {len(self.loader)} and "
                             f"{self._steps.total}: not the same data or recipe")
        self._steps.done = int(meta["steps_done"])
        if self._lookahead is not None:
            self._lookahead.set_model(self.model)  # the engine sets it again when fit starts
            self._lookahead.load_state(tensors)
        self._run.history[:] = [dict(r) for r in meta.get("history", [])]
        self._monitor.train_s = float(meta.get("train_seconds", 0.0))
        now = time.perf_counter()
        self._monitor.t0 = now - float(meta.get("wall_seconds", 0.0))
        self._monitor.resumed = now
        self.loader.generator.set_state(loader_state)
        self.loader.skip = int(step)
        self.epoch, self.step, self.loader_state = int(epoch), int(step), loader_state


class _Checkpoints(Callback):
    """Hands a ``RecipeProgress`` to ``save`` after every epoch and when an interrupt
    (``flag.hit``) stops training inside one; last in the callback list, so the lookahead
    and the evaluation of the epoch are done (or, for a cut epoch, skipped) first."""

    def __init__(self, progress: RecipeProgress, save, flag, cut):
        super().__init__()
        self.progress, self.save, self.flag, self.cut = progress, save, flag, cut
        self.saved = False

    def _save(self, epoch: int, step: int, loader_state, cut: bool) -> None:
        p = self.progress
        p.epoch, p.step, p.loader_state, p.cut = epoch, step, loader_state, cut
        if self.save is not None:
            self.save(p)
        self.saved = True
        p._monitor.resumed = time.perf_counter()  # writing the checkpoint is not training

    def on_train_begin(self, logs=None):
        if self.flag is not None and self.flag.hit:
            self.model.stop_training = True  # interrupted while setting up

    def on_epoch_end(self, epoch, logs=None):
        loader = self.progress.loader
        if self.cut():
            self._save(epoch, loader.yielded, loader.epoch_start_state, True)
        else:
            self._save(epoch + 1, 0, loader.generator.get_state(), False)

    def on_train_end(self, logs=None):
        if self.flag is not None and self.flag.hit and not self.saved:
            p, loader = self.progress, self.progress.loader  # no step ran: where we stand
            self._save(p.epoch, loader.skip, loader.generator.get_state(), loader.skip > 0)


@dataclass
class RecipeRun:
    """What ``run_recipe`` returns: the trained model and a row per evaluation."""

    recipe: Recipe
    model: Any = None
    history: list[dict] = field(default_factory=list)
    device: str = "cpu"
    settings: dict = field(default_factory=dict)
    interrupted: bool = False        # an interrupt (``run_recipe(interrupt=...)``) stopped it
    stopped_at: tuple[int, int] | None = None  # (epochs done, steps into the next) when it did

    @property
    def seconds(self) -> float:
        """Training seconds in all (evaluation excluded)."""
        return self.history[-1]["seconds"] if self.history else 0.0

    @property
    def accuracy(self) -> float | None:
        """The last held-out accuracy (with the recipe's test-time augmentation)."""
        accs = [r["val_accuracy"] for r in self.history if "val_accuracy" in r]
        return accs[-1] if accs else None

    def time_to(self, target: float) -> float | None:
        """Training seconds at the first evaluation reaching ``target``; None if never."""
        for row in self.history:
            if row.get("val_accuracy", -1.0) >= target:
                return row["seconds"]
        return None

    def summary(self) -> str:
        acc = self.accuracy
        return (f"recipe {self.recipe.name} on {self.device}: {self.seconds:.1f}s of training"
                + (f", held-out accuracy {acc:.4f}" if acc is not None else ""))


def run_recipe(name: str | Recipe, train, val=None, time_budget_s: float | None = None,
               target_acc: float | None = None, device=None, *, seed: int | None = 0,
               eval_every: float = 1.0, class_names=None, verbose="auto",
               interrupt=None, checkpoint=None, resume=None, **overrides) -> RecipeRun:
    """Train the recipe ``name`` on ``train = (x, y)``; evaluate on ``val = (x, y)``.

    x: images as NHWC numpy (Keras style), N×C×H×W tensors, or N×H×W grayscale; uint8 pixels
    (or floats in [0, 1]); y: class indices or one-hot rows.
    ``time_budget_s``: stop once this many training seconds have passed (checked every 10
    steps). ``target_acc``: stop at the first evaluation reaching it. ``eval_every``: epochs
    between evaluations (fractions allowed; each one pauses the clock). ``overrides``: recipe
    fields to change, e.g. ``epochs=5``. Returns a :class:`RecipeRun`.

    Interrupting and continuing (what ``cnnkit train --recipe`` uses): ``interrupt`` is any
    object whose ``hit`` turns true to ask for a stop (the ranks of a data-parallel job agree
    on it after every step); training then stops after the current step, without the
    epoch-end lookahead copy or evaluation if the epoch was cut. ``checkpoint(progress)`` is
    called with a :class:`RecipeProgress` after every epoch and at such a stop;
    ``resume(progress)`` is called once before training to load a saved state into it. A run
    continued this way ends with the same weights as one never stopped (on the CPU; a time
    budget is measured afresh and is the one thing that does not continue exactly).
    """
    from .utils import set_random_seed
    from .data.augment import Augment
    from .train.losses import SparseCategoricalCrossentropy

    multi = distributed.is_distributed()
    dev = distributed.device(device) if multi else _pick(device)
    recipe = get(name).resolve(dev)
    if overrides:  # the caller's changes win over the recipe's device overrides
        recipe = recipe.replace(**overrides)
    perf.configure(dev)
    if seed is not None:
        set_random_seed(seed)
    images, labels = _as_data(train, "train")
    val_t = _as_data(val, "val") if val is not None else None
    input_shape = (images.shape[2], images.shape[3], images.shape[1])  # (H, W, C)
    num_classes = int(labels.max()) + 1 if class_names is None else len(class_names)
    if val_t is not None:
        num_classes = max(num_classes, int(val_t[1].max()) + 1)
        if multi:  # each rank evaluates its share; evaluate() sums the counts
            mine = torch.arange(distributed.rank(), len(val_t[0]), distributed.world_size())
            val_t = (val_t[0][mine], val_t[1][mine])
        val_t = (val_t[0].to(dev), val_t[1].to(dev))

    run = RecipeRun(recipe, device=str(dev), settings=perf.settings())
    _sync(dev)
    t0 = time.perf_counter()
    model = build_model(recipe, input_shape, num_classes, class_names, images)
    model.to(dev)
    if recipe.channels_last:
        perf.channels_last(model)
    if recipe.whiten:
        sample = images[: recipe.whiten_images].to(dev)
        with torch.no_grad():
            model.module.whiten_init(model.preprocess(sample))

    seed_all = distributed.broadcast_seed(seed)
    if multi:
        loader = distributed.ResumableShardedLoader(images, labels, recipe.batch_size,
                                                    shuffle=True, seed=seed_all, device=dev,
                                                    drop_last=True)
    else:
        loader = _Loader(images, labels, recipe.batch_size, shuffle=True, seed=seed_all,
                         device=dev, drop_last=len(images) >= recipe.batch_size)
    steps_per_epoch = len(loader)
    total = max(1, math.ceil(steps_per_epoch * recipe.epochs))
    optimizer, scheduler = build_optimizer(model, recipe, steps_per_epoch, total)
    loss = SparseCategoricalCrossentropy(label_smoothing=recipe.label_smoothing)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"], device=dev,
                  precision=recipe.precision)
    if recipe.compile == "on":
        model.module.compile()

    steps = _StepLimit(total)

    def cut() -> bool:  # an interrupt stopped training inside an epoch (not the recipe's end)
        return bool(interrupt is not None and interrupt.hit and not loader.epoch_complete
                    and steps.done < steps.total)

    callbacks: list[Callback] = [distributed.StopTogether(interrupt)] if interrupt is not None else []
    callbacks.append(steps)
    lookahead = None
    if recipe.lookahead is not None:
        start, base, power, every = recipe.lookahead
        lookahead = _Lookahead(steps, int(start * steps_per_epoch), base, power, int(every), cut)
        callbacks.append(lookahead)
    every_steps = None if eval_every == 1 else max(1, int(round(eval_every * steps_per_epoch)))
    monitor = _Monitor(run, steps, val_t, recipe, dev, time_budget_s, target_acc, every_steps, t0,
                       cut)
    callbacks.append(monitor)
    augment = Augment(flip="horizontal" if recipe.flip else None, crop=recipe.translate,
                      fill_mode="reflect") if (recipe.flip or recipe.translate) else None
    # The augmentation draws from a generator of ours (seeded as the engine seeds its own), so
    # a checkpoint can save it and a resumed run continue its stream.
    aug_gen = torch.Generator(device="cpu")
    aug_gen.manual_seed(int(torch.initial_seed()) % 2**63)
    progress = RecipeProgress(recipe, model, optimizer, scheduler, loader, aug_gen, steps,
                              lookahead, monitor, run)
    saver = None
    if checkpoint is not None or interrupt is not None:
        saver = _Checkpoints(progress, checkpoint, interrupt, cut)
        callbacks.append(saver)
    if resume is not None:
        resume(progress)  # before wrap(): DDP broadcasts rank 0's weights when it wraps
    if multi:
        distributed.wrap(model)
    if multi and not distributed.is_main_process():
        verbose = 0
    try:
        if not progress.finished:
            model.fit(loader, epochs=math.ceil(total / steps_per_epoch),
                      initial_epoch=progress.epoch,
                      augment=(lambda x, _g: augment(x, aug_gen)) if augment is not None else None,
                      scheduler=scheduler, callbacks=callbacks, verbose=verbose)
    finally:
        if multi:
            distributed.unwrap(model)
    run.model = model
    if interrupt is not None and interrupt.hit and not progress.finished:
        run.interrupted = True
        run.stopped_at = (progress.epoch, progress.step)
    return run


class _Loader(Resumable, InMemoryLoader):
    """The single-process recipe loader: can continue inside an epoch."""


def _pick(device):
    from .utils import pick_device
    return pick_device(device)


def _as_data(data, what: str):
    if hasattr(data, "images") and hasattr(data, "labels"):
        return data.images, data.labels
    try:
        x, y = data
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be an (images, labels) pair or a dataset object") from None
    images, labels = as_tensors(x, y)
    if images.ndim != 4:
        raise ValueError(f"{what} images must be N×H×W×C (or N×C×H×W); got shape {tuple(images.shape)}")
    if labels.ndim != 1 or labels.is_floating_point():
        raise ValueError(f"{what} labels must be class indices or one-hot rows")
    return images, labels
