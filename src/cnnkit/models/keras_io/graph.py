"""A Keras model config (Sequential or functional, Keras 2 or 3 spelling) -> a graph description.

The graph is plain data: the layers (name, Keras class, Keras config, where its weights
live) and the calls between them (which tensors each call of a layer consumes). A builder
turns it into a cnnkit model; nothing here imports torch or cnnkit layers.

Tensors are named as Keras names them: ``(layer name, call index, output index)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import KerasFileError

TensorRef = tuple  # (layer_name, node_index, tensor_index)
SEQUENTIAL = ("Sequential",)
FUNCTIONAL = ("Functional", "Model")


@dataclass
class LayerSpec:
    name: str
    class_name: str
    config: dict
    path: tuple  # where a Keras 3 file keeps its weights (class-based names, see saved_name)
    legacy_path: tuple  # where a Keras 2 .h5 keeps them (layer names)
    custom: str | None = None  # a user's own class ("mine>Scale"): its code is not in the file


def _custom(spec: dict) -> str | None:
    """Keras 3 names a user's class by ``registered_name`` (None for Keras's own layers)."""
    name = spec.get("registered_name")
    return name if name not in (None, "Functional", "Sequential") else None


def snake_case(name: str) -> str:
    """Keras's ``naming.to_snake_case``: Conv2D -> conv2d, ReLU -> re_lu."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


class SavedNames:
    """Keras 3 names a layer's weights group after its class, counted per container
    (``conv2d``, ``conv2d_1``, ...), whatever the layer's own name."""

    def __init__(self):
        self.used: dict[str, int] = {}

    def __call__(self, class_name: str) -> str:
        base = snake_case(class_name)
        if base in self.used:
            self.used[base] += 1
            return f"{base}_{self.used[base]}"
        self.used[base] = 0
        return base


@dataclass
class Call:
    """One call of a layer: the tensors it reads; it produces ``(layer, index, 0..)``."""

    layer: str
    index: int
    inputs: list  # list[TensorRef]
    as_list: bool = False  # the layer takes a list of tensors (merge layers), not one tensor


@dataclass
class Graph:
    name: str
    layers: dict = field(default_factory=dict)  # name -> LayerSpec, in the file's order
    calls: list = field(default_factory=list)  # list[Call], in topological order
    inputs: list = field(default_factory=list)  # list[(TensorRef, shape without batch)]
    outputs: list = field(default_factory=list)  # list[TensorRef]

    def chain(self) -> list[LayerSpec] | None:
        """The layers in order when the graph is one straight line (Sequential-shaped), else None."""
        if len(self.inputs) != 1 or len(self.outputs) != 1:
            return None
        current = self.inputs[0][0]
        order = []
        for call in self.calls:
            if call.index != 0 or call.inputs != [current]:
                return None
            order.append(self.layers[call.layer])
            current = (call.layer, 0, 0)
        return order if current == tuple(self.outputs[0]) else None


def _shape(batch_shape) -> tuple | None:
    if batch_shape is None:
        return None
    shape = list(batch_shape)[1:]
    if any(s is None for s in shape):
        raise KerasFileError(f"the model's input shape {tuple(shape)} has a variable size (None); "
                             "cnnkit models take a fixed (height, width, channels): rebuild the "
                             "Keras model with keras.Input((H, W, C)) and save it again")
    return tuple(int(s) for s in shape)


def _first_shape(config: dict, layers: list[dict]) -> tuple | None:
    """Input shape of a Sequential from wherever Keras 2 or 3 recorded it."""
    for spec in layers:
        cfg = spec.get("config", {})
        for key in ("batch_shape", "batch_input_shape"):
            if cfg.get(key):
                return _shape(cfg[key])
        if spec.get("build_config", {}).get("input_shape"):
            return _shape(spec["build_config"]["input_shape"])
        break
    if config.get("build_input_shape"):
        return _shape(config["build_input_shape"])
    return None


def parse_model_config(model: dict, source: str) -> Graph:
    """The top-level ``{"class_name": ..., "config": ...}`` of a Keras model file."""
    class_name = model.get("class_name")
    config = model.get("config")
    if class_name in SEQUENTIAL and isinstance(config, list):  # Keras 2.2 and older: the layers
        config = {"name": "sequential", "layers": config}
    if not isinstance(config, dict):
        raise KerasFileError(f"{source}: the model config has no 'config' object; the file is corrupt")
    if class_name in SEQUENTIAL:
        graph = Graph(name=config.get("name") or "sequential")
        shape = _first_shape(config, config.get("layers", []))
        if shape is None and model.get("build_config", {}).get("input_shape"):
            shape = _shape(model["build_config"]["input_shape"])
        if shape is None:
            raise KerasFileError(f"{source}: the Sequential model was saved before it was built "
                                 "(no input shape in the file); build or fit it in Keras, then save")
        graph.inputs = [(("__input__", 0, 0), shape)]
        last = _add_sequential(graph, config.get("layers", []), (), (), ("__input__", 0, 0))
        graph.outputs = [last]
        return graph
    if class_name in FUNCTIONAL:
        return _parse_functional(config, source)
    raise KerasFileError(f"{source}: the model is a {class_name!r}; cnnkit reads Sequential and "
                         "functional Keras models (a subclassed model's Python class is not in the file)")


def _add_sequential(graph: Graph, layers: list[dict], prefix: tuple, legacy_prefix: tuple,
                    current: TensorRef) -> TensorRef:
    """Append a Sequential's layers as a chain; a nested Sequential is inlined."""
    saved = SavedNames()
    for spec in layers:
        class_name, cfg = spec.get("class_name"), spec.get("config", {})
        if class_name == "InputLayer":
            continue
        name = cfg.get("name") or f"layer_{len(graph.layers)}"
        path = prefix + (saved(class_name),)
        if class_name in SEQUENTIAL:
            current = _add_sequential(graph, cfg.get("layers", []), path, legacy_prefix + (name,),
                                      current)
            continue
        if name in graph.layers:
            raise KerasFileError(f"two layers are named {name!r} in the file; layer names must be unique")
        graph.layers[name] = LayerSpec(name, class_name, cfg, path, legacy_prefix + (name,), _custom(spec))
        graph.calls.append(Call(name, 0, [current]))
        current = (name, 0, 0)
    return current


def _tensor_refs(args) -> list[TensorRef]:
    """Keras 3 call arguments -> the tensors they name (nested lists for merge layers)."""
    refs = []
    if isinstance(args, dict):
        if args.get("class_name") == "__keras_tensor__":
            history = args["config"]["keras_history"]
            refs.append((history[0], int(history[1]), int(history[2])))
        return refs
    if isinstance(args, (list, tuple)):
        for a in args:
            refs += _tensor_refs(a)
    return refs


def _node_inputs(node) -> tuple[list[TensorRef], bool]:
    """(tensors read, whether they are passed as one list) of one inbound node."""
    if isinstance(node, dict):  # Keras 3: {"args": [tensor or [tensors]], "kwargs": {...}}
        args = node.get("args", [])
        return _tensor_refs(args), bool(args) and isinstance(args[0], (list, tuple))
    # Keras 2: [[name, node_index, tensor_index, kwargs], ...]
    return [(item[0], int(item[1]), int(item[2])) for item in node], len(node) > 1


def _refs(spec) -> list[TensorRef]:
    """input_layers / output_layers: [[name, i, j], ...] or one [name, i, j]."""
    if spec and isinstance(spec[0], str):
        spec = [spec]
    return [(s[0], int(s[1]), int(s[2])) for s in spec or []]


def _parse_functional(config: dict, source: str) -> Graph:
    graph = Graph(name=config.get("name") or "functional")
    shapes = {}
    saved = SavedNames()  # a functional model counts its InputLayers too
    for spec in config.get("layers", []):
        class_name, cfg = spec.get("class_name"), spec.get("config", {})
        name = spec.get("name") or cfg.get("name")
        path = (saved(class_name),)
        if class_name == "InputLayer":
            shapes[name] = _shape(cfg.get("batch_shape") or cfg.get("batch_input_shape"))
            continue
        graph.layers[name] = LayerSpec(name, class_name, cfg, path, (name,), _custom(spec))
        for index, node in enumerate(spec.get("inbound_nodes", [])):
            graph.calls.append(Call(name, index, *_node_inputs(node)))
    for ref in _refs(config.get("input_layers")):
        if ref[0] not in shapes or shapes[ref[0]] is None:
            raise KerasFileError(f"{source}: input '{ref[0]}' has no shape in the file; the file is corrupt")
        graph.inputs.append((ref, shapes[ref[0]]))
    graph.outputs = _refs(config.get("output_layers"))
    graph.calls = _topological(graph, source)
    return graph


def _topological(graph: Graph, source: str) -> list[Call]:
    """The calls in an order where every input exists before it is read (a layer shared by
    two branches may be listed before the layer feeding its second call)."""
    ready = {ref for ref, _ in graph.inputs}
    pending, ordered = list(graph.calls), []
    while pending:
        runnable = [c for c in pending if all(r in ready for r in c.inputs)]
        if not runnable:
            missing = sorted({r[0] for c in pending for r in c.inputs if r not in ready})
            raise KerasFileError(f"{source}: the graph reads tensors no layer makes "
                                 f"({', '.join(missing[:5])}); the file is corrupt")
        for call in runnable:
            ordered.append(call)
            ready.add((call.layer, call.index, 0))
            pending.remove(call)
    return ordered
