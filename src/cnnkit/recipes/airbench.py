"""The airbench recipes' parts (Keller Jordan's airbench94; see ``cnnkit.models.zoo.airbench``):
the network, Nesterov SGD over airbench's parameter groups with its triangular schedule,
the step limit, the lookahead average and the held-out monitor; :func:`build` puts them
together for one recipe on one data set.

Callbacks here own their state (``state_dict`` / ``load_state_dict``), so a run's
checkpoint keeps and restores them like any other callback.
"""

from __future__ import annotations

import math
import time

import torch

from ..speed import perf
from ..run.evaluate import FINAL_DEFAULTS, KeptEvaluation, evaluate
from ..run.timer import Clock
from ..train.callbacks import Callback
from ..train.schedules import lambda_lr, triangle

__all__ = ["build_model", "build_optimizer", "StepLimit", "FreezeWhitenBias", "Lookahead", "Monitor",
           "build"]


def build_model(recipe, input_shape, num_classes: int, class_names=None, images=None):
    """The recipe's network as a ``cnnkit.Model`` (zoo entry ``recipe.model``), not yet trained.

    ``images``: uint8 N×C×H×W training images, for the normalisation statistics.
    """
    from ..models import registry
    from ..models.preprocess import Preprocess
    from ..models.zoo import airbench  # noqa: F401  (registers 'airbench')

    model = registry.create(recipe.model, num_classes=num_classes, input_shape=tuple(input_shape),
                            class_names=class_names, widths=tuple(recipe.widths),
                            whiten_kernel=recipe.whiten_kernel,
                            whiten_width=recipe.whiten_width, activation=recipe.activation,
                            bn_momentum=recipe.bn_momentum, logit_scale=recipe.logit_scale)
    if recipe.normalize == "data" and images is not None:
        sample = images[: min(len(images), 10000)].float()
        if images.dtype == torch.uint8:
            sample = sample / 255
        mean = sample.mean(dim=(0, 2, 3)).tolist()
        std = sample.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()
        model.preprocess = Preprocess(mean=mean, std=std)
    return model


def _param_groups(model, recipe, batch_size: int):
    """(groups, names): whitening bias, BatchNorm biases, the rest; airbench's decoupled units."""
    from ..models.zoo.airbench import AirbenchNet, ScaleFreeBatchNorm
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


def whiten_freeze_step(recipe, steps_per_epoch: int) -> int:
    """The step from which the whitening bias is frozen: its schedule's LR is 0 from here, and
    ``FreezeWhitenBias`` stops its gradient here (the two must agree for the same weights)."""
    return int(round(recipe.whiten_bias_epochs * steps_per_epoch))


def build_optimizer(model, recipe, steps_per_epoch: int, total_steps: int):
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
    freeze_at = whiten_freeze_step(recipe, steps_per_epoch) if recipe.whiten else None

    def whiten_factor(step):
        return tri(step) if freeze_at is None or step < freeze_at else 0.0
    sched = lambda_lr(opt, [whiten_factor, tri, tri])
    return opt, sched




class StepLimit(Callback):
    """Count optimiser steps; stop after ``total`` of them (a fractional last epoch)."""

    def __init__(self, total: int):
        super().__init__()
        self.total, self.done = total, 0

    def on_train_batch_end(self, batch, logs=None):
        self.done += 1
        if self.done >= self.total:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["step"] = self.done

    def state_dict(self) -> dict:
        return {"done": self.done}

    def load_state_dict(self, state: dict) -> None:
        self.done = int(state["done"])


class FreezeWhitenBias(Callback):
    """Stop back-propagating into the whitening conv once its bias is frozen (step ``at``).

    From then on the schedule gives that bias a learning rate of 0 and nothing else needs the
    gradient of the whitening output, so ``requires_grad_(False)`` skips computing it: the
    input gradient of the widest conv (about 16% of a CPU step of the ``fast`` recipe). The
    weights are the same as without it. Not used under DDP or ``torch.compile``, which fix
    the trained parameters when they wrap or trace the model. Stateless: a resumed run
    re-freezes at its first step; the flag is restored when training ends."""

    def __init__(self, steps: StepLimit, bias: torch.nn.Parameter, at: int):
        super().__init__()
        self.steps, self.bias, self.at = steps, bias, at

    def on_train_batch_begin(self, batch, logs=None):
        if self.bias.requires_grad and self.steps.done >= self.at:
            self.bias.requires_grad_(False)
            self.bias.grad = None

    def on_train_end(self, logs=None):
        self.bias.requires_grad_(True)


class Lookahead(Callback):
    """airbench's lookahead: every ``every`` steps after ``start_step``, move an EMA of the
    weights toward the net and copy it back into the net; at epoch ends copy it back again."""

    def __init__(self, steps: StepLimit, start_step: int, base: float, power: float, every: int):
        super().__init__()
        self.steps, self.start_step, self.base, self.power, self.every = steps, start_step, base, power, every
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
        if self.ema is not None:
            torch._foreach_copy_(self._tensors(), self.ema)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The EMA by state-dict key, ``ema.<key>`` (empty before it starts)."""
        if self.ema is None:
            return {}
        return {f"ema.{k}": e for k, e in zip(self._named(), self.ema)}

    def load_state_dict(self, state: dict) -> None:
        named = self._named()
        if not any(k.startswith("ema.") for k in state):
            self.ema = None
            return
        missing = [k for k in named if f"ema.{k}" not in state]
        if missing:
            raise ValueError(f"the checkpoint's lookahead average lacks {', '.join(missing[:3])}")
        self.ema = [state[f"ema.{k}"].to(t.device, t.dtype).clone() for k, t in named.items()]


class Monitor(Callback):
    """Held-out accuracy (with the recipe's test-time augmentation), the time budget and the
    target, on the run's training ``clock`` (paused while evaluating).

    ``history`` gets a row per evaluation and per epoch end: epoch, step, training
    ``seconds``, ``val_accuracy`` (where it evaluated), the epoch's logs and
    ``wall_seconds``; the epoch-end values also go into the logs (so a run directory's
    history.csv has them). ``epoch_ends=False`` evaluates only at the end of the run (its last
    step, or an early stop)."""

    def __init__(self, history: list, steps: StepLimit, val, recipe, clock: Clock, t0: float,
                 time_budget_s=None, target_acc=None, eval_every_steps: int | None = None,
                 reduce_ranks: bool = False, epoch_ends: bool = True):
        super().__init__()
        self.history, self.steps, self.val, self.recipe, self.clock = history, steps, val, recipe, clock
        self.budget, self.target, self.every = time_budget_s, target_acc, eval_every_steps
        self.t0, self.reduce_ranks = t0, reduce_ranks
        self.epoch_ends = epoch_ends  # evaluate at every epoch end, or only at the run's end
        self.epoch = 0
        self.final = None if val is None else KeptEvaluation(*val, {
            **FINAL_DEFAULTS, "tta": recipe.tta, "reduce_ranks": reduce_ranks,
            "per_sample": True})

    def outputs_for(self, images, labels, epochs_done: int, **kwargs) -> dict | None:
        """The last evaluation's per-sample result, for the run's final evaluation to reuse
        (``run.evaluate.KeptEvaluation.outputs_for``)."""
        return None if self.final is None else self.final.outputs_for(images, labels,
                                                                      epochs_done, **kwargs)

    def _record(self, logs: dict | None, partial: bool, evaluate_now: bool = True) -> dict:
        done = self.steps.done
        self.clock.pause()
        seconds = self.clock.seconds
        if self.history and self.history[-1]["step"] == done:
            row = self.history[-1]  # evaluated a moment ago (the run stopped part-way)
        else:
            row = {"epoch": self.epoch + (0 if partial else 1), "step": done,
                   "seconds": round(seconds, 3)}
            if self.val is not None and evaluate_now:
                last = done >= self.steps.total
                # The last evaluation is the run's final one, made as report.finish makes it
                # (its batches, per-sample outputs), so the run reuses it instead of repeating it.
                kwargs = dict(self.final.kwargs) if last else dict(
                    tta=self.recipe.tta, batch_size=self.recipe.eval_batch_size,
                    precision=self.recipe.precision, reduce_ranks=self.reduce_ranks)
                ev = evaluate(self.model, *self.val, **kwargs)
                if last:
                    self.final.keep(self.epoch + 1, ev)
                acc = ev["accuracy"]
                row["val_accuracy"] = acc
                if self.target is not None and acc >= self.target:
                    self.model.stop_training = True
            self.history.append(row)
        if not partial:
            row["epoch"] = self.epoch + 1
        if logs:
            row.update({k: v for k, v in logs.items() if isinstance(v, (int, float))})
        row["wall_seconds"] = round(time.perf_counter() - self.t0, 3)
        if self.budget is not None and seconds >= self.budget:
            self.model.stop_training = True
        self.clock.resume()
        return row

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        from ..train import ddp
        done = self.steps.done
        last_of_epoch = done % max(1, self.params.get("steps") or 1) == 0
        if self.every and done % self.every == 0 and not last_of_epoch:
            self._record(None, partial=True)
        elif self.budget is not None and done % 10 == 0:
            if ddp.any_rank(self.clock.seconds >= self.budget):  # all ranks decide together
                self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        ending = self.steps.done >= self.steps.total or self.model.stop_training
        row = self._record(logs, partial=False, evaluate_now=self.epoch_ends or ending)
        if logs is not None:
            logs.update({k: row[k] for k in ("step", "val_accuracy", "wall_seconds") if k in row})

    def state_dict(self) -> dict:
        return {"history": [dict(r) for r in self.history],
                "wall_seconds": time.perf_counter() - self.t0}

    def load_state_dict(self, state: dict) -> None:
        self.history[:] = [dict(r) for r in state.get("history", [])]
        self.t0 = time.perf_counter() - float(state.get("wall_seconds", 0.0))


def build(recipe, images, labels, val, *, device, num_classes: int, class_names, seed_all: int,
          clock: Clock, t0: float, rank: int = 0, world: int = 1, history: list | None = None,
          time_budget_s=None, target_acc=None, eval_every: float = 1.0):
    """The recipe's model (compiled), loader, scheduler, augmentation and callbacks on
    ``device``: a dict of ``run.orchestrator.Plan`` fields (and the ``steps`` counter)."""
    from ..data.augment import Augment
    from ..run.loader import ResumableLoader
    from ..train.losses import SparseCategoricalCrossentropy
    input_shape = (images.shape[2], images.shape[3], images.shape[1])  # (H, W, C)
    model = build_model(recipe, input_shape, num_classes, class_names, images)
    model.to(device)
    if recipe.channels_last:
        perf.channels_last(model)
    if recipe.whiten:
        sample = images[: recipe.whiten_images].to(device)
        with torch.no_grad():
            model.module.whiten_init(model.preprocess(sample))
    multi = world > 1
    loader = ResumableLoader(images, labels, recipe.batch_size, shuffle=True, seed=seed_all,
                             device=device, drop_last=multi or len(images) >= recipe.batch_size,
                             rank=rank, world=world)
    steps_per_epoch = len(loader)
    total = max(1, math.ceil(steps_per_epoch * recipe.epochs))
    optimizer, scheduler = build_optimizer(model, recipe, steps_per_epoch, total)
    loss = SparseCategoricalCrossentropy(label_smoothing=recipe.label_smoothing)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"], device=device,
                  precision=recipe.precision)
    if recipe.compile == "on":
        model.module.compile()
    steps = StepLimit(total)
    callbacks: list[Callback] = [steps]
    whitened = recipe.whiten and hasattr(model.module, "whiten")
    if whitened and not multi and recipe.compile != "on":
        callbacks.append(FreezeWhitenBias(steps, model.module.whiten.bias,
                                          whiten_freeze_step(recipe, steps_per_epoch)))
    if recipe.lookahead is not None:
        start, base, power, every = recipe.lookahead
        callbacks.append(Lookahead(steps, int(start * steps_per_epoch), base, power, int(every)))
    every_steps = None if eval_every in (0, 1) else max(1, int(round(eval_every * steps_per_epoch)))
    callbacks.append(Monitor(history if history is not None else [], steps, val, recipe, clock,
                             t0, time_budget_s, target_acc, every_steps, reduce_ranks=multi,
                             epoch_ends=eval_every != 0))
    augmented = recipe.flip or recipe.translate or recipe.rotate or recipe.zoom
    augment = Augment(flip="horizontal" if recipe.flip else None, crop=recipe.translate,
                      rotate=recipe.rotate, zoom=recipe.zoom,
                      fill_mode="reflect") if augmented else None
    # The augmentation draws from a generator of ours (seeded as the engine seeds its own), so
    # a checkpoint can save it and a resumed run continue its stream.
    aug_gen = torch.Generator(device="cpu")
    aug_gen.manual_seed(int(torch.initial_seed()) % 2**63)
    return dict(model=model, loader=loader, epochs=math.ceil(total / steps_per_epoch),
                scheduler=scheduler, augment=augment, aug_gen=aug_gen, callbacks=callbacks,
                finished=lambda: steps.done >= steps.total), steps
