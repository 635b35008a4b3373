"""The functional API: ``cnnkit.Model(inputs, outputs)`` from layers called on ``cnnkit.Input``.

The graph is read as Keras reads it (``keras/src/ops/function.py``'s ``map_graph``): nodes
found depth-first from the outputs, given depths (longest path to an output), layers ordered
by decreasing depth then by first visit. ``forward`` replays the nodes in that order on real
tensors; a layer called twice shares its weights. Saved as JSON of cnnkit layer configs and
connections (``get_config``), rebuilt only from cnnkit's own layer classes.
"""

from __future__ import annotations

import collections
import math

import torch
from torch import nn

from ..data.loader import InMemoryLoader
from ..keras_tensor import KerasTensor, flatten, to_keras_shape
from ..layers import Layer, default_name
from ..layers.merging import InputLayer
from .base import Model
from .sequential import Sequential

__all__ = ["Functional", "map_graph"]


class GraphError(ValueError):
    """Inputs and outputs that do not make a model: a disconnected graph, a bad argument."""


def _build_map(inputs, outputs):
    """Depth-first from the outputs: nodes from inputs to outputs, layers' first-visit order."""
    finished, in_progress = set(), set()
    ordered, layer_index = [], {}

    def visit(tensor):
        node = tensor.node
        if node in finished:
            return
        if node in in_progress:
            raise GraphError(f"the graph has a cycle at layer '{node.layer.name}'")
        layer_index.setdefault(node.layer, len(layer_index))
        in_progress.add(node)
        if not isinstance(node.layer, InputLayer) and not any(tensor is t for t in inputs):
            for t in node.input_tensors:
                visit(t)
        finished.add(node)
        in_progress.discard(node)
        ordered.append(node)

    for out in outputs:
        visit(out)
    return ordered, layer_index


def map_graph(inputs: list, outputs: list):
    """(nodes by decreasing depth, layers in Keras's order) for the graph inputs -> outputs."""
    ordered, layer_index = _build_map(inputs, outputs)
    in_graph = set(ordered)
    node_depth, layer_depth = {}, {}
    for node in reversed(ordered):
        depth = max(node_depth.setdefault(node, 0), layer_depth.get(node.layer, 0))
        layer_depth[node.layer] = depth
        node_depth[node] = depth
        for t in node.input_tensors:
            parent = t.node
            if parent in in_graph:
                node_depth[parent] = max(depth + 1, node_depth.get(parent, 0))
    for t in inputs:  # inputs that no output uses still belong to the model
        if t.node.layer not in layer_depth:
            layer_depth[t.node.layer] = 0
            layer_index[t.node.layer] = -1
            node_depth[t.node] = 0
    nodes_by_depth = collections.defaultdict(list)
    for node, depth in node_depth.items():
        nodes_by_depth[depth].append(node)
    layers_by_depth = collections.defaultdict(list)
    for layer, depth in layer_depth.items():
        layers_by_depth[depth].append(layer)
    layers = []
    for depth in sorted(layers_by_depth, reverse=True):
        layers += sorted(layers_by_depth[depth], key=lambda lay: layer_index[lay])
    nodes = [n for depth in sorted(nodes_by_depth, reverse=True) for n in nodes_by_depth[depth]]
    computable = {id(t) for t in inputs}
    for node in nodes:
        if isinstance(node.layer, InputLayer) and id(node.outputs[0]) not in computable:
            raise GraphError(f"graph disconnected: the outputs depend on input "
                             f"'{node.layer.name or node.outputs[0].name}' "
                             f"{node.outputs[0].shape}, which is not among the model's inputs; "
                             "pass every Input the outputs depend on in inputs=[...]")
        for t in node.input_tensors:
            if id(t) not in computable and not isinstance(node.layer, InputLayer):
                raise GraphError(f"graph disconnected: layer '{node.layer.name}' needs a tensor "
                                 f"({t.name}) that does not come from the model's inputs; pass "
                                 "every Input the outputs depend on in inputs=[...]")
        computable.update(id(t) for t in node.outputs)
    return nodes, layers


def _as_tensor_list(value, what: str) -> list[KerasTensor]:
    tensors = flatten(value)
    if not tensors or len(tensors) != len(flatten_any(value)):
        raise GraphError(f"Model({what}=...) takes the symbolic tensors of the functional API "
                         f"(cnnkit.Input(...) and layer calls on it), got {value!r}")
    return tensors


def flatten_any(value) -> list:
    if isinstance(value, dict):
        return [v for x in value.values() for v in flatten_any(x)]
    if isinstance(value, (list, tuple)):
        return [v for x in value for v in flatten_any(x)]
    return [value]


class Functional(Model):
    """``Model(inputs, outputs, name=...)``: a DAG of layers. Inputs and outputs may be one
    tensor, a list or a dict; ``forward`` takes and returns the same structure."""

    def __init__(self, inputs=None, outputs=None, name: str | None = None, trainable=True,
                 **kwargs):
        super().__init__(module=None, name=name or "functional", output="logits")
        inputs_list = _as_tensor_list(inputs, "inputs")
        outputs_list = _as_tensor_list(outputs, "outputs")
        for t in inputs_list:
            if not isinstance(t.node.layer, InputLayer):
                raise GraphError(f"Model inputs must come from cnnkit.Input(...); {t.name} is the "
                                 f"output of layer '{t.node.layer.name}'")
        self._input_struct, self._output_struct = inputs, outputs
        self._inputs, self._outputs = inputs_list, outputs_list
        nodes, layers = map_graph(inputs_list, outputs_list)
        self._name_counts: dict[str, int] = {}
        named = [lay for lay in layers if isinstance(getattr(lay, "name", None), str) and lay.name]
        for layer in named + sorted((lay for lay in layers if lay not in named),
                                    key=lambda lay: lay.__dict__.get("_keras_call_order", 0)):
            self._name_layer(layer)  # explicit names first, then Keras's order of creation
        self.layers = nn.ModuleList(layers)
        self._run_nodes = [n for n in nodes if not isinstance(n.layer, InputLayer)]
        self.input_shape = to_keras_shape(inputs_list[0].torch_shape)
        self.memory_format = torch.channels_last  # cnnkit layers never assume NCHW strides
        if _takes_raw_pixels(self._inputs, self._run_nodes):
            self.preprocess.scale = 1.0  # the model rescales itself: feed it raw 0..255 pixels
        if not trainable:
            self.trainable = False

    def _name_layer(self, layer: nn.Module) -> None:
        name = getattr(layer, "name", None)
        if not isinstance(name, str) or not name:
            base = "input_layer" if isinstance(layer, InputLayer) else default_name(layer)
            n = self._name_counts.get(base, 0)
            while (f"{base}_{n}" if n else base) in self._name_counts:
                n += 1
            self._name_counts[base] = n + 1
            layer.name = f"{base}_{n}" if n else base
        elif name in self._name_counts:
            raise GraphError(f'the name "{name}" is used twice in the model; all layer names '
                             "must be unique")
        self._name_counts.setdefault(layer.name, 1)

    # -- running ---------------------------------------------------------------------
    def forward(self, inputs):
        return self._run(inputs, logits=False)

    def forward_logits(self, inputs):
        """The output before the last layer's softmax/sigmoid (for a stable loss)."""
        return self._run(inputs, logits=True)

    def _run(self, inputs, logits: bool):
        if len(self._inputs) > 1 and isinstance(inputs, torch.Tensor):
            inputs = self._unpack(inputs)  # packed by _pack for the engine
        given = flatten(inputs) if isinstance(inputs, (list, tuple, dict)) else [inputs]
        if len(given) != len(self._inputs):
            raise ValueError(f"model '{self.name}' takes {len(self._inputs)} inputs, got {len(given)}")
        values = {id(t): self._prepare(x) for t, x in zip(self._inputs, given)}
        last = self._outputs[0].node  # forward_logits: the (single) output's pre-activation
        for node in self._run_nodes:
            args = _fill(node.inputs, values)
            layer = node.layer
            if logits and node is last and isinstance(layer, Layer):
                out = layer.policy_pre_activation(args)
            else:
                out = layer(args, **node.kwargs)
            outs = list(out) if isinstance(out, (list, tuple)) else [out]
            for t, y in zip(node.outputs, outs):
                values[id(t)] = y
        return _fill(self._output_struct, values)

    def _prepare(self, x):
        """uint8 images scaled and normalised by the model's Preprocess; other inputs as given."""
        return self.preprocess(x) if isinstance(x, torch.Tensor) and x.ndim == 4 else x

    @property
    def output_activation(self):
        if len(self._outputs) != 1:
            return None
        layer = self._outputs[0].node.layer
        act = getattr(layer, "activation_name", None)
        return act if act in ("softmax", "sigmoid") else None

    # derived from the output layer (output_activation) and the loss, as a Sequential's is
    output_kind = Sequential.output_kind

    def _num_outputs(self):
        shape = self._outputs[0].torch_shape
        return shape[-1] if len(self._outputs) == 1 and shape else None

    @property
    def inputs(self) -> list[KerasTensor]:
        return list(self._inputs)

    @property
    def outputs(self) -> list[KerasTensor]:
        return list(self._outputs)

    @property
    def output_shapes(self) -> list[tuple]:
        """The torch shape (no batch) of each model output."""
        return [t.torch_shape for t in self._outputs]

    @property
    def output_shape(self):
        """As ``Sequential.output_shape``: the output's shape without batch (torch layout),
        from the graph, running nothing; a list for several outputs."""
        shapes = self.output_shapes
        return shapes[0] if len(shapes) == 1 else shapes

    def symbolic_output_shapes(self, shapes):
        """A functional model called as a layer: the output shapes for these input shapes."""
        given = shapes if isinstance(shapes, list) else [shapes]
        want = [t.torch_shape for t in self._inputs]
        if [tuple(s) for s in given] != want:
            from ..layers import ShapeError, keras_shape
            raise ShapeError(f"model '{self.name}' takes inputs "
                             f"{', '.join(keras_shape(s) for s in want)} but is called on "
                             f"{', '.join(keras_shape(s) for s in given)}")
        outs = [t.torch_shape for t in self._outputs]
        return outs[0] if len(outs) == 1 else outs

    def feature_layer(self):
        convs = [layer for layer in self.layers if hasattr(layer, "conv")]
        return convs[-1] if convs else None

    def _set_input_shape(self, torch_shape: tuple) -> None:
        want = self._inputs[0].torch_shape
        if tuple(torch_shape) != want:
            from ..layers import ShapeError, keras_shape
            raise ShapeError(f"model '{self.name}' takes input {keras_shape(want)}, got "
                             f"{keras_shape(torch_shape)}")
        super()._set_input_shape(torch_shape)

    def _one_output_only(self, what: str) -> None:
        if len(self._outputs) > 1:
            raise NotImplementedError(
                f"{what}() on model '{self.name}' with {len(self._outputs)} outputs: cnnkit's "
                "engine trains one output (one loss) so far; predict() returns several")

    # Several inputs travel through the one-tensor engine packed side by side: each input
    # flattened to (N, size) in float (uint8 images scaled by the model's Preprocess), and
    # _run splits them again.
    def _pack(self, x) -> torch.Tensor:
        from ..data.loader import as_images
        arrays = [x[t.node.layer.name] for t in self._inputs] if isinstance(x, dict) else list(x)
        if len(arrays) != len(self._inputs):
            raise ValueError(f"model '{self.name}' takes {len(self._inputs)} inputs, got {len(arrays)}")
        tensors = [as_images(a, t.torch_shape) for a, t in zip(arrays, self._inputs)]
        if len({len(t) for t in tensors}) != 1:
            raise ValueError(f"model '{self.name}': its inputs have different numbers of samples "
                             f"({', '.join(str(len(t)) for t in tensors)})")
        return torch.cat([self.preprocess.to_float(t).reshape(len(t), -1) for t in tensors], 1)

    def _unpack(self, x: torch.Tensor) -> list[torch.Tensor]:
        sizes = [math.prod(t.torch_shape) for t in self._inputs]
        parts = torch.split(x, sizes, dim=1)
        out = [p.reshape(len(x), *t.torch_shape) for p, t in zip(parts, self._inputs)]
        return [o.contiguous(memory_format=torch.channels_last) if o.ndim == 4 else o for o in out]

    def _packed_batches(self, x, y, batch_size, shuffle=False, seed=None):
        from ..data.loader import as_labels
        device = self.device or next(iter(self.parameters()), torch.zeros(())).device
        return InMemoryLoader(self._pack(x), as_labels(y), batch_size=batch_size,
                              shuffle=shuffle, seed=seed, device=device)

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, seed=None, **kwargs):
        self._one_output_only("fit")
        if len(self._inputs) == 1:
            return super().fit(x, y, batch_size=batch_size, epochs=epochs, verbose=verbose,
                               callbacks=callbacks, validation_split=validation_split,
                               validation_data=validation_data, shuffle=shuffle, seed=seed,
                               **kwargs)
        if validation_split:
            raise NotImplementedError("validation_split with several inputs: pass "
                                      "validation_data=([x1, x2], y) instead")
        refused = [k for k in ("sample_weight", "augment") if kwargs.get(k) is not None]
        if refused:
            raise NotImplementedError(f"{', '.join(refused)} with several inputs is not supported "
                                      "yet; put augmentation layers inside the model instead")
        batch_size = batch_size or 32
        train = self._packed_batches(x, y, batch_size, shuffle=shuffle, seed=seed)
        val = (self._packed_batches(*validation_data, max(batch_size, 256))
               if validation_data is not None else None)
        return super().fit(train, epochs=epochs, verbose=verbose, callbacks=callbacks,
                           validation_data=val, **kwargs)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", return_dict=False):
        self._one_output_only("evaluate")
        if len(self._inputs) > 1:
            x, y = self._packed_batches(x, y, batch_size or 256), None
        return super().evaluate(x, y, batch_size=batch_size, verbose=verbose,
                                return_dict=return_dict)

    def predict(self, x, batch_size=None, verbose=0):
        """As ``Model.predict``; a model with several inputs takes a list (or dict by input
        name) of arrays, and several outputs come back as a list."""
        if len(self._inputs) == 1 and len(self._outputs) == 1:
            return super().predict(x, batch_size, verbose)
        from ..data.loader import as_images
        from .subclass import keras_outputs
        arrays = [x[t.node.layer.name] for t in self._inputs] if isinstance(x, dict) else list(
            x if isinstance(x, (list, tuple)) else [x])
        if len(arrays) != len(self._inputs):
            raise ValueError(f"model '{self.name}' takes {len(self._inputs)} inputs, got {len(arrays)}")
        tensors = [as_images(a, t.torch_shape) for a, t in zip(arrays, self._inputs)]
        device = next(iter(self.parameters()), torch.zeros(())).device
        step = batch_size or 256
        was = self.training
        self.eval()
        outs = []
        try:
            with torch.no_grad():
                for i in range(0, len(tensors[0]), step):
                    out = self([t[i:i + step].to(device) for t in tensors])
                    outs.append([o.float().cpu() for o in (out if isinstance(out, list) else [out])])
        finally:
            self.train(was)
        joined = [keras_outputs(self, torch.cat(parts).numpy()) for parts in zip(*outs)]
        return joined[0] if len(joined) == 1 else joined

    # -- config ----------------------------------------------------------------------
    def get_config(self) -> dict:
        """Layers (class name + config) and, per layer, the calls made on it (inputs as
        [layer name, node index, tensor index]); inputs and outputs the same way."""
        layers = []
        for layer in self.layers:
            if not hasattr(layer, "get_config"):
                raise TypeError(f"layer '{layer.name}' ({type(layer).__name__}) has no get_config(); "
                                "a functional model can only be saved whole when every layer is a "
                                "cnnkit layer. Save weights with save_weights() instead")
            nodes = [n for n in layer.__dict__.get("_keras_nodes", [])
                     if n in self._run_nodes]
            layers.append({"class_name": type(layer).__name__, "name": layer.name,
                           "config": layer.get_config(),
                           "trainable": bool(getattr(layer, "trainable", True)),
                           "inbound_nodes": [_node_config(n) for n in nodes]})
        order = [[n.layer.name, _node_index(n)] for n in self._run_nodes]
        return {"name": self.name, "layers": layers, "node_order": order,
                "input_layers": _structure_config(self._input_struct),
                "output_layers": _structure_config(self._output_struct)}

    @classmethod
    def from_config(cls, config: dict) -> "Functional":
        """Rebuild the graph from ``get_config``: cnnkit layer classes only, calls replayed."""
        built = {}
        for spec in config["layers"]:
            built[spec["name"]] = _layer_from_config(spec)
            if spec.get("trainable") is False:  # a frozen base stays frozen
                built[spec["name"]].trainable = False
        tensors = {}  # (layer name, node index) -> output KerasTensors
        for name, layer in built.items():
            if isinstance(layer, InputLayer):
                tensors[(name, 0)] = [layer.output]
        calls = {spec["name"]: spec["inbound_nodes"] for spec in config["layers"]}
        for name, node_index in config["node_order"]:
            spec = calls[name][node_index]
            args = _unfill(spec["args"], tensors)
            out = built[name](args, **spec.get("kwargs", {}))
            tensors[(name, node_index)] = list(out) if isinstance(out, (list, tuple)) else [out]
        inputs = _unfill(config["input_layers"], tensors)
        outputs = _unfill(config["output_layers"], tensors)
        return cls(inputs, outputs, name=config.get("name"))


_FUNCTIONAL_SUBCLASSES: dict[type, type] = {}


def as_functional_subclass(model, inputs, outputs, name=None) -> None:
    """``class Net(cnnkit.Model)`` whose ``__init__`` calls ``super().__init__(inputs,
    outputs)``, as Keras allows: the instance's class gains Functional as a base."""
    cls = type(model)
    if cls not in _FUNCTIONAL_SUBCLASSES:
        _FUNCTIONAL_SUBCLASSES[cls] = type(cls.__name__, (cls, Functional), {
            "__module__": cls.__module__, "__qualname__": cls.__qualname__})
    model.__class__ = _FUNCTIONAL_SUBCLASSES[cls]
    Functional.__init__(model, inputs, outputs, name=name or _snake_name(cls.__name__))


def _snake_name(name: str) -> str:
    import re
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _augmentation_like(layer) -> bool:
    from .sequential import Sequential
    if isinstance(layer, Sequential):
        return len(layer.layers) > 0 and all(_augmentation_like(m) for m in layer.layers)
    return type(layer).__module__.endswith(("data.augment", "data.augment_layers"))


def _takes_raw_pixels(inputs, nodes) -> bool:
    """The graph starts with ``Rescaling`` (after augmentation layers only), as a Sequential
    that starts with one: it wants raw pixels, so cnnkit's automatic 1/255 is switched off."""
    from ..layers import Rescaling
    from .sequential import Sequential
    consumers: dict[int, list] = {}
    for node in nodes:
        for t in node.input_tensors:
            consumers.setdefault(id(t), []).append(node)
    frontier = list(inputs)
    while frontier:
        t = frontier.pop()
        for node in consumers.get(id(t), []):
            layer = node.layer
            if isinstance(layer, Rescaling) or (isinstance(layer, Sequential) and not
                                                _augmentation_like(layer) and
                                                layer.preprocess.scale == 1.0):
                return True
            if _augmentation_like(layer):
                frontier += node.outputs
    return False


def _fill(structure, values):
    if isinstance(structure, KerasTensor):
        return values[id(structure)]
    if isinstance(structure, dict):
        return {k: _fill(v, values) for k, v in structure.items()}
    if isinstance(structure, (list, tuple)):
        return [_fill(v, values) for v in structure]
    return structure


def _node_index(node) -> int:
    return node.layer.__dict__["_keras_nodes"].index(node)


def _tensor_ref(t: KerasTensor) -> list:
    return [t.node.layer.name, _node_index(t.node), t.index]


def _structure_config(structure):
    if isinstance(structure, KerasTensor):
        return {"tensor": _tensor_ref(structure)}
    if isinstance(structure, dict):
        return {"dict": {k: _structure_config(v) for k, v in structure.items()}}
    if isinstance(structure, (list, tuple)):
        return {"list": [_structure_config(v) for v in structure]}
    raise GraphError(f"cannot save a call argument of type {type(structure).__name__}")


def _node_config(node) -> dict:
    kwargs = {k: v for k, v in node.kwargs.items() if isinstance(v, (bool, int, float, str))}
    return {"args": _structure_config(node.inputs), "kwargs": kwargs}


def _unfill(spec, tensors):
    if "tensor" in spec:
        name, node_index, index = spec["tensor"]
        return tensors[(name, node_index)][index]
    if "dict" in spec:
        return {k: _unfill(v, tensors) for k, v in spec["dict"].items()}
    return [_unfill(v, tensors) for v in spec["list"]]


def _layer_from_config(spec: dict) -> nn.Module:
    """A layer from its saved class name: cnnkit's layer classes and models only."""
    from ..layers import layer_from_config
    from ..layers.merging import MERGE_CLASSES
    from .sequential import Sequential
    name, config = spec["class_name"], dict(spec["config"])
    if name == "InputLayer":
        batch_shape = config.pop("batch_shape")
        return InputLayer(shape=batch_shape[1:], **config)
    if name in MERGE_CLASSES:
        return MERGE_CLASSES[name](**config)
    if name == "Sequential":
        layer = Sequential.from_config(config)
    elif name == "Functional":
        layer = Functional.from_config(config)
    else:
        return layer_from_config(name, config)
    layer.name = spec["name"]
    return layer

