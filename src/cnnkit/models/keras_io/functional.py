"""Keras functional graphs -> cnnkit's functional API (``cnnkit.Input``, layer calls,
``cnnkit.Model(inputs, outputs)``), where this cnnkit has it (``cnnkit.models.functional``).

The graph comes from :mod:`graph` (layers + calls, in an order where inputs exist first);
weights follow each layer's Flatten order along the calls (:func:`convert.graph_orders`).
"""

from __future__ import annotations

import importlib.util

from .convert import graph_orders, load_layers
from .errors import KerasFileError
from .layer_map import Unsupported


def available() -> bool:
    return importlib.util.find_spec("cnnkit.models.functional") is not None


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
