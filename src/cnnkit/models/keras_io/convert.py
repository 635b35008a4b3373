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
from .layer_map import KERAS_LAYERS, Unsupported, keras_class_name


def converter_for(layer: nn.Module):
    conv = KERAS_LAYERS.get(keras_class_name(layer))
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


def feature_orders(layers: list[nn.Module]) -> list:
    """The Flatten order of each layer's input (None where cnnkit and Keras agree)."""
    orders, order = [], None
    for layer in layers:
        conv = converter_for(layer)
        if order is not None and conv.order == "none":
            raise Unsupported(f"layer '{layer.name}' ({keras_class_name(layer)}) follows a Flatten; "
                              "cnnkit converts only Dense, BatchNormalization, Dropout and "
                              "activations there")
        orders.append(order)
        if conv.order == "flatten":
            order = order if order is not None else _flatten_order(layer)
        elif conv.order != "keep":
            order = None
    return orders


def keras3_paths(layers: list[nn.Module]) -> list[tuple]:
    """Where Keras 3 keeps each layer's weights: its class name, counted (conv2d, conv2d_1)."""
    names = SavedNames()
    return [(names(keras_class_name(layer)),) for layer in layers]


def load_layers(layers: list[nn.Module], paths: list[tuple], store, what: str) -> None:
    """Copy the store's arrays into the layers; every problem named in one line."""
    problems = []
    try:
        orders = feature_orders(layers)
    except Unsupported as err:
        raise KerasFileError(f"cannot load {store.source} into {what}: {err}") from err
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
        raise KerasFileError(f"weights in {store.source} do not fit {what}: {'; '.join(problems[:8])}")


def dump_layers(layers: list[nn.Module]) -> list[list[np.ndarray]]:
    """Each layer's weights as Keras arrays, in Keras's order and layouts."""
    orders = feature_orders(layers)
    out = []
    for layer, order in zip(layers, orders):
        conv = converter_for(layer)
        out.append(conv.dump(layer, order) if conv.dump is not None else [])
    return out
