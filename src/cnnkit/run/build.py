"""What an ordinary run trains: the model ``cfg.model`` names, compiled as ``cfg`` says,
with its augmentation and learning-rate schedule (a recipe builds its own: ``cnnkit.recipes``)."""

from __future__ import annotations

import sys
from pathlib import Path

from ..config import ConfigError, TrainConfig
from .data import Data, DataError

__all__ = ["UnknownModelName", "default_model", "build_model", "compile_model", "augment",
           "schedule"]


class UnknownModelName(ValueError):
    """``--model`` names no zoo model and no saved model folder."""


def default_model(input_shape=(28, 28, 1), num_classes: int = 10):
    """Seed 001's two-conv Keras network (for 28×28×1 digits by default): the zoo's
    ``mnist-2conv`` built as Keras builds it (glorot kernels, channels-last flatten), so
    the same seed gives the weights and numbers ``cnnkit.Sequential`` of Keras layers gives."""
    import torch

    from ..models import registry
    model = registry.create("mnist-2conv", num_classes=num_classes,
                            input_shape=tuple(input_shape), keras=True)
    model.memory_format = torch.channels_last  # as cnnkit's Keras layers run (same kernels)
    return model


def build_model(cfg: TrainConfig, data: Data):
    """The model ``cfg.model`` names, shaped for ``data``: a saved model folder, a zoo name,
    or (empty) the default: seed 001's network for the bundled digits, 'simple-cnn' otherwise."""
    from ..models import registry
    shape, classes = data.input_shape, len(data.class_names)
    name = cfg.model
    if name and Path(name).expanduser().is_dir():
        from ..models.saving import load_model
        model = load_model(Path(name).expanduser())
        if tuple(model.input_shape or ()) != shape:
            raise UnknownModelName(f"--model {name}: takes input {tuple(model.input_shape or ())} "
                                   f"but the data is {shape}; pass --image-size or another model")
        if model.class_names and len(model.class_names) != classes:
            raise UnknownModelName(f"--model {name}: has {len(model.class_names)} classes, the data "
                                   f"{classes}")
        model.class_names = list(data.class_names)
        model.train()
        return model
    if not name and cfg.data == "bundled":
        model = default_model(shape, classes)
        model.class_names = list(data.class_names)
        return model
    name = name or "simple-cnn"
    try:
        registry.get_entry(name)
    except KeyError as err:
        raise UnknownModelName(f"--model {name!r}: {err} Valid names: "
                               f"{', '.join(registry.list_models())}; or a saved model folder") from None
    return registry.create(name, num_classes=classes, input_shape=shape,
                           pretrained=cfg.pretrained, weights=cfg.weights or None,
                           class_names=list(data.class_names))


def compile_model(model, cfg: TrainConfig, device=None):
    """``model.compile`` with the optimizer, loss, precision and kernels ``cfg`` names."""
    from ..train import losses as losses_mod
    from ..train import optim as optim_mod
    opt = optim_mod.get(cfg.optimizer, cfg.lr)
    opt.weight_decay = cfg.weight_decay
    if cfg.momentum and cfg.optimizer.lower() in ("sgd", "rmsprop"):
        opt.kwargs["momentum"] = cfg.momentum
    from .multilabel import LOSS, wants_multilabel
    loss = losses_mod.get(LOSS if wants_multilabel(cfg) else "sparse_categorical_crossentropy")
    loss.label_smoothing = cfg.label_smoothing
    if cfg.loss == "focal":  # Keras's class and its defaults (alpha 0.25), gamma from cfg
        from ..train.keras_losses import CategoricalFocalCrossentropy
        loss = CategoricalFocalCrossentropy(gamma=cfg.focal_gamma,
                                            label_smoothing=cfg.label_smoothing)
    if device is None:
        device = None if cfg.device == "auto" else cfg.device
    model.compile(optimizer=opt, loss=loss, metrics=["accuracy"], device=device,
                  precision=cfg.precision, jit_compile=cfg.jit_compile,
                  ema=cfg.ema or None, ema_warmup=cfg.ema_warmup)
    return model


def augment(cfg: TrainConfig):
    """The batched augmentation ``cfg.augment`` spells (None for none)."""
    if not cfg.augment:
        return None
    from ..data.augment import parse_augment_spec
    try:
        return parse_augment_spec(cfg.augment)
    except (ValueError, KeyError) as err:
        raise DataError(f"--augment {cfg.augment!r}: {err}") from err


def schedule(cfg: TrainConfig, optimizer, steps_per_epoch: int):
    """A per-step LambdaLR for ``cfg.schedule`` with ``cfg.warmup_epochs`` of warm-up."""
    from ..train.schedules import lambda_lr, warmup_then
    if cfg.schedule == "constant" and not cfg.warmup_epochs:
        return None
    try:
        factor = warmup_then(cfg.schedule, cfg.epochs * steps_per_epoch,
                             int(round(cfg.warmup_epochs * steps_per_epoch)),
                             (cfg.step_epochs or max(1, cfg.epochs // 3)) * steps_per_epoch)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    return lambda_lr(optimizer, factor)


def plan_ordinary(ctx):
    """The builder of an ordinary (non-recipe) run: ``cfg``'s model, optimizer, schedule,
    augmentation, validation and early stopping (see ``run.orchestrator.Plan``)."""
    import torch

    from ..train.callbacks import EarlyStopping
    from .evaluate import Validate
    from .loader import ResumableLoader, share
    from .orchestrator import Plan
    cfg, data = ctx.cfg, ctx.data
    model = build_model(cfg, data)
    if data.multi_label:
        from .multilabel import mark_multilabel
        mark_multilabel(model)
    compile_model(model, cfg, device=ctx.device if ctx.multi else None)
    device = model.device
    files, notes = {}, []
    if cfg.lr_find or cfg.lr_find_only:  # before the schedule takes the rate (run/lr_find.py)
        from .lr_find import sweep_for_run
        files, notes = sweep_for_run(model, cfg, data,
                                     log=print if ctx.rank == 0 else (lambda *a: None))
    from . import sampler
    loader = ResumableLoader(*data.train, batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed,
                             device=device, sampling_weights=(
                                 sampler.balanced_sample_weights(data.train[1])
                                 if cfg.sampler == "balanced" else None))
    classes = len(data.class_names)
    class_weight = (sampler.balanced_class_weight(data.train[1], classes)
                    if cfg.class_weight == "balanced" else None)
    warnings = sampler.imbalance_warnings(data.train[1], data.val[1] if data.val else None,
                                          data.class_names)
    if ctx.rank == 0:
        for line in warnings:
            print(f"warning: {line}", file=sys.stderr, flush=True)
    callbacks = []
    if data.val is not None and len(data.val[0]):
        images, labels = (share(t, ctx.rank, ctx.world).to(device) for t in data.val)
        callbacks.append(Validate(images, labels,
                                  batch_size=max(cfg.batch_size, 256), timer=ctx.clock,
                                  keep_outputs=not ctx.multi,  # the final evaluation's, maybe
                                  reduce_ranks=ctx.multi and len(data.val[0]) >= ctx.world))
    if cfg.patience:
        callbacks.append(EarlyStopping(monitor="val_loss" if callbacks else "loss",
                                       patience=cfg.patience, verbose=1 if ctx.rank == 0 else 0))
    callbacks[:0], notes = _averaging(cfg, model, data), notes + _averaging_notes(cfg)
    aug_gen = torch.Generator(device="cpu")
    # rank 0 draws what a single process would; the other ranks their own streams
    aug_gen.manual_seed((cfg.seed * 1_000_003 + 17 + 7919 * ctx.rank) % 2**63)
    return Plan(model=model, loader=loader, epochs=cfg.epochs, name=model.name,
                label=f"model: {model.name} ({model.count_params():,} parameters) on {device}",
                scheduler=schedule(cfg, model.optimizer, len(loader)), augment=augment(cfg),
                aug_gen=aug_gen, callbacks=callbacks, class_weight=class_weight, files=files,
                notes=notes + [f"warning: {line}" for line in warnings]
                + _weight_notes(class_weight, data.class_names),
                keep_best=not cfg.swa,  # SWA's average is the final weights
                finished=(lambda: True) if cfg.lr_find_only else (lambda: False))


def _averaging(cfg: TrainConfig, model, data) -> list:
    """The weight-average callback --ema / --swa asks for, first in the plan (before
    validation, so it sees the averaged weights)."""
    if model.ema is not None:
        return [model.ema]
    if cfg.swa:
        from ..train.averaging import SWA
        return [SWA(cfg.swa, lr=cfg.swa_lr, bn_data=data.train[0])]
    return []


def _averaging_notes(cfg: TrainConfig) -> list[str]:
    if cfg.ema:
        warm = "with timm's warm-up" if cfg.ema_warmup else "without warm-up"
        return [f"EMA weights: an exponential moving average of the weights (decay {cfg.ema}, "
                f"{warm}) is what val_* in the history, best/, last/ and these metrics measure"]
    if cfg.swa:
        return [f"SWA: the weights are the mean of epochs {cfg.swa + 1}-{cfg.epochs}'s "
                "(BatchNorm statistics recomputed); val_* of earlier epochs are of the trained "
                "weights, the last epoch's and these metrics of the average (in best/ and last/)"]
    return []


def _weight_notes(class_weight, class_names) -> list[str]:
    """The balanced class weights, for metrics.json's notes and the report."""
    if not class_weight:
        return []
    return ["class weights (balanced, n / (classes * count)): " + ", ".join(
        f"{class_names[c]} {w:.3g}" for c, w in sorted(class_weight.items()))]
