"""cnnkit model -> Keras's legacy HDF5 model file (``model.save('x.h5')``), as Keras 3 writes it.

Root attributes ``model_config`` (the model's JSON, layer entries without Keras 3's
module / registered_name / build_config) and ``training_config``; a ``model_weights`` group
listing ``layer_names`` in the model's order, each layer group listing ``weight_names``.
Keras loads such a file by order (layers with weights, in turn), as it loads its own.
"""

from __future__ import annotations

import json

import numpy as np

from .layer_map import keras_class_name

BACKEND = "tensorflow"  # the backend Keras's loader expects kernels laid out for (no conversion)
KERAS3_ONLY = ("module", "registered_name", "build_config")


def _legacy_entry(entry: dict) -> dict:
    return {k: v for k, v in entry.items() if k not in KERAS3_ONLY}


def _weight_names(layer, count: int) -> list[str]:
    """Keras's variable names (kernel, bias, gamma, ...) for ``count`` arrays of ``layer``."""
    listed = getattr(layer, "keras_weights", None)
    if callable(listed):
        names = [w.name for w in listed()]
    elif keras_class_name(layer) in ("Conv2D", "Dense"):
        names = ["kernel", "bias"]
    elif keras_class_name(layer) == "BatchNormalization":
        names = (["gamma"] if layer.scale else []) + (["beta"] if layer.center else []) + \
            ["moving_mean", "moving_variance"]
    else:
        names = []
    return names[:count] if len(names) >= count else [f"var_{i}" for i in range(count)]


def _names_attr(names: list[str]):
    return np.array([n.encode("utf8") for n in names]) if names else np.asarray([])


def _training_config(compile_config: dict | None) -> dict | None:
    if not compile_config:
        return None
    out = {k: v for k, v in compile_config.items() if k != "optimizer"}
    opt = compile_config["optimizer"]
    out["optimizer_config"] = {"class_name": opt["class_name"], "config": opt["config"]}
    return out


def write_legacy_h5(h5file, model, config: dict, weights: list, keras_version: str) -> None:
    """``config`` / ``weights``: the writer's plan (Keras 3 config, [(path, layer, arrays)])."""
    model_config = {"class_name": config["class_name"],
                    "config": {**config["config"],
                               "layers": [_legacy_entry(e) for e in config["config"]["layers"]]}}
    h5file.attrs["backend"] = BACKEND
    h5file.attrs["keras_version"] = keras_version
    h5file.attrs["model_config"] = json.dumps(model_config)
    training = _training_config(config.get("compile_config"))
    if training:
        h5file.attrs["training_config"] = json.dumps(training)
    group = h5file.create_group("model_weights")
    group.attrs["backend"] = BACKEND
    group.attrs["keras_version"] = keras_version
    order = {id(layer): i for i, layer in enumerate(model.layers)}
    entries = sorted((w for w in weights if keras_class_name(w[1]) != "InputLayer"),
                     key=lambda w: order.get(id(w[1]), len(order)))
    group.attrs["layer_names"] = _names_attr([layer.name for _, layer, _ in entries])
    for _, layer, arrays in entries:
        layer_group = group.create_group(layer.name)
        names = [f"{model.name}/{layer.name}/{n}" for n in _weight_names(layer, len(arrays))]
        layer_group.attrs["weight_names"] = _names_attr(names)
        for name, array in zip(names, arrays):
            layer_group.create_dataset(name, data=array)
    group.create_group("top_level_model_weights").attrs["weight_names"] = _names_attr([])
