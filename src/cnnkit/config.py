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

__all__ = ["TrainConfig", "ConfigError", "load_config_file", "to_toml", "SCHEDULES"]

SCHEDULES = ("constant", "cosine", "linear", "step")
# Settings a named recipe (cnnkit.recipes) fixes; giving them with --recipe is an error.
RECIPE_DECIDES = ("model", "pretrained", "epochs", "batch_size", "optimizer", "lr", "momentum",
                  "weight_decay", "schedule", "warmup_epochs", "step_epochs", "augment",
                  "patience", "label_smoothing", "precision")


class ConfigError(ValueError):
    """A setting that is unknown, of the wrong type or out of range."""


@dataclass
class TrainConfig:
    # -- data
    data: str = "bundled"            # 'bundled' | a named dataset (mnist, cifar10, ...) | PATH to class folders
    data_dir: str = ""               # folder holding a named dataset's canonical files ('' = cache/download)
    image_size: list[int] | None = None  # [H, W] pixels to resize folder images to (None = their own size)
    grayscale: bool = False          # read folder images as 1 channel instead of RGB
    val_split: float = 0.1           # share (0-1) of the training images held out, per class, for validation
    limit: int = 0                   # train on about this many images, the same share of each class (0 = all); for quick tries
    # -- model
    model: str = ""                  # zoo name (cnnkit models), a saved model folder, or '' = the default
    pretrained: bool = False         # load the zoo model's published weights
    recipe: str = ""                 # a named speed recipe (cnnkit.recipes: fast, fast-long, mnist-fast); it sets the network, optimiser, schedule and augmentation
    # -- optimisation
    epochs: int = 5                  # passes over the training images
    batch_size: int = 64             # images per step
    optimizer: str = "adam"          # adam | adamw | sgd | rmsprop
    lr: float | None = None          # learning rate per step (None = the optimizer's Keras default)
    momentum: float = 0.0            # sgd / rmsprop momentum
    weight_decay: float = 0.0        # decoupled (adamw) or L2 (others) weight decay per step
    schedule: str = "constant"       # learning-rate schedule over all steps: constant | cosine | linear | step
    warmup_epochs: float = 0.0       # epochs of linear warm-up from 0 to lr
    step_epochs: int = 0             # 'step' schedule: multiply lr by 0.1 every this many epochs (0 = epochs // 3)
    augment: str = ""                # batched augmentation, e.g. 'flip,crop=4' or 'flip,rotate=15,zoom=0.1' ('' = none)
    patience: int = 0                # early stopping: epochs without val_loss improvement (0 = off)
    label_smoothing: float = 0.0     # 0-1; 0 = off
    # -- run
    seed: int = 0                    # seeds Python, NumPy, PyTorch, the loader's shuffle and augmentation
    device: str = "auto"             # auto | cpu | cuda | cuda:N | mps
    precision: str = "auto"          # auto (bf16 autocast on CUDA) | fp32 | bf16 | fp16
    jit_compile: bool = False        # CPU: compiled kernels for relu conv -> 2x2 max-pool blocks (seconds to compile once; needs a C++ compiler)
    output: str = "runs"             # parent folder of run directories
    name: str = ""                   # run directory name ('' = <data>-<model>); never overwritten (-2, -3, ...)
    checkpoint_every: int = 1        # epochs between resume checkpoints (0 = only when interrupted)
    report: bool = True              # write plots and report.html
    verbose: str = "auto"            # auto (bar in a terminal, a line every 15 s when piped) | 0 | 1 | 2

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
        if self.optimizer.lower() not in ("adam", "adamw", "sgd", "rmsprop"):
            bad("optimizer", "must be one of adam, adamw, sgd, rmsprop")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            bad("precision", "must be auto, fp32, bf16 or fp16")
        if self.image_size is not None and (len(self.image_size) != 2 or min(self.image_size) < 1):
            bad("image_size", "must be [height, width] in pixels")
        if not 0 <= self.label_smoothing < 1:
            bad("label_smoothing", "must be in [0, 1)")
        for name in ("limit", "patience", "checkpoint_every", "step_epochs"):
            if getattr(self, name) < 0:
                bad(name, "must be >= 0")
        if self.warmup_epochs < 0:
            bad("warmup_epochs", "must be >= 0")
        if self.verbose not in ("auto", "0", "1", "2"):
            bad("verbose", "must be auto, 0, 1 or 2")
        if self.recipe:
            default = TrainConfig()
            clash = [n for n in RECIPE_DECIDES if getattr(self, n) != getattr(default, n)]
            if clash:
                raise ConfigError(f"recipe {self.recipe!r} decides {', '.join(clash)} itself; "
                                  "leave them out (`python -c \"from cnnkit import recipes; "
                                  f"print(recipes.describe('{self.recipe}'))\"` shows its settings)")
        return self

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
