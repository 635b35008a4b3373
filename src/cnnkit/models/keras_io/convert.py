"""Weights between a cnnkit Sequential and a Keras weight store, layer by layer.

Walks the layers in order, keeping the Flatten order of the features (see layer_map), so a
Dense after a Flatten gets its kernel rows in cnnkit's (C, H, W) order.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .errors import KerasFileError, short_list
from .graph import SavedNames
from .layer_map import Unsupported, converter_named, keras_class_name


def converter_for(layer: nn.Module):
    conv = converter_named(keras_class_name(layer))
    if conv is None:
        raise Unsupported(f"no Keras equivalent for a {type(layer).__name__}")
    return conv


def _flatten_order(layer: nn.Module) -> np.ndarray | None:
    """Where each of the Flatten's outputs sits in Keras's (H, W, C) flatten order.

    Asked of the layer itself (it runs on a map holding each pixel's Keras index), so it holds
    for a Flatten that flattens (C, H, W) as NCHW does and for one that flattens channels-last.
    None when the two orders agree."""
    shape = tuple(getattr(layer, "input_shape_", None) or ())
    if len(shape) != 3:
        return None
    c, h, w = shape
    keras_index = torch.arange(h * w * c, dtype=torch.float64).reshape(1, h, w, c).permute(0, 3, 1, 2)
    with torch.no_grad():
        order = layer(keras_index).reshape(-1).long().numpy()
    return None if np.array_equal(order, np.arange(order.size)) else order


def step_order(layer: nn.Module, in_orders: list):
    """(order this layer's weights are permuted by, order of its output) from its inputs'."""
    conv = converter_for(layer)
    if conv.order == "merge":
        pending = [o for o in in_orders if o is not None]
        if not pending:
            return None, None
        if len(pending) == len(in_orders) and all(np.array_equal(o, pending[0]) for o in pending):
            return None, pending[0]
        raise Unsupported(f"layer '{layer.name}' ({keras_class_name(layer)}) merges flattened "
                          "features in different orders")
    order = in_orders[0] if in_orders else None
    if conv.order == "none":
        if order is not None:
            raise Unsupported(f"layer '{layer.name}' ({keras_class_name(layer)}) follows a Flatten; "
                              "cnnkit converts only Dense, BatchNormalization, Dropout and "
                              "activations there")
        return None, None
    if conv.order == "flatten":
        return None, order if order is not None else _flatten_order(layer)
    if conv.order == "keep":
        return order, order
    return order, None  # "consume": Dense reads it and outputs in Keras's order


def feature_orders(layers: list[nn.Module]) -> list:
    """The Flatten order each layer of a Sequential permutes its weights by (None: as Keras)."""
    orders, order = [], None
    for layer in layers:
        load_order, order = step_order(layer, [order])
        orders.append(load_order)
    return orders


def graph_orders(calls, layer_by_name: dict) -> dict:
    """The same for a graph: layer name -> order, walking the calls (a shared layer must see
    the same order at every call)."""
    tensor_order, layer_order = {}, {}
    for call in calls:
        layer = layer_by_name[call.layer]
        load_order, out = step_order(layer, [tensor_order.get(r) for r in call.inputs])
        if call.layer in layer_order and not _same(layer_order[call.layer], load_order):
            raise Unsupported(f"shared layer '{call.layer}' sees features in different orders")
        layer_order[call.layer] = load_order
        tensor_order[(call.layer, call.index, 0)] = out
    return layer_order


def _same(a, b) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))


def keras3_paths(layers: list[nn.Module]) -> list[tuple]:
    """Where Keras 3 keeps each layer's weights: its class name, counted (conv2d, conv2d_1)."""
    names = SavedNames()
    return [(names(keras_class_name(layer)),) for layer in layers]


def load_layers(layers: list[nn.Module], paths: list[tuple], store, what: str,
                orders: list | None = None) -> None:
    """Copy the store's arrays into the layers (``orders``: each one's Flatten order, a
    Sequential's by default); every problem named in one line."""
    problems = []
    try:
        orders = feature_orders(layers) if orders is None else orders
    except Unsupported as err:
        raise KerasFileError(f"cannot load {store.source} into {what}: {err}") from err
    before = [{k: v.detach().clone() for k, v in layer.state_dict().items()} for layer in layers]
    for layer, path, order in zip(layers, paths, orders):
        conv = converter_for(layer)
        arrays = store.get(path)
        if conv.load is None:
            if arrays:
                problems.append(f"'{layer.name}' has no weights but the file holds {len(arrays)} at "
                                f"{'/'.join(path)}")
            continue
        if path not in store:
            problems.append(f"'{layer.name}' ({keras_class_name(layer)}): no weights at "
                            f"{'/'.join(path)} in the file")
            continue
        try:
            conv.load(layer, arrays, order)
        except Unsupported as err:
            problems.append(f"'{layer.name}' ({keras_class_name(layer)}): {err}")
    used = set(map(tuple, paths))
    unused = ["/".join(p) for p, arrays in store.arrays.items() if arrays and p not in used]
    if unused:
        problems.append(f"the file has weights for layers the model lacks ({short_list(unused)})")
    if problems:
        for layer, state in zip(layers, before):  # a refused file leaves the model as it was
            layer.load_state_dict(state)
        raise KerasFileError(f"weights in {store.source} do not fit {what}: {'; '.join(problems[:8])}")


def dump_layers(layers: list[nn.Module], orders: list | None = None) -> list[list[np.ndarray]]:
    """Each layer's weights as Keras arrays, in Keras's order and layouts."""
    orders = feature_orders(layers) if orders is None else orders
    out = []
    for layer, order in zip(layers, orders):
        conv = converter_for(layer)
        out.append(conv.dump(layer, order) if conv.dump is not None else [])
    return out
