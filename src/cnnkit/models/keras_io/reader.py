"""Keras model files -> cnnkit models: parse, check every layer, build, copy the weights."""

from __future__ import annotations

import warnings
from pathlib import Path

from torch import nn

from . import functional
from .convert import keras3_paths, load_layers
from .errors import KerasFileError, short_list
from .files import read_keras_zip, read_legacy_h5, read_weights_file
from .graph import Graph, LayerSpec, parse_model_config
from .layer_map import REFUSED, Unsupported, converter_named, weight_options

# Arguments that change training, not the forward pass: passed on to the cnnkit layers that
# take them (layer_map.weight_options); a loaded model says which it had to drop.
TRAINING_ONLY = ("kernel_regularizer", "bias_regularizer", "activity_regularizer",
                 "kernel_constraint", "bias_constraint", "beta_regularizer", "gamma_regularizer",
                 "beta_constraint", "gamma_constraint")


def build_layers(specs: list[LayerSpec], source: str) -> list[nn.Module]:
    """A cnnkit layer per Keras layer; all that cannot be converted are named in one error."""
    problems, built, dropped = [], [], []
    for spec in specs:
        if spec.custom:
            problems.append(f"'{spec.name}' ({spec.custom}: a custom layer class, whose code is not "
                            "in the file; cnnkit converts Keras's own layers)")
            continue
        if spec.class_name in REFUSED:
            problems.append(f"'{spec.name}' ({spec.class_name}: {REFUSED[spec.class_name]})")
            continue
        conv = converter_named(spec.class_name)
        if conv is None:
            problems.append(f"'{spec.name}' ({spec.class_name}: no cnnkit equivalent)")
            continue
        try:
            layer = conv.build(spec.config)
        except (Unsupported, TypeError, ValueError, KeyError) as err:
            problems.append(f"'{spec.name}' ({spec.class_name}: {err})")
            continue
        built.append(layer)
        kept = set(weight_options(type(layer), spec.config))
        dropped += [f"{spec.name}.{k}" for k in TRAINING_ONLY
                    if spec.config.get(k) is not None and k not in kept]
    if problems:
        raise KerasFileError(f"cannot convert {source}: {len(problems)} layer(s) have no cnnkit "
                             f"equivalent: {'; '.join(problems)}")
    if dropped:
        warnings.warn(f"{source}: cnnkit does not apply these regularizers/constraints when "
                      f"training the loaded model: {short_list(dropped)}", UserWarning, stacklevel=3)
    return built


def build_model(graph: Graph, store, source: str):
    """The cnnkit model of a parsed graph, weights loaded (a Sequential for straight chains)."""
    from ... import layers as L
    from ..sequential import Sequential
    chain = graph.chain()
    specs = chain if chain is not None else list(graph.layers.values())
    layers = build_layers(specs, source)
    if chain is None:
        return functional.build_functional(graph, {s.name: layer for s, layer in zip(specs, layers)},
                                           store, source)
    try:
        model = Sequential([L.Input(graph.inputs[0][1]), *layers], name=graph.name)
    except (ValueError, TypeError) as err:  # ShapeError is a ValueError
        raise KerasFileError(f"cannot rebuild {source} in cnnkit: {err}") from err
    paths = [s.legacy_path for s in specs] if store.legacy else [s.path for s in specs]
    load_layers(list(model.layers), paths, store, f"the model in {source}")
    return model


def _compile_like_keras(model, config: dict | None, source: str) -> None:
    """Compile with the file's optimizer, learning rate, loss and metrics when cnnkit knows them."""
    if not config:
        return
    opt = config.get("optimizer") or config.get("optimizer_config") or {}
    opt_name = opt.get("class_name", "adam").lower() if isinstance(opt, dict) else str(opt)
    lr = opt.get("config", {}).get("learning_rate") if isinstance(opt, dict) else None
    loss = config.get("loss")
    metrics = [m for m in (config.get("metrics") or []) if isinstance(m, str)]
    if not isinstance(loss, str) or not isinstance(lr, (int, float, type(None))):
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.compile(optimizer=opt_name, loss=loss, metrics=metrics, learning_rate=lr)
    except (ValueError, TypeError, KeyError) as err:
        warnings.warn(f"{source}: the model loaded uncompiled ({err}); call compile()",
                      UserWarning, stacklevel=3)


def load_keras_model(path, compile: bool = True):
    """``cnnkit.load_model('model.keras' | 'model.h5')``: the Keras model as a cnnkit model."""
    import json
    path = Path(path)
    if not path.is_file():
        raise KerasFileError(f"no Keras file at {path}")
    if path.suffix == ".keras":
        config, store, _ = read_keras_zip(path)
        compile_config = config.get("compile_config")
    else:
        config, store, _ = read_legacy_h5(path)
        compile_config = None
        import h5py
        with h5py.File(path, "r") as f:
            if "training_config" in f.attrs:
                raw = f.attrs["training_config"]
                compile_config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    try:
        graph = parse_model_config(config, str(path))
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as err:
        if isinstance(err, KerasFileError):
            raise
        raise KerasFileError(f"{path}: the model config is malformed ({type(err).__name__}: {err}); "
                             "the file is corrupt: save it again from Keras") from err
    model = build_model(graph, store, str(path))
    if compile:
        _compile_like_keras(model, compile_config, str(path))
    model.eval()
    return model


def load_keras_weights(model, path) -> None:
    """``model.load_weights('x.weights.h5')`` (Keras 3 or Keras 2 layout, or the weights inside
    a ``.keras`` file) into a cnnkit Sequential or functional model."""
    from ..sequential import Sequential
    path = Path(path)
    if not path.is_file():
        raise KerasFileError(f"no weights file at {path}")
    read = (lambda p: read_keras_zip(p)[1]) if path.suffix.lower() == ".keras" else read_weights_file
    if functional.is_functional(model):
        return functional.load_functional_weights(model, read(path))
    if not isinstance(model, Sequential):
        raise KerasFileError(f"Keras weights load into a cnnkit Sequential or functional model; "
                             f"model '{model.name}' is a {type(model).__name__}")
    if not model.built:
        raise KerasFileError(f"model '{model.name}' is not built yet: give it an input shape "
                             "before load_weights (Keras needs that too)")
    store = read(path)
    layers = list(model.layers)
    paths = _legacy_paths_by_order(layers, store, model.name) if store.legacy else keras3_paths(layers)
    load_layers(layers, paths, store, f"model '{model.name}'")


def _legacy_paths_by_order(layers, store, name: str) -> list[tuple]:
    """Keras 2 ``load_weights`` matches layers with weights in order, not by name: so here."""
    from .convert import converter_for
    try:
        weighted = [layer for layer in layers if converter_for(layer).load is not None]
    except Unsupported as err:
        raise KerasFileError(f"cannot load {store.source} into model '{name}': {err}") from err
    saved = [path for path, arrays in store.arrays.items() if arrays]
    if len(saved) != len(weighted):
        raise KerasFileError(f"{store.source} holds weights for {len(saved)} layers "
                             f"({short_list(['/'.join(p) for p in saved])}) but model '{name}' has "
                             f"{len(weighted)} layers with weights; it is for another architecture")
    by_layer = dict(zip(map(id, weighted), saved))
    return [by_layer.get(id(layer), ("(no weights)",)) for layer in layers]
