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
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .config import ConfigError, TrainConfig
from .data.loader import InMemoryLoader, Resumable, as_images
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

class RunLoader(Resumable, InMemoryLoader):
    """InMemoryLoader that remembers its shuffle state at each epoch start and can skip the
    first steps of one epoch (to continue mid-epoch after an interrupt)."""


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

    def __init__(self, quiet: bool = False):
        self.hit = False
        self.model = None
        self.quiet = quiet  # the ranks of a data-parallel job other than 0 stop silently
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
    """Writes history.csv, best/, last/ and checkpoints as training goes; handles interrupts.

    In a data-parallel job it runs on every rank (the checkpoint gathers each rank's RNG
    states and buffers) but only rank 0 (``main``) writes files."""

    def __init__(self, run, *, cfg, optimizer, scheduler, loader, val_loader, aug_gen, interrupt,
                 rows=None, best=None, resume=None, early=None, main=True, multi=False):
        super().__init__()
        self.run, self.cfg = run, cfg
        self.main, self.multi = main, multi
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
        from . import distributed
        from .runs import rank_local_tensors, save_checkpoint
        ranks = None
        if self.multi:  # a collective: every rank takes part, rank 0 writes
            ranks = distributed.gather_tensors(rank_local_tensors(self.model, {"augment": self.aug_gen}))
        if self.main:
            save_checkpoint(self.run, model=self.model, optimizer=self.optimizer, epoch=epoch,
                            step=step, generators={"augment": self.aug_gen},
                            loader_state=loader_state, scheduler=self.scheduler,
                            extra=self._extra(), ranks=ranks)

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
        if self.main:
            self.run.write_history(self.rows)
        monitor = self.monitor if self.monitor in logs else "accuracy"
        value = logs.get(monitor)
        if value is not None and math.isfinite(value) and (
                not self.best or value > self.best.get("value", -math.inf)):
            self.best = {"monitor": monitor, "value": float(value), "epoch": epoch + 1}
            if self.main:
                self.model.save(self.run.best)
        if self.main:
            self.model.save(self.run.last)
        every = self.cfg.checkpoint_every
        done = epoch + 1
        if (every and done % every == 0) or self.interrupt.hit or done == self.params.get("epochs"):
            self.checkpoint(done, 0, self.loader.generator.get_state())
        if self.interrupt.hit:
            self.stopped_at = (done, 0)
            self.saved_interrupt = True

    def save_interrupted(self, epoch: int, step: int, loader_state) -> None:
        if self.main:
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


def _compile(model, cfg: TrainConfig, device=None):
    from .train import losses as losses_mod
    from .train import optim as optim_mod
    opt = optim_mod.get(cfg.optimizer, cfg.lr)
    opt.weight_decay = cfg.weight_decay
    if cfg.momentum and cfg.optimizer.lower() in ("sgd", "rmsprop"):
        opt.kwargs["momentum"] = cfg.momentum
    loss = losses_mod.get("sparse_categorical_crossentropy")
    loss.label_smoothing = cfg.label_smoothing
    if device is None:
        device = None if cfg.device == "auto" else cfg.device
    model.compile(optimizer=opt, loss=loss, metrics=["accuracy"], device=device,
                  precision=cfg.precision, jit_compile=cfg.jit_compile)
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
    to this many epochs instead of the run's own (not for recipe runs: a recipe decides).

    Under torchrun (``cnnkit train --nproc N``) every process calls this: the model trains
    data-parallel (DistributedDataParallel, each rank on its share of every global batch of
    ``cfg.batch_size``), logs are averaged over the ranks, and only rank 0 writes the run
    directory and returns the metrics. A run resumes on as many processes as it trained on.
    """
    from . import distributed, runs

    run = ckpt = None
    if resume is not None:
        run = runs.RunDir(resume)
        if not run.is_run():
            raise FileNotFoundError(f"--resume {resume}: not a run directory (no config.json)")
        cfg = TrainConfig.from_dict(run.read_json(run.config_json), str(run.config_json))
        ckpt = runs.load_checkpoint(run)
        if cfg.recipe:
            if epochs is not None:
                raise ConfigError(f"{run.path} ran recipe {cfg.recipe!r}, which decides its own "
                                  "epochs: resume it without --epochs")
            if (ckpt.meta.get("recipe") or {}).get("finished"):
                raise ValueError(f"{run.path} already finished recipe {cfg.recipe!r}; start a new "
                                 "run to train again")
        else:
            if epochs is not None:
                cfg.epochs = int(epochs)
            if ckpt.epoch >= cfg.epochs:
                raise ValueError(f"{run.path} already finished its {cfg.epochs} epochs; "
                                 f"pass --epochs N (N > {cfg.epochs}) to train further")
        world = distributed.world_size()
        if ckpt.world_size != world:
            how = f" --nproc {ckpt.world_size}" if ckpt.world_size > 1 else " (without --nproc)"
            raise ConfigError(
                f"{run.path} trained on {ckpt.world_size} process{'es' if ckpt.world_size > 1 else ''}"
                f" and this is {world}: resume it on the same number (cnnkit train --resume "
                f"{run.path}{how}); another number gives each process other batches, so the "
                "training could not continue as it was")
    cfg = (cfg or TrainConfig()).validate()
    if cfg.recipe:
        return _train_recipe(cfg, argv=argv, log=log, run=run, ckpt=ckpt)
    multi = distributed.init()
    try:
        if ckpt is not None:
            ckpt = ckpt.for_rank(distributed.rank())
        return _train(cfg, argv=argv, log=log, run=run, ckpt=ckpt, epochs=epochs, multi=multi)
    finally:
        if multi:
            distributed.shutdown()


def _train(cfg: TrainConfig, *, argv, log, run, ckpt, epochs, multi: bool) -> TrainResult:
    """An ordinary (non-recipe) run, in one process or as one rank of a data-parallel job."""
    from . import distributed, runs
    from .models.summary import summary_text
    from .utils import pick_device, set_random_seed

    main = distributed.is_main_process()
    rank, world = distributed.rank(), distributed.world_size()
    say = log if main else (lambda *a, **k: None)
    set_random_seed(cfg.seed)
    data = load_data(cfg)
    for note in data.notes:
        say(f"note: {note}")
    model = build_model(cfg, data)
    wanted = None if cfg.device == "auto" else cfg.device
    _compile(model, cfg, device=distributed.device(wanted) if multi else None)
    device = model.device or pick_device(None)

    if ckpt is None:
        if main:
            name = cfg.name or f"{data.tag}-{model.name}"
            run = runs.new_run_dir(cfg.output, name)
            _write_run_files(run, cfg, argv, device, data, model.name,
                             **({"world_size": world} if multi else {}))
            run.summary.write_text(summary_text(model) + "\n")
    elif main:
        _note_resume(run, cfg, ckpt, epochs)

    say(f"run: {run.path if run else '-'}")
    say(f"data: {data.describe()}")
    say(f"model: {model.name} ({model.count_params():,} parameters) on {device}"
        + (f" x {world} processes" if multi else ""))

    if multi:  # each rank its share of every global batch; validation split among the ranks
        loader = distributed.ResumableShardedLoader(*data.train, batch_size=cfg.batch_size,
                                                    shuffle=True, seed=cfg.seed, device=device)
    else:
        loader = RunLoader(*data.train, batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed,
                           device=device)
    val_loader, val_counts = None, None
    if data.val is not None and len(data.val[0]):
        val = data.val
        if multi and len(val[0]) >= world:  # (fewer images than ranks: each rank takes all)
            mine = torch.arange(rank, len(val[0]), world)
            val_counts = (len(mine), len(val[0]))
            val = (val[0][mine], val[1][mine])
        val_loader = ValLoader(*val, batch_size=max(cfg.batch_size, 256), device=device)
    aug, _ = _augment(cfg)
    aug_gen = torch.Generator(device="cpu")
    # rank 0 draws what a single process would; the other ranks their own streams
    aug_gen.manual_seed((cfg.seed * 1_000_003 + 17 + 7919 * rank) % 2**63)
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
        if rows and main:
            run.write_history(rows)
        say(f"resuming at epoch {ckpt.epoch + 1}/{cfg.epochs}"
            + (f", step {ckpt.step}/{len(loader)}" if ckpt.step else ""))

    interrupt = Interrupt(quiet=not main)
    # In one process Ctrl-C stops the engine directly; ranks must first agree on the step to
    # stop after (StopTogether), or one would leave while the others wait for it.
    interrupt.model = None if multi else model
    callbacks = []
    early = None
    if cfg.patience:
        early = ResumableEarlyStopping(monitor="val_loss" if val_loader is not None else "loss",
                                       patience=cfg.patience, verbose=1 if main else 0,
                                       state=early_state)
        callbacks.append(early)
    recorder = RunRecorder(run, cfg=cfg, optimizer=model.optimizer, scheduler=scheduler,
                           loader=loader, val_loader=val_loader,
                           aug_gen=aug_gen, interrupt=interrupt, rows=rows, best=best,
                           resume=ckpt, early=early, main=main, multi=multi)
    callbacks.insert(0, recorder)
    if multi:  # first: the logs averaged over the ranks, the stop agreed, before the rest
        callbacks[:0] = [distributed.ReduceLogs(val_counts), distributed.StopTogether(interrupt)]
        distributed.wrap(model)
    start_epoch = ckpt.epoch if ckpt is not None else 0
    start = time.perf_counter()
    try:
        with interrupt:
            model.fit(loader, epochs=cfg.epochs, validation_data=val_loader, callbacks=callbacks,
                      initial_epoch=start_epoch, augment=augment,
                      verbose=_verbose(cfg) if main else 0, scheduler=scheduler)
            if interrupt.hit and not recorder.saved_interrupt:
                # stopped before any step ran: checkpoint where we stand
                epoch = recorder.rows[-1]["epoch"] if recorder.rows else start_epoch
                recorder.model = model
                recorder.save_interrupted(epoch, loader.skip, loader.generator.get_state())
                recorder.stopped_at = (epoch, loader.skip)
    finally:
        if multi:
            distributed.unwrap(model)
    seconds = time.perf_counter() - start
    history = recorder.rows

    if interrupt.hit:
        epoch, step = recorder.stopped_at or (start_epoch, 0)
        where = f"epoch {epoch + 1}, step {step}/{len(loader)}" if step else f"the end of epoch {epoch}"
        if main:
            log(f"interrupted at {where}; saved {run.last} and a checkpoint.\n"
                f"resume with: cnnkit train --resume {run.path}")
        return TrainResult(run if main else None, model, data, history, None, True,
                           recorder.stopped_at, seconds)
    if not main:
        return TrainResult(None, model, data, history, None, False, None, seconds)
    metrics = evaluate_run(run, model, data, cfg, history=history, seconds=seconds,
                           best=recorder.best, log=log)
    return TrainResult(run, model, data, history, metrics, False, None, seconds)


def _note_resume(run, cfg: TrainConfig, ckpt, epochs) -> None:
    """command.txt gets the resume line; config.json/.toml the (possibly longer) epochs."""
    from .config import to_toml
    with open(run.command, "a") as f:
        f.write(f"# resumed {time.strftime('%Y-%m-%d %H:%M:%S')} at epoch {ckpt.epoch + 1}"
                f"{f', step {ckpt.step}' if ckpt.step else ''}\n"
                f"cnnkit train --resume {run.path}"
                f"{f' --nproc {ckpt.world_size}' if ckpt.world_size > 1 else ''}"
                f"{f' --epochs {epochs}' if epochs is not None else ''}\n")
    run.write_json(run.config_json, cfg.to_dict())
    run.config_toml.write_text(to_toml(cfg))


def _write_run_files(run, cfg: TrainConfig, argv, device, data: Data, model_name: str, **env):
    from . import runs
    from .config import to_toml
    run.write_json(run.config_json, cfg.to_dict())
    run.config_toml.write_text(to_toml(cfg))
    typed, explicit = list(argv) if argv else explicit_command(cfg), explicit_command(cfg)
    world = int(env.get("world_size", 1))
    if world > 1:  # under torchrun: the command that starts the same job again
        typed = typed if "--nproc" in typed else [*typed, "--nproc", str(world)]
        explicit = [*explicit, "--nproc", str(world)]
    run.write_command(typed, explicit)
    run.write_json(run.env, {**runs.environment(cfg.seed, device), "data": data.describe(),
                             "model": model_name, **env})


def _train_recipe(cfg: TrainConfig, *, argv=None, log=print, run=None, ckpt=None) -> TrainResult:
    """Train with a named recipe (cnnkit.recipes); data-parallel under torchrun (rank 0 writes
    the run directory). Checkpoints every ``checkpoint_every`` epochs and on Ctrl-C, like an
    ordinary run; ``ckpt`` (with its ``run``) continues one."""
    from . import distributed, recipes
    if cfg.recipe not in recipes.names():
        raise ConfigError(f"unknown recipe {cfg.recipe!r}; recipes: {', '.join(recipes.names())}")
    multi = distributed.init()
    try:
        if ckpt is not None:
            ckpt = ckpt.for_rank(distributed.rank())
        return _train_recipe_rank(cfg, argv=argv, log=log, run=run, ckpt=ckpt, multi=multi)
    finally:
        if multi:
            distributed.shutdown()


def _recipe_rows(history: list[dict], timing: list[dict]) -> list[dict]:
    """history.csv rows from a recipe's evaluations and the engine's per-epoch timing."""
    rows, last_wall = [], 0.0
    for i, r in enumerate(history):
        row = {"epoch": r.get("epoch"), **{k: v for k, v in r.items() if k != "epoch"}}
        if i < len(timing) and len(timing) == len(history):
            row.update(timing[i])
        wall = r.get("wall_seconds", 0.0)
        row["epoch_s"] = round(wall - last_wall, 4)
        last_wall = wall
        rows.append(row)
    return rows


def _recipe_settings_changed(saved: dict | None, now: dict) -> list[str]:
    import json
    now = json.loads(json.dumps(now))
    if saved is None:
        return ["(the checkpoint records none)"]
    return [f"{k}: {saved.get(k)!r} then, {now.get(k)!r} now" for k in sorted(set(saved) | set(now))
            if saved.get(k) != now.get(k)]


def _train_recipe_rank(cfg: TrainConfig, *, argv, log, run, ckpt, multi: bool) -> TrainResult:
    from . import distributed, recipes, runs
    from .models.summary import summary_text
    from .utils import pick_device, set_random_seed
    main = distributed.is_main_process()
    say = log if main else (lambda *a, **k: None)
    set_random_seed(cfg.seed)
    data = load_data(cfg)
    for note in data.notes:
        say(f"note: {note}")
    wanted = None if cfg.device == "auto" else cfg.device
    device = distributed.device(wanted) if multi else pick_device(wanted)
    settings = recipes.get(cfg.recipe).resolve(device).to_dict()
    if ckpt is not None:
        changed = _recipe_settings_changed((ckpt.meta.get("recipe") or {}).get("settings"), settings)
        if changed:
            raise ConfigError(f"{run.path}: recipe {cfg.recipe!r} is not what the run trained with "
                              f"({'; '.join(changed)}); continuing would not be the same training. "
                              "Start a new run, or resume with the cnnkit version and device the "
                              "run started on")
        if main:
            _note_resume(run, cfg, ckpt, None)
    elif main:
        run = runs.new_run_dir(cfg.output, cfg.name or f"{data.tag}-{cfg.recipe}")
        _write_run_files(run, cfg, argv, device, data, f"recipe {cfg.recipe}",
                         world_size=distributed.world_size())
        (run.path / "recipe.txt").write_text(recipes.describe(cfg.recipe, device) + "\n")
    say(f"run: {run.path if run else '-'}")
    say(f"data: {data.describe()}")
    say(f"recipe: {cfg.recipe} on {device}" + (f" x {distributed.world_size()} processes" if multi else ""))

    # per-epoch timing from the engine, kept across resumes (a cut epoch's two parts summed)
    saved_timing = (ckpt.meta.get("timing") or {}) if ckpt is not None else {}
    timing = {"epochs": list(saved_timing.get("epochs") or []),
              "partial": saved_timing.get("partial"), "seen": 0}
    interrupt = Interrupt(quiet=not main)  # model stays None: the recipe's StopTogether relays it
    every = cfg.checkpoint_every

    def add(a, b):
        return {k: round(a.get(k, 0.0) + b.get(k, 0.0), 4) for k in set(a) | set(b)} if a else dict(b)

    def save(progress: recipes.RecipeProgress) -> None:
        model = progress.model
        for t in list(getattr(model, "timing", []) or [])[timing["seen"]:]:
            if progress.cut:
                timing["partial"] = add(timing["partial"], t)
            else:
                timing["epochs"].append(add(timing["partial"], t))
                timing["partial"] = None
        timing["seen"] = len(getattr(model, "timing", []) or [])
        if not (progress.cut or interrupt.hit or progress.finished
                or (every and progress.epoch % every == 0)):
            return
        ranks = None
        if multi:  # a collective: every rank takes part, rank 0 writes
            ranks = distributed.gather_tensors(runs.rank_local_tensors(
                model, {"augment": progress.aug_gen}, progress.tensors()))
        if not main:
            return
        run.write_history(_recipe_rows(progress.history, timing["epochs"]))
        if progress.cut or interrupt.hit:
            model.save(run.last)
        runs.save_checkpoint(
            run, model=model, optimizer=progress.optimizer, epoch=progress.epoch,
            step=progress.step, generators={"augment": progress.aug_gen},
            loader_state=progress.loader_state, scheduler=progress.scheduler,
            tensors=progress.tensors(), ranks=ranks,
            extra={"recipe": {**progress.meta(), "finished": progress.finished},
                   "timing": {"epochs": timing["epochs"], "partial": timing["partial"]}})

    def restore(progress: recipes.RecipeProgress) -> None:
        runs.restore_training_state(ckpt, model=progress.model, optimizer=progress.optimizer,
                                    scheduler=progress.scheduler)
        progress.load(ckpt.tensors, ckpt.meta["recipe"], epoch=ckpt.epoch, step=ckpt.step,
                      loader_state=ckpt.tensors["loader.epoch_start"])
        runs.set_rng_state(ckpt.tensors, ckpt.meta["rng"], {"augment": progress.aug_gen})
        say(f"resuming at epoch {ckpt.epoch + 1}"
            + (f", step {ckpt.step}/{len(progress.loader)}" if ckpt.step else "")
            + f" ({progress.steps_done} of {ckpt.meta['recipe']['steps_total']} steps done)")

    start = time.perf_counter()
    with interrupt:
        result = recipes.run_recipe(cfg.recipe, train=data.train, val=data.val, seed=cfg.seed,
                                    class_names=list(data.class_names), device=wanted,
                                    verbose=_verbose(cfg) if main else 0, interrupt=interrupt,
                                    checkpoint=save, resume=restore if ckpt is not None else None)
    seconds = time.perf_counter() - start
    model = result.model
    if result.interrupted:
        epoch, step = result.stopped_at
        where = f"epoch {epoch + 1}, step {step}" if step else f"the end of epoch {epoch}"
        if main:
            log(f"interrupted at {where}; saved {run.last} and a checkpoint.\n"
                f"resume with: cnnkit train --resume {run.path}")
        return TrainResult(run if main else None, model, data, result.history, None, True,
                           result.stopped_at, seconds)
    if not main:
        return TrainResult(None, model, data, result.history, None, False, None, seconds)
    rows = _recipe_rows(result.history, timing["epochs"])
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


# ------------------------------------------------------------------------------ evaluation

def predictions(model, images: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Class probabilities (N, K) for uint8 N×C×H×W images."""
    return model.predict(images, batch_size=batch_size, verbose=1)  # progress on long test sets


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
