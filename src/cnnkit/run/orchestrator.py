"""One training run, whatever trains it: ``cnnkit train``, ``cnnkit.train(cfg)``, a recipe,
one process or a rank of a ``--nproc`` job.

A *builder* decides how the run trains and returns a :class:`Plan` (model with its
optimizer, loader, schedule, augmentation, callbacks); the orchestrator does the rest once
for every builder: the data, the run directory, Ctrl-C, the data-parallel plug-ins,
checkpoints and resume, the clock, the final evaluation and the report.

Checkpoint interface (what a callback does to be resumed): a callback in ``Plan.callbacks``
with ``state_dict()`` / ``load_state_dict(state)`` is saved under ``callbacks/<index>``
(tensors as ``callbacks.<index>.<key>`` in the safetensors file, the rest as JSON in
``state.json``) and loaded back just after ``on_train_begin``.
"""

from __future__ import annotations


import signal
import sys
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import torch

from ..config import ConfigError, TrainConfig
from ..train.callbacks import Callback
from .data import Data, load_data
from .timer import Clock

__all__ = ["Plan", "Context", "TrainResult", "Interrupt", "train", "train_with"]


@dataclass
class Context:
    """What a builder knows about where it runs."""

    cfg: TrainConfig
    data: Data
    device: torch.device
    multi: bool                # one rank of a data-parallel job
    rank: int = 0
    world: int = 1
    clock: Clock | None = None  # the run's training clock (paused while evaluating)


@dataclass
class Plan:
    """Everything that decides how a run trains (what a builder returns)."""

    model: Any                        # a compiled cnnkit Model; its optimizer is the run's
    loader: Any                       # a run.loader.ResumableLoader
    epochs: int                       # epochs for fit (a plan may end earlier: ``finished``)
    name: str                         # model name: run directory name and env.json
    label: str                        # the "model: ..." line
    scheduler: Any = None
    augment: Callable | None = None   # f(x, generator) on float batches, drawing from aug_gen
    aug_gen: torch.Generator | None = None
    callbacks: list = field(default_factory=list)  # in order (run.evaluate.Validate among them)
    class_weight: dict | None = None  # Keras's fit(class_weight=...): {class: weight}
    keep_best: bool = True            # best/ by held-out accuracy; False: the final weights
    finished: Callable[[], bool] = lambda: False   # the plan's own end (a recipe's steps)
    meta: Callable[[], dict] = dict   # JSON the checkpoint keeps (a recipe: settings, steps)
    files: dict = field(default_factory=dict)      # more run files: name -> text (or bytes)
    notes: list = field(default_factory=list)      # for metrics.json and the report
    planned_epochs: int | None = None
    resume_note: Callable[[Any], str] = lambda ckpt: ""
    check_resume: Callable[[Any], None] = lambda ckpt: None  # raise if it would not continue
    tta: str | None = None            # the final evaluation's test-time augmentation when the
                                      # config asks none (a recipe's, as its validations use)


def _final_cfg(cfg: TrainConfig, plan: Plan) -> TrainConfig:
    """``cfg`` as the final evaluation reads it: with the plan's test-time augmentation when
    the config asks none, so metrics.json and the history's validations measure alike."""
    if plan.tta and cfg.tta == "none":
        return replace(cfg, tta=plan.tta)
    return cfg


@dataclass
class TrainResult:
    run: object                      # RunDir (None on ranks other than 0)
    model: object
    data: Data
    history: list[dict]
    metrics: dict | None
    interrupted: bool
    stopped_at: tuple | None
    seconds: float


class Interrupt:
    """Ctrl-C (or SIGTERM) during training: finish the current step, then stop.

    A second Ctrl-C aborts at once (KeyboardInterrupt). In one process it stops ``model``
    directly; in a data-parallel job ``StopTogether`` relays the request so that every rank
    stops after the same step."""

    def __init__(self, quiet: bool = False, model=None):
        self.hit = False
        self.quiet = quiet  # the ranks of a data-parallel job other than 0 stop silently
        self.model = model
        self._old = {}

    def _handler(self, signum, frame):
        if self.hit:
            raise KeyboardInterrupt
        self.hit = True
        if self.model is not None:
            self.model.stop_training = True
        if not self.quiet:
            print("\ncnnkit: interrupted; finishing this step, then saving (Ctrl-C again to "
                  "abort without saving)", file=sys.stderr, flush=True)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}


class SkipWhenCut(Callback):
    """Runs ``inner`` but leaves out its epoch end when an interrupt cut the epoch short
    (no validation, lookahead copy or early-stopping count for half an epoch)."""

    def __init__(self, inner: Callback, cut: Callable[[], bool]):
        super().__init__()
        self.inner, self.cut = inner, cut

    def set_model(self, model):
        super().set_model(model)
        self.inner.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        self.inner.set_params(params)

    def on_epoch_end(self, epoch, logs=None):
        if not self.cut():
            self.inner.on_epoch_end(epoch, logs)


# every other event goes straight to the wrapped callback
for _event in ("on_train_begin", "on_train_end", "on_epoch_begin", "on_train_batch_begin",
               "on_train_batch_end", "on_after_backward", "on_test_begin", "on_test_end"):
    setattr(SkipWhenCut, _event, property(lambda self, e=_event: getattr(self.inner, e)))


def _verbose(cfg: TrainConfig):
    return "auto" if cfg.verbose == "auto" else int(cfg.verbose)


# ------------------------------------------------------------------------------ the run

def train(cfg: TrainConfig | None = None, *, argv: list[str] | None = None, resume=None,
          epochs: int | None = None, log=print) -> TrainResult:
    """Train as ``cfg`` says into a new run directory, or continue the run at ``resume``.

    ``argv``: the command as typed (for command.txt). ``epochs`` (with ``resume``): train
    to this many epochs instead of the run's own (not for recipe runs: a recipe decides).
    A run whose training finished but whose evaluation and report were not written (killed
    in between) is completed by resuming it.

    Under torchrun (``cnnkit train --nproc N``) every process calls this: the model trains
    data-parallel (each rank on its share of every global batch), logs are averaged over
    the ranks, and only rank 0 writes the run directory and returns the metrics. A run
    resumes on as many processes as it trained on.
    """
    from ..train import ddp
    from .checkpoint import load_checkpoint
    from .directory import RunDir, remove_stale_temporaries

    run = ckpt = None
    complete_only = False
    if resume is not None:
        run = RunDir(resume)
        if not run.is_run():
            raise FileNotFoundError(f"--resume {resume}: not a run directory (no config.json)")
        cfg = TrainConfig.from_dict(run.read_json(run.config_json), str(run.config_json))
        if ddp.is_main_process():
            remove_stale_temporaries(run)  # what a save killed part-way left behind
        ckpt = load_checkpoint(run)
        if cfg.recipe:
            if epochs is not None:
                raise ConfigError(f"{run.path} ran recipe {cfg.recipe!r}, which decides its own "
                                  "epochs: resume it without --epochs")
            done = bool((ckpt.meta.get("recipe") or {}).get("finished"))
            what = f"already finished recipe {cfg.recipe!r}; start a new run to train again"
        else:
            if epochs is not None:
                cfg.epochs = int(epochs)
            done = ckpt.epoch >= cfg.epochs
            what = (f"already finished its {cfg.epochs} epochs; pass --epochs N "
                    f"(N > {cfg.epochs}) to train further")
        if done:
            if run.metrics.is_file():
                raise ValueError(f"{run.path} {what}")
            complete_only = True  # trained, but killed before its evaluation and report
        world = ddp.world_size()
        if ckpt.world_size != world and not complete_only:
            how = f" --nproc {ckpt.world_size}" if ckpt.world_size > 1 else " (without --nproc)"
            raise ConfigError(
                f"{run.path} trained on {ckpt.world_size} process{'es' if ckpt.world_size > 1 else ''}"
                f" and this is {world}: resume it on the same number (cnnkit train --resume "
                f"{run.path}{how}); another number gives each process other batches, so the "
                "training could not continue as it was")
    cfg = (cfg or TrainConfig()).validate()
    if cfg.recipe:
        from ..recipes import plan_recipe as builder
    else:
        from .build import plan_ordinary as builder
    if complete_only:  # one process finishes it (under torchrun: rank 0; the others leave)
        if not ddp.is_main_process():
            return TrainResult(None, None, None, [], None, False, None, 0.0)
        return _complete(run, cfg, builder, log)
    return train_with(builder, cfg, argv=argv, log=log, run=run, ckpt=ckpt, epochs=epochs)


def train_with(builder, cfg: TrainConfig, *, argv=None, log=print, run=None, ckpt=None,
               epochs=None) -> TrainResult:
    """The run with ``builder(ctx) -> Plan``: joins a data-parallel job when launched as one."""
    from ..train import ddp
    multi = ddp.init()
    try:
        if ckpt is not None:
            ckpt = ckpt.for_rank(ddp.rank())
        return _run(builder, cfg, argv=argv, log=log, run=run, ckpt=ckpt, epochs=epochs,
                    multi=multi)
    finally:
        if multi:
            ddp.shutdown()


def _context(cfg: TrainConfig, log, multi: bool) -> tuple[Context, Callable]:
    from ..train import ddp
    from ..utils import pick_device, set_random_seed
    main = ddp.is_main_process()
    say = log if main else (lambda *a, **k: None)
    set_random_seed(cfg.seed)
    data = load_data(cfg)
    for note in data.notes:
        say(f"note: {note}")
    wanted = None if cfg.device == "auto" else cfg.device
    device = ddp.device(wanted) if multi else pick_device(wanted)
    return Context(cfg, data, device, multi, ddp.rank(), ddp.world_size()), say


def _run(builder, cfg: TrainConfig, *, argv, log, run, ckpt, epochs, multi: bool) -> TrainResult:
    from ..models.summary import summary_text
    from ..train import ddp, sanity
    from . import directory
    from .recorder import RunRecorder

    ctx, say = _context(cfg, log, multi)
    main = ddp.is_main_process()
    ctx.clock = Clock(ctx.device)
    plan = builder(ctx)
    model = plan.model
    if ckpt is not None:
        plan.check_resume(ckpt)  # before touching the run directory
        if main:
            directory.note_resume(run, cfg, ckpt, epochs)
    elif main:
        # refuse data that cannot train before the run directory exists (nothing left behind)
        sanity.refuse_untrainable(model, getattr(model, "loss", None), ctx.data.train[1])
        run = directory.new_run_dir(cfg.output, cfg.name or f"{ctx.data.tag}-{plan.name}")
        directory.write_run_files(run, cfg, argv, ctx.device, ctx.data,
                                  f"recipe {plan.name}" if cfg.recipe else plan.name,
                                  **({"world_size": ctx.world} if multi else {}))
        run.summary.write_text(summary_text(model) + "\n")
        for name, text in plan.files.items():  # text, or bytes (a picture)
            path = run.path / name
            path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    say(f"run: {run.path if run else '-'}")
    say(f"data: {ctx.data.describe()}")
    say(plan.label + (f" x {ctx.world} processes" if multi else ""))

    loader = plan.loader
    start_epoch = 0
    if ckpt is not None:
        from .checkpoint import restore_training_state
        restore_training_state(ckpt, model=model, optimizer=model.optimizer,
                               scheduler=plan.scheduler)
        loader.generator.set_state(ckpt.tensors["loader.epoch_start"])
        loader.skip = ckpt.step
        start_epoch = ckpt.epoch
        total = f"/{cfg.epochs}" if not cfg.recipe else ""
        say(f"resuming at epoch {ckpt.epoch + 1}{total}"
            + (f", step {ckpt.step}/{len(loader)}" if ckpt.step else "") + plan.resume_note(ckpt))

    if main and cfg.report:  # matplotlib takes ~1 s to import: do it while the model trains
        import importlib
        threading.Thread(target=importlib.import_module, args=("cnnkit.report",),
                         daemon=True).start()
    # one process: Ctrl-C stops the loop itself (no per-step check, which costs a host sync)
    interrupt = Interrupt(quiet=not main, model=None if multi else model)

    def cut() -> bool:  # an interrupt stopped training inside an epoch (not at the plan's end)
        return interrupt.hit and not loader.epoch_complete and not plan.finished()

    recorder = RunRecorder(run, plan, interrupt=interrupt, ckpt=ckpt, cut=cut, clock=ctx.clock,
                           every=cfg.checkpoint_every, main=main, multi=multi)
    recorder.set_model(model)  # also when no fit runs (a plan done before training: --lr-find-only)
    from .loggers import run_loggers  # --log: fed the recorder's rows, so it comes after it
    loggers = run_loggers(cfg, run, recorder, interrupt=interrupt,
                          resumed=ckpt is not None) if main else None
    callbacks: list[Callback] = []
    if multi:  # the stop agreed, the logs averaged and the gradients shared, before the rest
        callbacks += [ddp.StopTogether(interrupt), ddp.ReduceLogs(), ddp.DataParallel()]
    callbacks += [SkipWhenCut(cb, cut) for cb in plan.callbacks] + [recorder]
    callbacks += [loggers] if loggers else []
    augment = plan.augment
    if augment is not None and plan.aug_gen is not None:  # the generator we checkpoint
        from ..data.mixing import with_generator
        augment = with_generator(plan.augment, plan.aug_gen)
    with interrupt:
        ctx.clock.start()
        if not plan.finished():
            model.fit(loader, epochs=plan.epochs, callbacks=callbacks, initial_epoch=start_epoch,
                      augment=augment, verbose=_verbose(cfg) if main else 0,
                      scheduler=plan.scheduler, class_weight=plan.class_weight)
        ctx.clock.pause()
    history = recorder.rows
    seconds = recorder.train_seconds()
    if interrupt.hit and recorder.stopped_at is not None:
        epoch, step = recorder.stopped_at
        where = (f"epoch {epoch + 1}, step {step}/{len(loader)}" if step else
                 f"the end of epoch {epoch}")
        if main:
            log(f"interrupted at {where}; saved {run.last} and a checkpoint.\n"
                f"resume with: cnnkit train --resume {run.path}")
        return TrainResult(run if main else None, model, ctx.data, history, None, True,
                           recorder.stopped_at, seconds)
    if not main:
        return TrainResult(None, model, ctx.data, history, None, False, None, seconds)
    weights = recorder.save_final()
    from .report import finish
    metrics = finish(run, model, ctx.data, _final_cfg(cfg, plan), history=history,
                     best=recorder.best, weights=weights, notes=plan.notes, log=log,
                     planned=plan.planned_epochs or cfg.epochs,
                     validated=next((cb for cb in plan.callbacks if hasattr(cb, "outputs_for")),
                                    None))
    if loggers:
        loggers.finish(metrics)
    recorder.restore_last()
    return TrainResult(run, model, ctx.data, history, metrics, False, None, seconds)


def _complete(run, cfg: TrainConfig, builder, log) -> TrainResult:
    """A run killed after its last checkpoint, before metrics.json and the report: build the
    model, load the final weights (best/ when written, else the checkpoint's) and finish."""
    from ..models.saving import load_model, save_model
    from .checkpoint import load_checkpoint
    from .report import finish
    ctx, say = _context(cfg, log, multi=False)
    plan = builder(ctx)
    ckpt = load_checkpoint(run)
    plan.model.load_state_dict(ckpt.group("model"))
    if not run.last.is_dir():
        save_model(plan.model, run.last, weights_from=ckpt.model_file)
    best = dict(ckpt.meta.get("best") or {})
    weights = "last"
    if plan.keep_best and best:
        if best.get("in_checkpoint") or not (run.best / "config.json").is_file():
            save_model(plan.model, run.best, weights_from=ckpt.model_file)  # the checkpoint's
        else:
            plan.model = load_model(run.best)
            from .build import compile_model
            if not cfg.recipe:
                compile_model(plan.model, cfg)
        weights = "best"
    elif not plan.keep_best:
        save_model(plan.model, run.best, weights_from=ckpt.model_file)
    history = run.read_history()
    say(f"run: {run.path}: training had finished; completing its evaluation and report")
    metrics = finish(run, plan.model, ctx.data, _final_cfg(cfg, plan), history=history, best=best,
                     weights=weights, notes=plan.notes, log=log,
                     planned=plan.planned_epochs or cfg.epochs)
    return TrainResult(run, plan.model, ctx.data, history, metrics, False, None,
                       sum(r.get("epoch_s", 0.0) or 0.0 for r in history))
