"""One training run from a ``TrainConfig``: data, model, training, evaluation, run directory.

This is what ``cnnkit train`` does, callable from Python::

    from cnnkit.config import TrainConfig
    from cnnkit.experiment import train
    result = train(TrainConfig(data="cifar10", model="simple-cnn", epochs=10))
    result.run.report        # runs/cifar10-simple-cnn/report.html

Resuming (``train(resume="runs/<name>")``) rebuilds the same data split, model and
optimizer from the run's config, loads the checkpoint (weights, optimizer state, RNG states,
the loader's shuffle state and the position inside the epoch) and continues, so a CPU run
ends with the same weights as one that was never stopped.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .config import ConfigError, TrainConfig
from .data.loader import InMemoryLoader, as_images
from .train.callbacks import Callback, EarlyStopping

__all__ = ["train", "TrainResult", "Data", "load_data", "build_model", "default_model",
           "DataError", "UnknownModelName"]


class DataError(ValueError):
    """The data asked for cannot be found or read."""


class UnknownModelName(ValueError):
    """``--model`` names no zoo model and no saved model folder."""


# ------------------------------------------------------------------------------------ data

@dataclass
class Data:
    """Tensors for one run: uint8 N×C×H×W images, int64 labels, per split."""

    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor] | None
    test: tuple[torch.Tensor, torch.Tensor] | None
    class_names: list[str]
    source: str                      # where the images came from, for the report
    tag: str                         # short name for the run directory
    test_name: str = "test"          # what the final evaluation runs on
    notes: list[str] = field(default_factory=list)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train[0].shape[1:]
        return int(h), int(w), int(c)

    @property
    def eval_split(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        return self.test if self.test is not None else self.val

    def describe(self) -> str:
        n = lambda s: len(s[0]) if s is not None else 0  # noqa: E731
        h, w, c = self.input_shape
        return (f"{self.source}: {n(self.train)} training, {n(self.val)} validation, "
                f"{n(self.test)} test images of {h}x{w}x{c}, {len(self.class_names)} classes")


def _named_datasets() -> list[str]:
    from .data import datasets
    return datasets.available()


def _is_named(name: str) -> bool:
    from .data import datasets
    try:
        datasets.info(name)
        return True
    except ValueError:
        return False


def _split_val(images, labels, fraction: float, seed: int):
    if not fraction:
        return (images, labels), None
    from .data.folder import stratified_split
    tr, va = stratified_split(labels.numpy(), fraction, seed)
    tr, va = torch.from_numpy(tr), torch.from_numpy(va)
    return (images[tr], labels[tr]), (images[va], labels[va])


def _limit(pair, n: int, seed: int = 0):
    """About ``n`` images, the same share of each class (folders list images class by
    class, so the first ``n`` would be one or two classes), in their original order."""
    images, labels = pair
    if not n or n >= len(images):
        return pair
    from .data.folder import stratified_split
    _, keep = stratified_split(labels.cpu().numpy(), n / len(images), seed)
    keep = torch.from_numpy(np.sort(keep))
    return images[keep], labels[keep]


def _load_named(cfg: TrainConfig) -> Data:
    from .data import datasets
    info = datasets.info(cfg.data)
    path = cfg.data_dir or None
    notes = []
    try:
        (xtr, ytr), (xte, yte) = datasets.load(info.name, path=path)
        test = (as_images(xte), torch.as_tensor(yte).long())
    except datasets.DatasetNotFoundError as err:
        try:
            xtr, ytr = datasets.load(info.name, path=path, split="train")
        except datasets.DatasetNotFoundError:
            raise DataError(str(err)) from err
        test = None
        notes.append("no test split was found: the final evaluation uses the validation "
                     "images held out from training")
    images, labels = as_images(xtr), torch.as_tensor(ytr).long()
    train, val = _split_val(images, labels, cfg.val_split, cfg.seed)
    train = _limit(train, cfg.limit, cfg.seed)
    where = f" from {path}" if path else ""
    return Data(train, val, test, list(datasets.class_names(info.name)),
                f"{info.name}{where}", info.name, "test" if test is not None else "validation",
                notes)


def _load_folder(cfg: TrainConfig, path: Path) -> Data:
    try:
        from .data.folder import FolderLayoutError, image_dataset_from_directory
        from .data.layout import scan_folder
    except ImportError as err:
        raise DataError(f"reading image folders needs cnnkit.data.folder, which this install "
                        f"lacks ({err})") from err
    try:
        layout = scan_folder(path)
    except FolderLayoutError as err:
        raise DataError(f"--data {path}: {err}") from err
    kwargs = dict(image_size=tuple(cfg.image_size) if cfg.image_size else None,
                  color_mode="grayscale" if cfg.grayscale else "rgb", seed=cfg.seed,
                  verbose=False)
    has_val = "val" in layout.splits
    try:
        if cfg.val_split or has_val:
            train_ds, val_ds = image_dataset_from_directory(
                path, subset="both", validation_split=cfg.val_split or None, **kwargs)
            val = (val_ds.images, val_ds.labels)
        else:
            train_ds = image_dataset_from_directory(
                path, subset="training" if layout.is_split else None, **kwargs)
            val = None
        test = None
        if "test" in layout.splits:
            test_ds = image_dataset_from_directory(path, subset="test", **kwargs)
            test = (test_ds.images, test_ds.labels)
    except (FolderLayoutError, ValueError) as err:
        raise DataError(f"--data {path}: {err}") from err
    notes = []
    if train_ds.skipped:
        notes.append(f"{len(train_ds.skipped)} unreadable files were skipped "
                     f"(`cnnkit check {path}` lists them)")
    if test is None:
        notes.append("the folder has no test/ split: the final evaluation uses the "
                     f"validation images held out from training ({cfg.val_split:.0%} per class)")
    train = _limit((train_ds.images, train_ds.labels), cfg.limit, cfg.seed)
    root = Path(path).resolve()
    tag = root.parent.name if root.name in ("train", "training") else root.name
    return Data(train, val, test, list(train_ds.class_names), str(path), tag,
                "test" if test is not None else "validation", notes)


def load_data(cfg: TrainConfig) -> Data:
    """The data ``cfg.data`` names: 'bundled', a named dataset, or a folder of class folders."""
    name = cfg.data
    if _is_named(name):
        return _load_named(cfg)
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise DataError(f"--data {name}: is a file; give a folder of class folders "
                            "(root/<class>/<images>) or a dataset name")
        return _load_folder(cfg, path)
    looks_like_path = "/" in name or "\\" in name or name.startswith(".")
    if looks_like_path:
        raise DataError(f"--data {name}: no such folder")
    raise DataError(f"--data {name!r}: not a dataset name and no folder of that name. "
                    f"Dataset names: {', '.join(_named_datasets())}; or give a folder of class "
                    "folders (root/<class>/<images>)")


# ----------------------------------------------------------------------------------- model

def default_model(input_shape=(28, 28, 1), num_classes: int = 10):
    """Seed 001's two-conv Keras network (for 28×28×1 digits by default)."""
    from . import Sequential, layers
    return Sequential([
        layers.Input(tuple(input_shape)),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dense(num_classes, activation="softmax"),
    ], name="mnist-2conv")


def _zoo_names() -> list[str]:
    try:
        from .models.registry import list_models
        return list_models()
    except ImportError:
        return []


def build_model(cfg: TrainConfig, data: Data):
    """The model ``cfg.model`` names, shaped for ``data``: a saved model folder, a zoo name,
    or (empty) the default: seed 001's network for the bundled digits, 'simple-cnn' otherwise."""
    shape, classes = data.input_shape, len(data.class_names)
    name = cfg.model
    if name and Path(name).expanduser().is_dir():
        from .models.saving import load_model
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
        from .models import registry
    except ImportError:
        if name == "simple-cnn" or not cfg.model:
            model = default_model(shape, classes)
            model.name = "default-cnn"
            model.class_names = list(data.class_names)
            return model
        raise UnknownModelName(f"--model {name}: the model zoo is not in this install; "
                               "give a saved model folder or leave --model out") from None
    try:
        registry.get_entry(name)
    except KeyError as err:
        raise UnknownModelName(f"--model {name!r}: {err} Valid names: {', '.join(_zoo_names())}; "
                               "or a saved model folder") from None
    return registry.create(name, num_classes=classes, input_shape=shape,
                           pretrained=cfg.pretrained, class_names=list(data.class_names))


# ------------------------------------------------------------------------------- training

class RunLoader(InMemoryLoader):
    """InMemoryLoader that remembers its shuffle state at each epoch start and can skip the
    first steps of one epoch (to continue mid-epoch after an interrupt)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.skip = 0
        self.yielded = 0
        self.epoch_start_state = self.generator.get_state()

    def __iter__(self):
        self.epoch_start_state = self.generator.get_state()
        skip, self.skip = self.skip, 0
        self.yielded = skip
        for i, batch in enumerate(super().__iter__()):
            if i < skip:
                continue
            self.yielded += 1
            yield batch

    @property
    def epoch_complete(self) -> bool:
        return self.yielded >= len(self)


class ValLoader(InMemoryLoader):
    """Validation batches, skipped when training was interrupted inside an epoch."""

    skip_when = staticmethod(lambda: False)

    def __iter__(self):
        if self.skip_when():
            return iter(())
        return super().__iter__()


class Interrupt:
    """Ctrl-C (or SIGTERM) during training: finish the current step, then stop.

    A second Ctrl-C aborts at once (KeyboardInterrupt)."""

    def __init__(self):
        self.hit = False
        self.model = None
        self._old = {}

    def _handler(self, signum, frame):
        if self.hit:
            raise KeyboardInterrupt
        self.hit = True
        if self.model is not None:
            self.model.stop_training = True
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


def _augment(cfg: TrainConfig):
    """(augment callable or None, its description)."""
    if not cfg.augment:
        return None, "none"
    try:
        from .data.augment import parse_augment_spec
    except ImportError as err:
        raise DataError(f"--augment needs cnnkit.data.augment, which this install lacks ({err})") from err
    try:
        aug = parse_augment_spec(cfg.augment)
    except (ValueError, KeyError) as err:
        raise DataError(f"--augment {cfg.augment!r}: {err}") from err
    return aug, cfg.augment


def _schedule(cfg: TrainConfig, optimizer, steps_per_epoch: int):
    """A per-step LambdaLR for cfg.schedule with cfg.warmup_epochs of linear warm-up."""
    if cfg.schedule == "constant" and not cfg.warmup_epochs:
        return None
    total = max(1, cfg.epochs * steps_per_epoch)
    warm = int(round(cfg.warmup_epochs * steps_per_epoch))
    step_every = max(1, (cfg.step_epochs or max(1, cfg.epochs // 3)) * steps_per_epoch)
    kind = cfg.schedule

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

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class ResumableEarlyStopping(EarlyStopping):
    def __init__(self, *args, state: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._restore = state

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._restore:
            for k, v in self._restore.items():
                setattr(self, k, v)

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor not in (logs or {}):
            return  # an epoch cut short by Ctrl-C: no validation to judge
        super().on_epoch_end(epoch, logs)

    def state(self) -> dict:
        return {"wait": self.wait, "best": self.best, "best_epoch": self.best_epoch,
                "stopped_epoch": self.stopped_epoch}


class RunRecorder(Callback):
    """Writes history.csv, best/, last/ and checkpoints as training goes; handles interrupts."""

    def __init__(self, run, *, cfg, optimizer, scheduler, loader, val_loader, aug_gen, interrupt,
                 rows=None, best=None, resume=None, early=None):
        super().__init__()
        self.run, self.cfg = run, cfg
        self.optimizer, self.scheduler = optimizer, scheduler
        self.loader, self.aug_gen, self.interrupt = loader, aug_gen, interrupt
        self.rows = list(rows or [])
        self.best = dict(best or {})
        self.resume = resume      # a Checkpoint to restore RNGs from at train begin
        self.early = early
        self.stopped_at = None    # (epoch, step) when interrupted inside an epoch
        self.saved_interrupt = False
        if val_loader is not None:
            val_loader.skip_when = lambda: interrupt.hit and not loader.epoch_complete
        self.monitor = "val_accuracy" if val_loader is not None else "accuracy"

    def on_train_begin(self, logs=None):
        from .runs import set_rng_state
        if self.resume is not None:
            set_rng_state(self.resume.tensors, self.resume.meta["rng"], {"augment": self.aug_gen})
        if self.interrupt.hit:
            self.model.stop_training = True

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.perf_counter()
        self.epoch = epoch

    def _extra(self) -> dict:
        return {"history": self.rows, "best": self.best,
                "early_stopping": self.early.state() if self.early else None}

    def checkpoint(self, epoch: int, step: int, loader_state) -> None:
        from .runs import save_checkpoint
        save_checkpoint(self.run, model=self.model, optimizer=self.optimizer, epoch=epoch,
                        step=step, generators={"augment": self.aug_gen},
                        loader_state=loader_state, scheduler=self.scheduler, extra=self._extra())

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        if self.interrupt.hit and not self.loader.epoch_complete:
            for key in [k for k in logs if k.startswith("val_")]:
                del logs[key]  # validation was skipped for the unfinished epoch
            self.stopped_at = (epoch, self.loader.yielded)
            self.save_interrupted(epoch, self.loader.yielded, self.loader.epoch_start_state)
            return
        timing = self.model.timing[-1] if getattr(self.model, "timing", None) else {}
        row = {"epoch": epoch + 1}
        row.update({k: float(v) for k, v in logs.items()})
        row["lr"] = float(self.optimizer.param_groups[0]["lr"])
        row["data_wait_s"] = timing.get("data_wait_s", 0.0)
        row["compute_s"] = timing.get("compute_s", 0.0)
        row["epoch_s"] = round(time.perf_counter() - self.epoch_start, 4)
        self.rows.append(row)
        self.run.write_history(self.rows)
        monitor = self.monitor if self.monitor in logs else "accuracy"
        value = logs.get(monitor)
        if value is not None and math.isfinite(value) and (
                not self.best or value > self.best.get("value", -math.inf)):
            self.best = {"monitor": monitor, "value": float(value), "epoch": epoch + 1}
            self.model.save(self.run.best)
        self.model.save(self.run.last)
        every = self.cfg.checkpoint_every
        done = epoch + 1
        if (every and done % every == 0) or self.interrupt.hit or done == self.params.get("epochs"):
            self.checkpoint(done, 0, self.loader.generator.get_state())
        if self.interrupt.hit:
            self.stopped_at = (done, 0)
            self.saved_interrupt = True

    def save_interrupted(self, epoch: int, step: int, loader_state) -> None:
        self.model.save(self.run.last)
        self.checkpoint(epoch, step, loader_state)
        self.saved_interrupt = True


@dataclass
class TrainResult:
    run: object                      # RunDir
    model: object
    data: Data
    history: list[dict]
    metrics: dict | None
    interrupted: bool
    stopped_at: tuple | None
    seconds: float


def _compile(model, cfg: TrainConfig):
    from .train import losses as losses_mod
    from .train import optim as optim_mod
    opt = optim_mod.get(cfg.optimizer, cfg.lr)
    opt.weight_decay = cfg.weight_decay
    if cfg.momentum and cfg.optimizer.lower() in ("sgd", "rmsprop"):
        opt.kwargs["momentum"] = cfg.momentum
    loss = losses_mod.get("sparse_categorical_crossentropy")
    loss.label_smoothing = cfg.label_smoothing
    model.compile(optimizer=opt, loss=loss, metrics=["accuracy"],
                  device=None if cfg.device == "auto" else cfg.device, precision=cfg.precision)
    return model


def explicit_command(cfg: TrainConfig) -> list[str]:
    """``cnnkit train`` with every setting of ``cfg`` spelled out."""
    cmd = ["cnnkit", "train"]
    for key, value in cfg.to_dict().items():
        opt = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            if key == "report":
                cmd += [] if value else ["--no-report"]
            elif value:
                cmd.append(opt)
        elif value is None or value == "":
            continue  # None and '' mean the default
        elif isinstance(value, list):
            cmd += [opt, ",".join(str(v) for v in value)]
        else:
            cmd += [opt, str(value)]
    return cmd


def _verbose(cfg: TrainConfig):
    return "auto" if cfg.verbose == "auto" else int(cfg.verbose)


def train(cfg: TrainConfig | None = None, *, argv: list[str] | None = None, resume=None,
          epochs: int | None = None, log=print) -> TrainResult:
    """Train as ``cfg`` says into a new run directory, or continue the run at ``resume``.

    ``argv``: the command as typed (for command.txt). ``epochs`` (with ``resume``): train
    to this many epochs instead of the run's own.
    """
    from . import runs
    from .models.summary import summary_text
    from .utils import pick_device, set_random_seed

    ckpt = None
    if cfg is not None and cfg.recipe:
        return _train_recipe(cfg.validate(), argv=argv, log=log)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("data-parallel training (torchrun, --nproc) runs a recipe: add "
                          "--recipe NAME (see cnnkit.recipes)")
    if resume is not None:
        run = runs.RunDir(resume)
        if not run.is_run():
            raise FileNotFoundError(f"--resume {resume}: not a run directory (no config.json)")
        cfg = TrainConfig.from_dict(run.read_json(run.config_json), str(run.config_json))
        if cfg.recipe:
            raise ConfigError(f"{run.path} ran recipe {cfg.recipe!r}: recipe runs go from start "
                              "to end and keep no checkpoint to resume from")
        ckpt = runs.load_checkpoint(run)
        if epochs is not None:
            cfg.epochs = int(epochs)
        if ckpt.epoch >= cfg.epochs:
            raise ValueError(f"{run.path} already finished its {cfg.epochs} epochs; "
                             f"pass --epochs N (N > {cfg.epochs}) to train further")
    cfg = (cfg or TrainConfig()).validate()
    set_random_seed(cfg.seed)
    data = load_data(cfg)
    for note in data.notes:
        log(f"note: {note}")
    model = build_model(cfg, data)
    _compile(model, cfg)
    device = model.device or pick_device(None)

    if ckpt is None:
        name = cfg.name or f"{data.tag}-{model.name}"
        run = runs.new_run_dir(cfg.output, name)
        _write_run_files(run, cfg, argv, device, data, model.name)
        run.summary.write_text(summary_text(model) + "\n")
    else:
        with open(run.command, "a") as f:
            f.write(f"# resumed {time.strftime('%Y-%m-%d %H:%M:%S')} at epoch {ckpt.epoch + 1}"
                    f"{f', step {ckpt.step}' if ckpt.step else ''}\n"
                    f"cnnkit train --resume {run.path}"
                    f"{f' --epochs {epochs}' if epochs is not None else ''}\n")
        run.write_json(run.config_json, cfg.to_dict())
        from .config import to_toml
        run.config_toml.write_text(to_toml(cfg))

    log(f"run: {run.path}")
    log(f"data: {data.describe()}")
    log(f"model: {model.name} ({model.count_params():,} parameters) on {device}")

    loader = RunLoader(*data.train, batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed,
                       device=device)
    val_loader = None
    if data.val is not None and len(data.val[0]):
        val_loader = ValLoader(*data.val, batch_size=max(cfg.batch_size, 256), device=device)
    aug, _ = _augment(cfg)
    aug_gen = torch.Generator(device="cpu")
    aug_gen.manual_seed((cfg.seed * 1_000_003 + 17) % 2**63)
    augment = (lambda x, _gen: aug(x, aug_gen)) if aug is not None else None
    scheduler = _schedule(cfg, model.optimizer, len(loader))

    rows, best, early_state = [], {}, None
    if ckpt is not None:
        runs.restore_training_state(ckpt, model=model, optimizer=model.optimizer,
                                    scheduler=scheduler)
        loader.generator.set_state(ckpt.tensors["loader.epoch_start"])
        loader.skip = ckpt.step
        rows = list(ckpt.meta.get("history") or [])
        best = dict(ckpt.meta.get("best") or {})
        early_state = ckpt.meta.get("early_stopping")
        run.write_history(rows) if rows else None
        log(f"resuming at epoch {ckpt.epoch + 1}/{cfg.epochs}"
            + (f", step {ckpt.step}/{len(loader)}" if ckpt.step else ""))

    interrupt = Interrupt()
    interrupt.model = model
    callbacks = []
    early = None
    if cfg.patience:
        early = ResumableEarlyStopping(monitor="val_loss" if val_loader is not None else "loss",
                                       patience=cfg.patience, verbose=1, state=early_state)
        callbacks.append(early)
    recorder = RunRecorder(run, cfg=cfg, optimizer=model.optimizer, scheduler=scheduler,
                           loader=loader, val_loader=val_loader,
                           aug_gen=aug_gen, interrupt=interrupt, rows=rows, best=best,
                           resume=ckpt, early=early)
    callbacks.insert(0, recorder)
    start_epoch = ckpt.epoch if ckpt is not None else 0
    start = time.perf_counter()
    with interrupt:
        model.fit(loader, epochs=cfg.epochs, validation_data=val_loader, callbacks=callbacks,
                  initial_epoch=start_epoch, augment=augment, verbose=_verbose(cfg),
                  scheduler=scheduler)
        if interrupt.hit and not recorder.saved_interrupt:
            # stopped before any step ran: checkpoint where we stand
            epoch = recorder.rows[-1]["epoch"] if recorder.rows else start_epoch
            recorder.model = model
            recorder.save_interrupted(epoch, loader.skip, loader.generator.get_state())
            recorder.stopped_at = (epoch, loader.skip)
    seconds = time.perf_counter() - start
    history = recorder.rows

    if interrupt.hit:
        epoch, step = recorder.stopped_at or (start_epoch, 0)
        where = f"epoch {epoch + 1}, step {step}/{len(loader)}" if step else f"the end of epoch {epoch}"
        log(f"interrupted at {where}; saved {run.last} and a checkpoint.\n"
            f"resume with: cnnkit train --resume {run.path}")
        return TrainResult(run, model, data, history, None, True, recorder.stopped_at, seconds)

    metrics = evaluate_run(run, model, data, cfg, history=history, seconds=seconds,
                           best=recorder.best, log=log)
    return TrainResult(run, model, data, history, metrics, False, None, seconds)


def _write_run_files(run, cfg: TrainConfig, argv, device, data: Data, model_name: str, **env):
    from . import runs
    from .config import to_toml
    run.write_json(run.config_json, cfg.to_dict())
    run.config_toml.write_text(to_toml(cfg))
    run.write_command(list(argv) if argv else explicit_command(cfg), explicit_command(cfg))
    run.write_json(run.env, {**runs.environment(cfg.seed, device), "data": data.describe(),
                             "model": model_name, **env})


def _train_recipe(cfg: TrainConfig, *, argv=None, log=print) -> TrainResult:
    """Train with a named recipe (cnnkit.recipes); data-parallel under torchrun (rank 0 writes
    the run directory). A recipe runs start to end: no per-epoch checkpoints or resume."""
    from . import distributed, recipes, runs
    from .models.summary import summary_text
    from .utils import pick_device, set_random_seed
    if cfg.recipe not in recipes.names():
        raise ConfigError(f"unknown recipe {cfg.recipe!r}; recipes: {', '.join(recipes.names())}")
    multi = distributed.init()
    main = distributed.is_main_process()
    say = log if main else (lambda *a, **k: None)
    set_random_seed(cfg.seed)
    data = load_data(cfg)
    for note in data.notes:
        say(f"note: {note}")
    wanted = None if cfg.device == "auto" else cfg.device
    device = distributed.device(wanted) if multi else pick_device(wanted)
    run = None
    if main:
        run = runs.new_run_dir(cfg.output, cfg.name or f"{data.tag}-{cfg.recipe}")
        _write_run_files(run, cfg, argv, device, data, f"recipe {cfg.recipe}",
                         world_size=distributed.world_size())
        (run.path / "recipe.txt").write_text(recipes.describe(cfg.recipe, device) + "\n")
    say(f"run: {run.path if run else '-'}")
    say(f"data: {data.describe()}")
    say(f"recipe: {cfg.recipe} on {device}" + (f" x {distributed.world_size()} processes" if multi else ""))
    start = time.perf_counter()
    try:
        result = recipes.run_recipe(cfg.recipe, train=data.train, val=data.val, seed=cfg.seed,
                                    class_names=list(data.class_names), device=wanted,
                                    verbose=_verbose(cfg) if main else 0)
        seconds = time.perf_counter() - start
        model = result.model
        if not main:
            return TrainResult(None, model, data, result.history, None, False, None, seconds)
        timing = list(getattr(model, "timing", []) or [])
        rows, last_wall = [], 0.0
        for i, r in enumerate(result.history):
            row = {"epoch": r.get("epoch"), **{k: v for k, v in r.items() if k != "epoch"}}
            if i < len(timing) and len(timing) == len(result.history):
                row.update(timing[i])
            wall = r.get("wall_seconds", 0.0)
            row["epoch_s"] = round(wall - last_wall, 4)
            last_wall = wall
            rows.append(row)
        run.write_history(rows)
        model.save(run.last)
        model.save(run.best)  # a recipe keeps its final weights only
        run.summary.write_text(summary_text(model) + "\n")
        data.notes.append(f"recipe {cfg.recipe}: best/ and last/ both hold the final weights; "
                          "validation accuracy in the history uses the recipe's test-time "
                          "augmentation")
        planned = math.ceil(recipes.get(cfg.recipe).resolve(device).epochs)
        metrics = evaluate_run(run, model, data, cfg, history=rows, seconds=seconds, best={},
                               log=log, planned=planned)
        return TrainResult(run, model, data, rows, metrics, False, None, seconds)
    finally:
        if multi:
            distributed.shutdown()


# ------------------------------------------------------------------------------ evaluation

def predictions(model, images: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Class probabilities (N, K) for uint8 N×C×H×W images."""
    return model.predict(images, batch_size=batch_size)


def evaluate_arrays(model, images, labels, class_names, batch_size: int = 256) -> dict:
    """Loss, accuracy, per-class P/R/F1 and the confusion matrix on (images, labels)."""
    from .metrics import classification_report
    probs = predictions(model, images, batch_size)
    y = labels.cpu().numpy().astype(np.int64)
    pred = probs.argmax(axis=1)
    per_sample = -np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0))
    report = classification_report(y, pred, class_names, num_classes=len(class_names))
    return {"loss": float(per_sample.mean()) if len(y) else float("nan"),
            "accuracy": report["accuracy"], "report": report, "probabilities": probs,
            "per_sample_loss": per_sample, "predicted": pred, "labels": y}


def evaluate_run(run, model, data: Data, cfg: TrainConfig, *, history, seconds, best,
                 log=print, planned: int | None = None) -> dict:
    """Evaluate the final weights, write metrics.json, the plots and report.html."""
    planned = planned or cfg.epochs
    split = data.eval_split
    if split is None:
        log("no validation or test images: skipping evaluation")
        return {}
    t0 = time.perf_counter()
    ev = evaluate_arrays(model, *split, data.class_names)
    report = ev["report"]
    epochs_run = len(history)
    train_s = sum(r.get("epoch_s", 0.0) for r in history)
    wait_s = sum(r.get("data_wait_s", 0.0) for r in history)
    compute_s = sum(r.get("compute_s", 0.0) for r in history)
    metrics = {
        "evaluated_on": (f"test split ({len(split[0])} images)" if data.test_name == "test" else
                         f"validation split ({len(split[0])} images, held out from training)"),
        "split": data.test_name,
        "weights": "last",
        "test_loss": ev["loss"],
        "test_accuracy": ev["accuracy"],
        "macro_precision": report["macro_precision"],
        "macro_recall": report["macro_recall"],
        "macro_f1": report["macro_f1"],
        "per_class": report["per_class"],
        "confusion_matrix": report["confusion_matrix"],
        "class_names": list(data.class_names),
        "epochs_run": epochs_run,
        "epochs_planned": planned,
        "best": best,
        "train_seconds": round(train_s, 3),
        "seconds_per_epoch": round(train_s / epochs_run, 3) if epochs_run else None,
        "data_wait_s": round(wait_s, 3),
        "compute_s": round(compute_s, 3),
        "data": data.describe(),
        "notes": data.notes,
    }
    run.write_json(run.metrics, metrics)
    if cfg.report:
        from .report import write_report, write_plots
        try:
            write_plots(run, model, split, ev, data.class_names, history, seed=cfg.seed)
            write_report(run)
        except Exception as err:  # noqa: BLE001 - a failed picture must not lose the run
            log(f"warning: the report could not be completed ({type(err).__name__}: {err})")
    stopped = ""
    if epochs_run < planned:
        stopped = f" (stopped early: {epochs_run} of {planned})"
    best_txt = (f"; best {best['monitor']} {best['value']:.4f} at epoch {best['epoch']}"
                if best else "")
    log(f"done: {epochs_run} epochs{stopped} in {train_s:.1f}s "
        f"({train_s / max(epochs_run, 1):.1f}s/epoch, data wait {100 * wait_s / max(train_s, 1e-9):.0f}%)"
        f"{best_txt}")
    n = len(split[0])
    label, where = (("test accuracy", f"{n} test images") if data.test_name == "test" else
                    ("held-out accuracy", f"{n} validation images held out from training"))
    log(f"{label}: {ev['accuracy']:.4f} (loss {ev['loss']:.4f}) on {where}; "
        f"evaluation and report took {time.perf_counter() - t0:.1f}s")
    if cfg.report and run.report.exists():
        log(f"report: {run.report}")
    return metrics
