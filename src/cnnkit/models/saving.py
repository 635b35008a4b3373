"""Model files without pickle: a folder with ``config.json`` (architecture, preprocessing,
class names) and ``model.safetensors`` (the state dict).

Architectures are rebuilt from JSON: a Sequential from its layer configs (cnnkit's own
layers only), a zoo model from its registry name, a plain module from the instance the caller
passes. Nothing read from the file chooses code to run: no import, no name looked up on a
module, no pickle; a file naming anything else is refused with ``ModelFileError``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

FORMAT = "cnnkit-model"
VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "ModelFileError"]


class ModelFileError(ValueError):
    """A model file that is missing, corrupt or from another format version."""


def _state_for_saving(model) -> dict[str, torch.Tensor]:
    # safetensors wants contiguous, unshared tensors
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def model_config(model) -> dict:
    from .functional import Functional
    from .sequential import Sequential
    if isinstance(model, Sequential):
        arch = {"kind": "sequential", "config": model.get_config()}
    elif isinstance(model, Functional):  # the graph: cnnkit layer configs + connections
        arch = {"kind": "functional", "config": model.get_config()}
    elif getattr(model, "architecture", None):
        arch = dict(model.architecture)
    else:
        cls = type(model.module)
        arch = {"kind": "module", "class": f"{cls.__module__}:{cls.__qualname__}"}
    return {
        "format": FORMAT,
        "version": VERSION,
        "cnnkit_version": __import__("cnnkit").__version__,
        "name": model.name,
        "architecture": arch,
        "input_shape": list(model.input_shape) if model.input_shape else None,
        "preprocess": model.preprocess.config(),
        "class_names": model.class_names,
        "output": model.output_kind,
        "compile": getattr(model, "compile_config", None),
        **({"multi_label": True, "thresholds": model.thresholds}
           if getattr(model, "multi_label", False) else {}),
    }


def save_model(model, path, overwrite: bool = True, weights_from=None) -> Path:
    """Write the model folder atomically (a temp folder renamed into place).

    ``weights_from``: a file already holding ``model``'s weights as this function writes them
    (a run's checkpoint ``model-*.safetensors``): hard-linked, or copied where the file
    system has no links, instead of serialising the weights again."""
    path = Path(path)
    if path.suffix.lower() in (".keras", ".h5", ".hdf5"):  # Keras files: models/keras_io
        from .keras_io import save_keras_model
        return save_keras_model(model, path, overwrite=overwrite)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True or choose another path")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        if weights_from is not None:
            _link_or_copy(Path(weights_from), tmp / WEIGHTS_FILE)
        else:
            save_file(_state_for_saving(model), str(tmp / WEIGHTS_FILE),
                      metadata={"format": FORMAT})
        (tmp / CONFIG_FILE).write_text(json.dumps(model_config(model), indent=2))
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # no hard links here (or across devices): a plain copy
        shutil.copyfile(source, target)


def read_config(path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"no model at {path}")
    cfg_path = path / CONFIG_FILE if path.is_dir() else None
    if cfg_path is None or not cfg_path.exists():
        raise ModelFileError(f"{path} is not a cnnkit model folder (expected {CONFIG_FILE} and "
                             f"{WEIGHTS_FILE} inside); save one with model.save(path)")
    try:
        config = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelFileError(f"{cfg_path} is corrupt ({err}); re-save the model") from err
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelFileError(f"{cfg_path} is not a cnnkit model config")
    if config.get("version") != VERSION:
        raise ModelFileError(f"{path} was written in model format version {config.get('version')} "
                             f"(cnnkit {config.get('cnnkit_version')}); this cnnkit reads version "
                             f"{VERSION}. Re-save it with a matching cnnkit")
    return config


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelFileError(f"cannot read weights {path}: {err}. The file is corrupt or not a "
                             "safetensors file") from err


def _build_sequential(arch: dict, config: dict, module):
    from .sequential import Sequential
    model = Sequential.from_config(arch["config"])  # layer_from_config: cnnkit layers only
    model.preprocess = model.preprocess.from_config(config.get("preprocess"))
    return model


def _build_functional(arch: dict, config: dict, module):
    from .functional import Functional
    model = Functional.from_config(arch["config"])  # layer_from_config: cnnkit layers only
    model.preprocess = model.preprocess.from_config(config.get("preprocess"))
    return model


def _build_zoo(arch: dict, config: dict, module):
    from . import registry
    model = registry.rebuild(arch["name"], arch.get("kwargs", {}))  # registered names only
    model.preprocess = model.preprocess.from_config(config.get("preprocess"))
    return model


def _build_module(arch: dict, config: dict, module):
    from .base import Model
    if module is None:
        raise ModelFileError(
            f"the model wraps a plain nn.Module (saved as class {arch.get('class')!r}); cnnkit never "
            "imports code a model file names. Build the module yourself and pass it: "
            "load_model(path, module=MyNet())")
    if isinstance(module, type):
        module = module()
    return Model(module, input_shape=config.get("input_shape"), output=config.get("output", "logits"),
                 name=config.get("name"), preprocess=config.get("preprocess"))


# architecture "kind" -> builder; the only things a model file can ask to be built
_BUILDERS = {"sequential": _build_sequential, "functional": _build_functional, "zoo": _build_zoo,
             "module": _build_module}


def _build(config: dict, module=None, path=None):
    arch = config.get("architecture")
    kind = arch.get("kind") if isinstance(arch, dict) else None
    where = f"{path}: " if path is not None else ""
    if kind not in _BUILDERS:
        raise ModelFileError(f"{where}unknown architecture kind {kind!r} in config.json; cnnkit builds "
                             f"{', '.join(map(repr, _BUILDERS))} (a plain module with "
                             "load_model(path, module=MyNet()))")
    try:
        model = _BUILDERS[kind](arch, config, module)
        if config.get("input_shape") and model.input_shape is None:
            from ..layers import keras_to_torch_shape
            model._set_input_shape(tuple(keras_to_torch_shape(config["input_shape"])))
    except ModelFileError as err:
        raise ModelFileError(f"{where}{err}") from err
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        raise ModelFileError(f"{where}the {kind} architecture in config.json cannot be rebuilt "
                             f"({type(err).__name__}: {err}); re-save the model with this cnnkit") from err
    model.class_names = config.get("class_names")
    if config.get("multi_label"):
        model.multi_label = True
        model.thresholds = _thresholds(config.get("thresholds"), config.get("class_names"), where)
    return model


def _thresholds(values, class_names, where: str):
    """The saved per-label thresholds (numbers in [0, 1], one per label), or None."""
    if values is None:
        return None
    ok = isinstance(values, list) and all(isinstance(v, (int, float)) and 0 <= v <= 1
                                          for v in values)
    if not ok or (class_names and len(values) != len(class_names)):
        raise ModelFileError(f"{where}config.json: thresholds must be one number in [0, 1] per "
                             "label; fix or delete them")
    return [float(v) for v in values]


def load_model(path, module=None, device=None, compile: bool = True):
    """Rebuild a saved model; weights load through safetensors (no pickle).

    ``module``: for a model that wraps a plain nn.Module, an instance (or class) to load into.
    ``compile``: as in Keras, compile again with the saved optimizer, loss and metrics (a fresh
    optimizer state), so ``evaluate`` works at once.
    """
    path = Path(path)
    if path.suffix.lower() in (".keras", ".h5", ".hdf5"):  # Keras files: models/keras_io
        from .keras_io import load_keras_model
        model = load_keras_model(path, compile=compile)
        return model.to(device) if device is not None else model
    config = read_config(path)
    model = _build(config, module, path)
    model.name = config.get("name") or model.name
    load_weights(model, path / WEIGHTS_FILE)
    saved = config.get("compile")
    if compile and saved:
        _compile_again(model, saved, device, path)
    if device is not None:
        model.to(device)
    model.eval()
    return model


def _compile_again(model, saved: dict, device, path) -> None:
    """Compile with the saved settings; they are names looked up in cnnkit's own tables."""
    from ..train.losses import get as get_loss
    try:
        loss = get_loss(saved["loss"])
        loss.from_logits = bool(saved.get("from_logits"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the from_logits note was given at first compile
            model.compile(optimizer=saved["optimizer"], loss=loss, metrics=saved.get("metrics"),
                          learning_rate=saved.get("learning_rate"), device=device)
    except (TypeError, ValueError, KeyError) as err:
        raise ModelFileError(f"{path}: the saved compile settings cannot be used ({err}); load with "
                             "load_model(path, compile=False) and compile it yourself") from err


def save_weights(model, path) -> Path:
    path = Path(path)
    if path.suffix.lower() in (".h5", ".hdf5"):  # Keras's x.weights.h5: models/keras_io
        from .keras_io import save_keras_weights
        return save_keras_weights(model, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(_state_for_saving(model), str(tmp), metadata={"format": FORMAT})
    os.replace(tmp, path)
    return path


def load_weights(model, path, strict: bool = True) -> None:
    """Load safetensors weights, naming every key, shape or dtype that disagrees."""
    from .weights import dtype_mismatches
    path = Path(path)
    if path.suffix.lower() in (".h5", ".hdf5", ".keras"):  # Keras's x.weights.h5: models/keras_io
        from .keras_io import load_keras_weights
        return load_keras_weights(model, path)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    if not path.exists():
        raise ModelFileError(f"no weights file at {path}")
    state = _read_weights(path)
    own = model.state_dict()
    problems = []
    for key, ref in own.items():
        if key not in state:
            if strict:
                problems.append(f"missing {key} {tuple(ref.shape)}")
        elif tuple(state[key].shape) != tuple(ref.shape):
            problems.append(f"{key}: model {tuple(ref.shape)} vs file {tuple(state[key].shape)}")
    unexpected = [k for k in state if k not in own]
    if strict and unexpected:
        problems += [f"unexpected {k} {tuple(state[k].shape)}" for k in unexpected[:10]]
    problems += [f"{p} (not cast)" for p in dtype_mismatches(own, state)]
    if problems:
        shown = "; ".join(problems[:12]) + (f"; and {len(problems) - 12} more" if len(problems) > 12 else "")
        raise ModelFileError(f"weights in {path} do not fit model '{model.name}': {shown}")
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=strict)
