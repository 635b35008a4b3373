"""Keras functional graphs -> cnnkit's functional API (``cnnkit.Input``, layer calls,
``cnnkit.Model(inputs, outputs)``), where this cnnkit has it (``cnnkit.models.functional``).

The graph comes from :mod:`graph` (layers + calls, in an order where inputs exist first);
weights follow each layer's Flatten order along the calls (:func:`convert.graph_orders`).
"""

from __future__ import annotations


from .convert import graph_orders, load_layers
from .errors import KerasFileError
from .layer_map import Unsupported


def build_functional(graph, layer_by_name: dict, store, source: str):
    """The cnnkit functional model of ``graph`` (layers already built from the file), weights loaded."""
    import cnnkit
    from ... import layers as L
    tensors = {ref: L.Input(shape, name=ref[0]) for ref, shape in graph.inputs}
    try:
        for call in graph.calls:
            args = [tensors[ref] for ref in call.inputs]
            out = layer_by_name[call.layer](args if call.as_list else args[0])
            tensors[(call.layer, call.index, 0)] = out
        inputs = [tensors[ref] for ref, _ in graph.inputs]
        outputs = [tensors[ref] for ref in graph.outputs]
        model = cnnkit.Model(inputs[0] if len(inputs) == 1 else inputs,
                             outputs[0] if len(outputs) == 1 else outputs, name=graph.name)
    except (ValueError, TypeError, KeyError) as err:  # ShapeError is a ValueError
        raise KerasFileError(f"cannot rebuild {source} in cnnkit: {err}") from err
    specs = list(graph.layers.values())
    try:
        orders = graph_orders(graph.calls, layer_by_name)
    except Unsupported as err:
        raise KerasFileError(f"cannot load {store.source}: {err}") from err
    load_layers([layer_by_name[s.name] for s in specs],
                [s.legacy_path if store.legacy else s.path for s in specs], store,
                f"the model in {source}", orders=[orders.get(s.name) for s in specs])
    return model


# -- writing: a cnnkit functional model -> Keras 3's functional config ------------------------
def is_functional(model) -> bool:
    return type(model).__name__ == "Functional" and hasattr(model, "get_config")


def _keras_tensor(by_name: dict, ref) -> dict:
    name, node_index, index = ref
    shape = by_name[name]._keras_nodes[node_index].outputs[index].shape  # (None, H, W, C)
    return {"class_name": "__keras_tensor__",
            "config": {"shape": list(shape), "dtype": "float32", "keras_history": [name, node_index, index]}}


def _args(structure, by_name: dict):
    """cnnkit's saved call structure ({"tensor": ref} / {"list": [...]}) -> Keras 3's."""
    if "tensor" in structure:
        return _keras_tensor(by_name, structure["tensor"])
    if "list" in structure:
        return [_args(s, by_name) for s in structure["list"]]
    raise Unsupported("a call argument that is neither a tensor nor a list of tensors")


def _refs_of(structure) -> list:
    if "tensor" in structure:
        return [tuple(structure["tensor"])]
    return [r for s in structure.get("list", []) for r in _refs_of(s)]


def _io(structure) -> list:
    refs = [list(r) for r in _refs_of(structure)]
    return refs[0] if "tensor" in structure else refs


def _is_input(layer) -> bool:
    return type(layer).__name__ == "InputLayer"


def _calls(cfg: dict) -> list:
    """The model's calls (graph.Call) in the order the model runs them."""
    from .graph import Call
    calls = [Call(spec["name"], i, _refs_of(node["args"]), "list" in node["args"])
             for spec in cfg["layers"] for i, node in enumerate(spec["inbound_nodes"])]
    position = {(name, index): i for i, (name, index) in enumerate(cfg["node_order"])}
    return sorted(calls, key=lambda c: position.get((c.layer, c.index), len(position)))


def _weighted_layers(model, cfg: dict):
    """[(Keras 3 weights path, layer, Flatten order)] for the layers that are not inputs."""
    from .graph import SavedNames
    by_name = {layer.name: layer for layer in model.layers}
    orders = graph_orders(_calls(cfg), by_name)
    saved = SavedNames()  # Keras 3 counts the InputLayers too, in the model's layer order
    paths = [(saved(type(layer).__name__),) for layer in model.layers]
    return [(p, layer, orders.get(layer.name)) for p, layer in zip(paths, model.layers)
            if not _is_input(layer)]


def load_functional_weights(model, store) -> None:
    """``model.load_weights('x.weights.h5')`` for a cnnkit functional model (Keras 3 layout)."""
    if store.legacy:
        raise KerasFileError(f"{store.source} is a Keras 2 weights file; cnnkit loads those into "
                             "Sequential models only. Load the whole Keras 2 model with load_model")
    try:
        weighted = _weighted_layers(model, model.get_config())
    except Unsupported as err:
        raise KerasFileError(f"cannot load {store.source} into model '{model.name}': {err}") from err
    load_layers([layer for _, layer, _ in weighted], [p for p, _, _ in weighted], store,
                f"model '{model.name}'", orders=[o for _, _, o in weighted])


def functional_plan(model, layer_entry):
    """(Keras config, [(weights path, layer, arrays)]) of a cnnkit functional model;
    ``layer_entry(layer, torch input shape)`` is the writer's per-layer config."""
    from .convert import converter_for, dump_layers
    cfg = model.get_config()
    by_name = {layer.name: layer for layer in model.layers}
    entries = []
    for spec in cfg["layers"]:
        layer = by_name[spec["name"]]
        if _is_input(layer):
            entries.append({"module": "keras.layers", "class_name": "InputLayer",
                            "config": {"batch_shape": [None, *layer.shape], "dtype": "float32",
                                       "sparse": False, "ragged": False, "name": layer.name,
                                       "optional": False},
                            "registered_name": None, "name": layer.name, "inbound_nodes": []})
            continue
        converter_for(layer)  # Unsupported names a layer with no Keras equivalent
        nodes = spec["inbound_nodes"]
        shapes = [_keras_tensor(by_name, r)["config"]["shape"] for r in _refs_of(nodes[0]["args"])] \
            if nodes else [None]
        entry = layer_entry(layer, ())
        if "build_config" in entry:  # a merge layer records the list of its input shapes
            entry["build_config"] = {"input_shape": shapes if "list" in nodes[0]["args"] else shapes[0]}
        entry["name"] = layer.name
        entry["inbound_nodes"] = [{"args": [_args(n["args"], by_name)], "kwargs": dict(n.get("kwargs", {}))}
                                  for n in nodes]
        entries.append(entry)
    config = {"module": "keras.src.models.functional", "class_name": "Functional",
              "config": {"name": model.name, "trainable": True, "layers": entries,
                         "input_layers": _io(cfg["input_layers"]),
                         "output_layers": _io(cfg["output_layers"])},
              "registered_name": "Functional", "build_config": {"input_shape": None}}
    weighted = _weighted_layers(model, cfg)
    arrays = dump_layers([layer for _, layer, _ in weighted], orders=[o for _, _, o in weighted])
    weights = [(p, layer, a) for (p, layer, _), a in zip(weighted, arrays)]
    saved_inputs = [(p, layer, []) for p, layer in _input_paths(model)]
    return config, weights + saved_inputs


def _input_paths(model):
    from .graph import SavedNames
    saved = SavedNames()
    paths = [(saved(type(layer).__name__),) for layer in model.layers]
    return [(p, layer) for p, layer in zip(paths, model.layers) if _is_input(layer)]
