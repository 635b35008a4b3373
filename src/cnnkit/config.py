"""``TrainConfig``: every setting of a training run in one typed place, with its unit.

Settings come from three layers, the later winning: the defaults below, a config file
(TOML, or YAML when PyYAML is installed), then the command line. A file holds the same
names, flat or under a ``[train]`` table::

    # run.toml
    data = "../shared/datasets/cifar10-jpeg/train"
    model = "simple-cnn"
    epochs = 10
    augment = "flip,crop=4"

The resolved config is what a run directory records (``config.json`` / ``config.toml``),
so ``cnnkit train --config runs/<name>/config.toml`` repeats a run.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from dataclasses import dataclass, fields
from pathlib import Path

__all__ = ["TrainConfig", "ConfigError", "load_config_file", "to_toml", "SCHEDULES",
           "OPTIMIZERS", "PRECISIONS", "VERBOSITY", "setting"]

SCHEDULES = ("constant", "cosine", "linear", "step")  # drawn by train/schedules.py
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
VERBOSITY = ("auto", "0", "1", "2")
LR_SUGGESTIONS = ("valley", "steepest", "minimum")  # cnnkit.train.lr_finder's (fastai's)
CLASS_WEIGHTS = ("none", "balanced")   # run/sampler.py: sklearn's n / (classes * count)
SAMPLERS = ("shuffle", "balanced")
LOSSES = ("crossentropy", "focal")
TTA_VIEWS = ("none", "flip", "flip_translate")  # train/tta.py
# Settings a named recipe (cnnkit.recipes) fixes; giving them with --recipe is an error.
RECIPE_DECIDES = ("model", "pretrained", "epochs", "batch_size", "optimizer", "lr", "momentum",
                  "weight_decay", "schedule", "warmup_epochs", "step_epochs", "augment",
                  "patience", "label_smoothing", "precision", "weights")

# run/build.py's imbalance settings: a recipe trains without them
RECIPE_DECIDES += ("class_weight", "sampler", "loss", "focal_gamma")


class ConfigError(ValueError):
    """A setting that is unknown, of the wrong type or out of range."""


def setting(default, doc: str, *, unit: str = "", choices=None, metavar: str | None = None,
            group: str = "run", aliases: tuple = ()):
    """A TrainConfig field with what ``--help`` shows: its doc, unit and choices (the one
    place a choice is listed), its option group and metavar, and extra option spellings."""
    return dataclasses.field(default=default, metadata={
        "doc": doc, "unit": unit, "choices": tuple(choices) if choices else None,
        "metavar": metavar, "group": group, "aliases": tuple(aliases)})


@dataclass
class TrainConfig:
    """Every setting of a training run; ``cnnkit train --help`` is generated from this."""

    # -- data
    data: str = setting("bundled", "'bundled', a named dataset (mnist, cifar10, ...), a folder "
                        "of class folders, or a labels CSV (multi-label)", metavar="NAME|PATH",
                        group="data")
    data_dir: str = setting("", "folder holding a named dataset's canonical files ('' = cache/"
                            "download)", metavar="DIR", group="data")
    image_size: list[int] | None = setting(None, "resize folder images to this size (None = their "
                                           "own size, or a square that suits the model when "
                                           "sizes are mixed)", unit="pixels, H,W",
                                           metavar="H,W", group="data")
    grayscale: bool = setting(False, "read folder images as 1 channel instead of RGB", group="data")
    val_split: float = setting(0.1, "share of the training images held out, per class, for "
                               "validation", unit="0-1", metavar="FRACTION", group="data")
    limit: int = setting(0, "train on about this many images, and validate on the same share of "
                         "the validation images, the same share of each class (0 = all); for "
                         "quick tries", unit="images", metavar="N", group="data")
    multi_label: bool = setting(False, "multi-label data (an image may have several labels): "
                                "sigmoid outputs, binary cross-entropy, mAP and per-label "
                                "thresholds; implied by --data labels.csv; with a folder, an "
                                "image in several label folders", group="data")
    label_delimiter: str = setting(" ", "labels CSV: what separates an image's labels in its "
                                   "labels field (' ' = a space)", metavar="TEXT", group="data")
    image_root: str = setting("", "labels CSV: the folder its filenames are relative to ('' = "
                              "the CSV's folder)", metavar="DIR", group="data")
    test_data: str = setting("", "multi-label: a labels CSV held out for the final evaluation "
                             "('' = the validation images held out from --data)",
                             metavar="CSV", group="data")
    # -- model
    model: str = setting("", "zoo name (cnnkit models), a saved model folder, or '' = the default",
                         metavar="NAME|PATH", group="model")
    pretrained: bool = setting(False, "load the zoo model's published weights", group="model")
    recipe: str = setting("", "a named speed recipe (cnnkit.recipes: fast, fast-long, "
                          "airbench94, mnist-fast, mnist-long); it sets the network, "
                          "optimiser, schedule and augmentation",
                          metavar="NAME", group="model")
    weights: str = setting("", "a local weights file (.safetensors, or a .pth state dict) to "
                           "start --model from, keys and shapes checked; for timm/ models a "
                           "classifier for another class count is replaced by a new one",
                           metavar="FILE", group="model")
    # -- optimisation
    epochs: int = setting(5, "passes over the training images", unit="epochs", metavar="N",
                          group="optimisation")
    batch_size: int = setting(64, "images per step (the global batch with --nproc)",
                              unit="images", metavar="N", group="optimisation")
    optimizer: str = setting("adam", "the optimizer", choices=OPTIMIZERS, group="optimisation")
    lr: float | None = setting(None, "learning rate per step (None = the optimizer's Keras "
                               "default)", metavar="LR", group="optimisation",
                               aliases=("--learning-rate",))
    momentum: float = setting(0.0, "sgd / rmsprop momentum", unit="0-1", group="optimisation")
    weight_decay: float = setting(0.0, "decoupled (adamw) or L2 (others) weight decay",
                                  unit="per step", group="optimisation")
    schedule: str = setting("constant", "learning-rate schedule over all steps",
                            choices=SCHEDULES, group="optimisation")
    warmup_epochs: float = setting(0.0, "linear warm-up from 0 to lr", unit="epochs",
                                   metavar="EPOCHS", group="optimisation")
    step_epochs: int = setting(0, "'step' schedule: multiply lr by 0.1 every this many epochs "
                               "(0 = epochs // 3)", unit="epochs", metavar="EPOCHS",
                               group="optimisation")
    augment: str = setting("", "batched augmentation, e.g. 'flip,crop=4', "
                           "'flip,rotate=15,zoom=0.1', 'flip,crop=4,mixup=0.2,cutmix=1.0' or "
                           "'randaugment=2:9,erasing=0.25' ('' = none; docs/CLI.md lists the keys)",
                           metavar="SPEC", group="optimisation")
    patience: int = setting(0, "early stopping: epochs without val_loss improvement (0 = off)",
                            unit="epochs", metavar="EPOCHS", group="optimisation")
    label_smoothing: float = setting(0.0, "label smoothing (0 = off; with mixup/cutmix the "
                                     "mixed targets are smoothed, as timm does)", unit="0-1",
                                     group="optimisation")
    lr_find: bool = setting(False, "before training, sweep the learning rate from 1e-7 to 10 "
                            "over --lr-find-steps steps (fastai's LR finder; weights put back after) and "
                            "train with its suggestion; writes lr_find.png and lr_find.json",
                            group="optimisation")
    lr_find_suggestion: str = setting("valley", "the suggestion --lr-find trains with",
                                      choices=LR_SUGGESTIONS, group="optimisation")
    lr_find_only: bool = setting(False, "sweep the learning rate and stop: write lr_find.png, "
                                 "lr_find.json and the report without training",
                                 group="optimisation")
    lr_find_steps: int = setting(100, "training steps of the learning-rate sweep (fastai's "
                                 "num_it)", unit="steps", metavar="N", group="optimisation")
    ema: float = setting(0.0, "keep an exponential moving average of the weights, updated "
                         "after every step with this decay (e.g. 0.999; 0 = off); validation, "
                         "best/, last/ and the final metrics use the averaged weights",
                         unit="0-1", metavar="DECAY", group="optimisation")
    ema_warmup: bool = setting(True, "ramp the EMA decay up over the first steps (timm's "
                               "warm-up: min(decay, 1 - (1 + step) ** -2/3))",
                               group="optimisation")
    swa: int = setting(0, "stochastic weight averaging after this many epochs (0 = off): the "
                       "final weights are the mean of each later epoch's, BatchNorm statistics "
                       "recomputed", unit="epochs", metavar="EPOCHS", group="optimisation")
    swa_lr: float | None = setting(None, "SWA's learning rate, reached by a 1-epoch cosine "
                                   "anneal (None = keep the run's rate and schedule)",
                                   metavar="LR", group="optimisation")
    class_weight: str = setting("none", "weigh each class's loss: balanced = n_samples / "
                                "(n_classes * count), sklearn's formula", choices=CLASS_WEIGHTS,
                                group="optimisation")
    sampler: str = setting("shuffle", "training order: shuffle, or balanced = draw every class "
                           "equally often (with replacement, seeded)", choices=SAMPLERS,
                           group="optimisation")
    loss: str = setting("crossentropy", "the loss: crossentropy, or focal (Keras's "
                        "CategoricalFocalCrossentropy)", choices=LOSSES, group="optimisation")
    focal_gamma: float = setting(2.0, "--loss focal: the focusing exponent gamma",
                                 group="optimisation")
    tta: str = setting("none", "test-time augmentation of the final evaluation: flip (the image "
                       "and its mirror) or flip_translate (also 1-pixel shifts), probabilities "
                       "averaged", choices=TTA_VIEWS)
    # -- run
    seed: int = setting(0, "seeds Python, NumPy, PyTorch, the loader's shuffle and augmentation")
    device: str = setting("auto", "auto | cpu | cuda | cuda:N | mps")
    precision: str = setting("auto", "autocast: auto (bf16 on CUDA) | fp32 | bf16 | fp16",
                             choices=PRECISIONS)
    jit_compile: bool = setting(False, "CPU: compiled kernels for relu conv -> 2x2 max-pool "
                                "blocks (seconds to compile once; needs a C++ compiler)")
    output: str = setting("runs", "parent folder of run directories", metavar="DIR")
    name: str = setting("", "run directory name ('' = <data>-<model>); never overwritten (-2, "
                        "-3, ...)")
    checkpoint_every: int = setting(1, "epochs between resume checkpoints (0 = only when "
                                    "interrupted)", unit="epochs", metavar="EPOCHS")
    report: bool = setting(True, "write plots and report.html")
    verbose: str = setting("auto", "auto (bar in a terminal, a line every 15 s when piped) | 0 | "
                           "1 | 2", choices=VERBOSITY)
    log: str = setting("", "experiment loggers fed each epoch's history.csv row: tensorboard, "
                       "mlflow or both, comma-separated ('' = none); files under the run "
                       "directory (docs/CLI.md, Loggers)", metavar="LOGGERS")
    mlflow_uri: str = setting("", "--log mlflow: the tracking store, a local folder ('' = "
                              "mlruns/ in the run directory); never a server", metavar="DIR")

    # ------------------------------------------------------------------ validation
    def validate(self) -> "TrainConfig":
        """Check types and ranges; returns self. Raises ConfigError naming the setting."""
        def bad(name, why):
            raise ConfigError(f"{name}: {why} (got {getattr(self, name)!r})")

        for f in fields(self):
            value = getattr(self, f.name)
            setattr(self, f.name, _coerce(f, value))
        if self.epochs < 1:
            bad("epochs", "must be >= 1")
        if self.batch_size < 1:
            bad("batch_size", "must be >= 1")
        if not 0 <= self.val_split < 1:
            bad("val_split", "must be in [0, 1)")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            bad("lr", "must be a positive number")
        if self.schedule not in SCHEDULES:
            bad("schedule", f"must be one of {', '.join(SCHEDULES)}")
        if self.optimizer.lower() not in OPTIMIZERS:
            bad("optimizer", f"must be one of {', '.join(OPTIMIZERS)}")
        if self.precision not in PRECISIONS:
            bad("precision", f"must be one of {', '.join(PRECISIONS)}")
        if self.image_size is not None and (len(self.image_size) != 2 or min(self.image_size) < 1):
            bad("image_size", "must be [height, width] in pixels")
        if not 0 <= self.label_smoothing < 1:
            bad("label_smoothing", "must be in [0, 1)")
        for name in ("limit", "patience", "checkpoint_every", "step_epochs"):
            if getattr(self, name) < 0:
                bad(name, "must be >= 0")
        if self.warmup_epochs < 0:
            bad("warmup_epochs", "must be >= 0")
        if self.verbose not in VERBOSITY:
            bad("verbose", f"must be one of {', '.join(VERBOSITY)}")
        self._validate_averaging_and_lr_find(bad)
        for name, allowed in (("class_weight", CLASS_WEIGHTS), ("sampler", SAMPLERS),
                              ("loss", LOSSES), ("tta", TTA_VIEWS)):
            if getattr(self, name) not in allowed:
                bad(name, f"must be one of {', '.join(allowed)}")
        if self.focal_gamma < 0:
            bad("focal_gamma", "must be >= 0")
        multi_label = self.multi_label or str(self.data).lower().endswith(".csv")
        for name, off in (("class_weight", "none"), ("sampler", "shuffle"),
                          ("loss", "crossentropy")):
            if multi_label and getattr(self, name) != off:
                bad(name, "is for single-label classes: a multi-label run trains on per-label "
                    "binary cross-entropy; drop it")
        from .cli_args import output_dir_problem
        from .utils import device_problem
        for name, problem in (("device", device_problem(self.device)),
                              ("output", output_dir_problem(self.output))):
            if problem:
                bad(name, problem)
        from .run.loggers import log_problem
        problem = log_problem(self.log, self.mlflow_uri)
        if problem:
            bad("log" if "--mlflow-uri" not in problem else "mlflow_uri", problem)
        if self.recipe:
            default = TrainConfig()
            clash = [n for n in RECIPE_DECIDES if getattr(self, n) != getattr(default, n)]
            if clash:
                raise ConfigError(f"recipe {self.recipe!r} decides {', '.join(clash)} itself; "
                                  "leave them out (`python -c \"from cnnkit import recipes; "
                                  f"print(recipes.describe('{self.recipe}'))\"` shows its settings)")
        return self

    def _validate_averaging_and_lr_find(self, bad) -> None:
        """--lr-find, --ema and --swa: ranges and the combinations that cannot work."""
        if self.lr_find_suggestion not in LR_SUGGESTIONS:
            bad("lr_find_suggestion", f"must be one of {', '.join(LR_SUGGESTIONS)}")
        if self.lr_find_steps < 10:
            bad("lr_find_steps", "must be >= 10")
        if self.lr_find and self.lr is not None:
            bad("lr", "--lr-find picks the learning rate; leave out --lr (or sweep only, "
                "with --lr-find-only)")
        if not 0 <= self.ema < 1:
            bad("ema", "the decay must be in [0, 1), e.g. 0.999 (0 = off)")
        if self.swa < 0 or self.swa >= self.epochs:
            bad("swa", f"must be an epoch count in [0, epochs={self.epochs}): averaging starts "
                "after that many epochs (0 = off)")
        if self.swa_lr is not None and not (self.swa_lr > 0 and math.isfinite(self.swa_lr)):
            bad("swa_lr", "must be a positive number")
        if self.swa_lr is not None and not self.swa:
            bad("swa_lr", "only applies with --swa EPOCHS")
        if self.ema and self.swa:
            bad("swa", "use one weight average: --ema or --swa, not both")
        if self.recipe:
            for name in ("lr_find", "lr_find_only", "ema", "swa"):
                if getattr(self, name):
                    bad(name, f"not available with --recipe (recipe {self.recipe!r} sets its own "
                        "training)")

    # ------------------------------------------------------------------ layering
    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> "TrainConfig":
        return cls().update(values, source)

    def update(self, values: dict, source: str = "config") -> "TrainConfig":
        """Set the given settings (unknown names are refused, listing the valid ones)."""
        known = {f.name: f for f in fields(self)}
        for key, value in values.items():
            name = key.replace("-", "_")
            if name not in known:
                close = difflib.get_close_matches(name, list(known), n=3)
                hint = f" Did you mean {', '.join(close)}?" if close else ""
                raise ConfigError(f"{source}: unknown setting {key!r}.{hint} Valid settings: "
                                  f"{', '.join(known)}")
            setattr(self, name, _coerce(known[name], value))
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _coerce(f: dataclasses.Field, value):
    """Turn strings and numbers from files into the field's type (TOML/YAML are typed already)."""
    kind = str(f.type)
    if value is None:
        if "None" in kind:
            return None
        raise ConfigError(f"{f.name}: a value is required")
    try:
        if kind.startswith("list"):
            if isinstance(value, str):
                value = [v for v in value.replace("x", ",").split(",") if v.strip()]
            if isinstance(value, int):
                value = [value, value]
            return [int(v) for v in value]
        if kind.startswith("bool"):
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if kind.startswith("int"):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind.startswith("float"):
            return float(value)
        if kind.startswith("str"):
            return str(value)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{f.name}: expected {kind.replace(' | None', ' or nothing')}, "
                          f"got {value!r}") from err
    return value


def load_config_file(path) -> dict:
    """Read a TOML (.toml) or YAML (.yaml/.yml) file into a flat dict of settings."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    suffix = path.suffix.lower()
    text = path.read_text()
    if suffix == ".toml":
        import tomllib
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: not valid TOML ({err})") from err
    elif suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as err:
            raise ConfigError(f"{path}: reading YAML needs PyYAML (pip install 'cnnkit[yaml]'); "
                              "or write the config as TOML") from err
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({err})") from err
    elif suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}: not valid JSON ({err})") from err
    else:
        raise ConfigError(f"{path}: config files are .toml, .yaml/.yml or .json")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table of settings at the top level")
    if "train" in data and isinstance(data["train"], dict):
        data = data["train"]
    return data


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def to_toml(config: TrainConfig) -> str:
    """The config as TOML (settings that are None are left out: they mean 'the default')."""
    lines = ["# cnnkit training config: `cnnkit train --config THIS_FILE` repeats the run", "[train]"]
    for key, value in config.to_dict().items():
        if value is not None:
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"
