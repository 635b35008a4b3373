"""cnnkit Sequential / functional model -> Keras 3 ``.keras`` file (and ``.weights.h5``, or
Keras's legacy ``.h5`` through :mod:`legacy_writer`), as Keras 3.15 writes them.

The zip holds ``metadata.json``, ``config.json`` (the model: module / class_name / config /
registered_name / build_config for the model and every layer, an ``InputLayer`` first) and
``model.weights.h5`` (``layers/<conv2d|dense|...>/vars/0..n``, Keras's layouts).
``keras.saving.load_model`` rebuilds it with Keras's own classes: no custom objects needed.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

from torch import nn

from ... import __version__
from . import functional
from .convert import converter_for, dump_layers, keras3_paths
from .errors import KerasFileError, short_list
from .files import CONFIG, METADATA, WEIGHTS
from .layer_map import Unsupported, keras_class_name, policy_config
from .legacy_writer import write_legacy_h5

KERAS_VERSION = "3.15.1"  # the Keras release whose files these mirror (checked against it)
OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop",
              "adagrad": "Adagrad", "adadelta": "Adadelta", "adamax": "Adamax", "nadam": "Nadam"}


def _keras_shape(torch_shape) -> list:
    """(C, H, W) -> [None, H, W, C]; (F,) -> [None, F]."""
    s = list(torch_shape)
    return [None] + (s[1:] + s[:1] if len(s) == 3 else s)


def _check(model) -> list[nn.Module]:
    """The model's layers, or one line saying why a .keras file cannot hold the model."""
    from ..sequential import Sequential
    if not isinstance(model, Sequential) and not functional.is_functional(model):
        raise KerasFileError(f"model '{model.name}' is a {type(model).__name__}; cnnkit writes "
                             ".keras files for Sequential and functional models of cnnkit layers. "
                             "Save it with model.save('folder') instead")
    if isinstance(model, Sequential) and not model.built:
        raise KerasFileError(f"model '{model.name}' is not built: give it an input shape before "
                             "saving it as .keras")
    pre = model.preprocess.config()
    extra = [k for k in ("mean", "std", "resize", "channels") if pre.get(k) is not None]
    if extra:
        raise KerasFileError(f"model '{model.name}' normalises its input inside cnnkit's "
                             f"preprocessing ({', '.join(extra)}), which a .keras file cannot "
                             "hold; save it with model.save('folder'), or put the normalisation "
                             "in layers")
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    problems = []
    for layer in layers:
        try:
            converter_for(layer)
        except Unsupported:
            problems.append(f"'{getattr(layer, 'name', '?')}' ({type(layer).__name__})")
    if problems:
        raise KerasFileError(f"model '{model.name}' has layers with no Keras equivalent: "
                             f"{short_list(problems)}; save it with model.save('folder') instead")
    return layers


def _layer_entry(layer, input_shape) -> dict:
    conv = converter_for(layer)
    entry = {"module": "keras.layers", "class_name": keras_class_name(layer),
             "config": conv.keras_config(layer), "registered_name": None}
    if conv.build_config:
        entry["build_config"] = {"input_shape": _keras_shape(input_shape)}
    return entry


def _compile_config(model) -> dict | None:
    saved = getattr(model, "compile_config", None)
    if not saved or saved.get("optimizer") not in OPTIMIZERS or not isinstance(saved.get("loss"), str):
        return None
    optimizer = {"module": "keras.optimizers", "class_name": OPTIMIZERS[saved["optimizer"]],
                 "config": {"name": saved["optimizer"], "learning_rate": saved["learning_rate"]},
                 "registered_name": None}
    return {"optimizer": optimizer, "loss": saved["loss"], "loss_weights": None,
            "metrics": list(saved.get("metrics") or []) or None, "weighted_metrics": None,
            "run_eagerly": False, "steps_per_execution": 1, "jit_compile": False}


def sequential_plan(model, layers) -> tuple[dict, list]:
    """(Keras config, [(weights path, layer, arrays)]) of a cnnkit Sequential."""
    input_shape = _keras_shape(model.torch_input_shape)
    entries = [{"module": "keras.layers", "class_name": "InputLayer",
                "config": {"batch_shape": input_shape, "dtype": "float32", "sparse": False,
                           "ragged": False, "name": "input_layer", "optional": False},
                "registered_name": None}]
    shapes = [model.torch_input_shape] + list(model.output_shapes[:-1])  # each layer's input
    entries += [_layer_entry(layer, shape) for layer, shape in zip(layers, shapes)]
    config = {"module": "keras", "class_name": "Sequential",
              "config": {"name": model.name, "trainable": True, "dtype": policy_config(model),
                         "layers": entries, "build_input_shape": input_shape},
              "registered_name": None, "build_config": {"input_shape": input_shape}}
    return config, list(zip(keras3_paths(layers), layers, dump_layers(layers)))


def _plan(model) -> tuple[dict, list]:
    layers = _check(model)
    try:
        config, weights = (functional.functional_plan(model, _layer_entry)
                           if functional.is_functional(model) else sequential_plan(model, layers))
    except Unsupported as err:
        raise KerasFileError(f"cannot write model '{model.name}' as a Keras file: {err}") from err
    compile_config = _compile_config(model)
    if compile_config:
        config["compile_config"] = compile_config
    return config, weights


def _weights_bytes(model, weights) -> bytes:
    """Keras 3's layout: ``layers/<saved name>/vars/<i>`` for every layer, ``vars`` for the model."""
    import h5py
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.create_group("vars").attrs["name"] = model.name
        group = f.create_group("layers")
        for path, layer, arrays in weights:
            vars_ = group.create_group(path[0]).create_group("vars")
            vars_.attrs["name"] = layer.name
            for i, array in enumerate(arrays):
                vars_.create_dataset(str(i), data=array)
    return buffer.getvalue()


def _atomic_write(path: Path, write) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def save_keras_model(model, path, overwrite: bool = True) -> Path:
    """``model.save('x.keras')`` (or Keras's legacy ``'x.h5'``): a file that
    ``keras.saving.load_model`` opens."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True or choose another path")
    config, plan = _plan(model)
    if path.suffix.lower() in (".h5", ".hdf5"):  # Keras's legacy HDF5 model file
        return _atomic_write(path, lambda tmp: _write_h5(tmp, model, config, plan))
    config = json.dumps(config)
    metadata = json.dumps({"keras_version": KERAS_VERSION, "producer": f"cnnkit {__version__}",
                           "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")})
    weights = _weights_bytes(model, plan)

    def write(tmp):
        with zipfile.ZipFile(tmp, "w") as archive:
            archive.writestr(METADATA, metadata)
            archive.writestr(CONFIG, config)
            archive.writestr(WEIGHTS, weights)
    return _atomic_write(path, write)


def _write_h5(tmp, model, config, plan) -> None:
    import h5py
    with h5py.File(tmp, "w") as f:
        write_legacy_h5(f, model, config, plan, KERAS_VERSION)


def save_keras_weights(model, path) -> Path:
    """``model.save_weights('x.weights.h5')`` in Keras 3's layout."""
    _, plan = _plan(model)
    path = Path(path)
    return _atomic_write(path, lambda tmp: Path(tmp).write_bytes(_weights_bytes(model, plan)))
