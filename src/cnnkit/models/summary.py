"""``summary()`` as Keras 3 prints it (``keras/src/utils/summary_utils.py``), for every model.

The table is drawn by ``rich``, as Keras draws it, with Keras's column positions and widths:
88 characters (108 with the functional API's "Connected to" column), or the terminal's width
less 4 where that is narrower. Long names wrap at spaces; a single word longer than its cell
ends in "…", as in Keras. Names and shapes are Keras's: layer names, channels-last shapes
``(None, H, W, C)``. A zoo network or a wrapped PyTorch module is listed by its leaf modules
under Keras's names (``Conv2d`` -> ``conv2d (Conv2D)``, ``Linear`` -> ``dense (Dense)``).
"""

from __future__ import annotations

import io
import re
import shutil

import torch
from torch import nn

from ..keras_layout import weight_specs
from ..layers import Layer, keras_shape

__all__ = ["summary_text", "readable_size"]

# torch module class -> the Keras layer class it stands for
KERAS_TYPES = {
    "Conv2d": "Conv2D", "ConvTranspose2d": "Conv2DTranspose", "Linear": "Dense",
    "BatchNorm1d": "BatchNormalization", "BatchNorm2d": "BatchNormalization",
    "MaxPool2d": "MaxPooling2D", "AvgPool2d": "AveragePooling2D",
    "AdaptiveAvgPool2d": "GlobalAveragePooling2D", "AdaptiveMaxPool2d": "GlobalMaxPooling2D",
    "Dropout": "Dropout", "Dropout2d": "SpatialDropout2D", "Flatten": "Flatten",
    "ReLU": "ReLU", "LeakyReLU": "LeakyReLU", "PReLU": "PReLU", "ELU": "ELU",
    "Softmax": "Softmax", "LayerNorm": "LayerNormalization", "GroupNorm": "GroupNormalization",
    "GELU": "Activation", "SiLU": "Activation", "Sigmoid": "Activation", "Tanh": "Activation",
    "Hardswish": "Activation", "Hardsigmoid": "Activation", "Identity": "Identity",
    "ZeroPad2d": "ZeroPadding2D", "Upsample": "UpSampling2D", "ZooModel": "Functional",
}


def readable_size(num_bytes: float) -> str:
    """Keras's size format: 654.54 KB, with 1024 per step."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if num_bytes / 1024 < 1:
            return f"{num_bytes:.2f} {unit}"
        num_bytes /= 1024
    return f"{num_bytes:.2f} PB"


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower().replace("2_d", "2d")


class _Row:
    def __init__(self, name, kind, shape, params, connected=None, layer=None):
        self.name, self.kind, self.shape, self.params, self.connected = (
            name, kind, shape, params, connected)
        self.trainable = _trainable_cell(layer) if layer is not None else "-"
        self.layer = layer


def _weight_count(module: nn.Module) -> int:
    return sum(spec.tensor.numel() for spec in weight_specs(module))


def _params_text(layer: nn.Module) -> str:
    if isinstance(layer, Layer) and not layer.built:
        return "0 (unbuilt)"
    return f"{_weight_count(layer):,}"


def _shape_text(torch_shape) -> str:
    if torch_shape is None:
        return "?"
    if isinstance(torch_shape, list):
        return "[" + ", ".join(keras_shape(s) for s in torch_shape) + "]"
    return keras_shape(torch_shape)


def _kind(module: nn.Module) -> str:
    name = type(module).__name__
    return KERAS_TYPES.get(name, name)


# -- rows per model kind -----------------------------------------------------------------
def _sequential_rows(model):
    """One row per layer; before the input shape is known, '?' and '0 (unbuilt)' as Keras."""
    shapes = list(model.output_shapes) + [None] * (len(model.layers) - len(model.output_shapes))
    return [_Row(layer.name, _kind(layer), _shape_text(shape), _params_text(layer), layer=layer)
            for layer, shape in zip(model.layers, shapes)]


def _functional_is_sequential_like(model) -> bool:
    """Keras's test: one node per depth, one input per node, no layer called twice."""
    from .functional import map_graph
    nodes, _ = map_graph(model._inputs, model._outputs)
    if len(model._inputs) > 1 or len(model._outputs) > 1:
        return False
    for node in nodes:
        if len(node.input_tensors) > 1:
            return False
    return len({id(n.layer) for n in nodes}) == len(nodes) and _chain(nodes)


def _chain(nodes) -> bool:
    """Every node feeds the next one only (a straight line)."""
    for prev, node in zip(nodes, nodes[1:]):
        if not node.input_tensors or node.input_tensors[0].node is not prev:
            return False
    return True


def _functional_rows(model, with_connections: bool):
    from .functional import _node_index
    rows = []
    in_model = set(model._run_nodes) | {t.node for t in model._inputs}
    for layer in model.layers:
        nodes = [n for n in layer.__dict__.get("_keras_nodes", []) if n in in_model]
        shapes = [t.torch_shape for n in nodes[-1:] for t in n.outputs]
        shape = _shape_text(shapes[0] if len(shapes) == 1 else shapes) if shapes else "?"
        connected = None
        if with_connections:
            refs = [f"{t.node.layer.name}[{_node_index(t.node)}][{t.index}]"
                    for n in nodes for t in n.input_tensors]
            connected = ", ".join(refs) or "-"
        rows.append(_Row(layer.name, _kind(layer), shape, _params_text(layer), connected, layer))
    return rows


def _traced_shapes(model, modules: list[tuple[str, nn.Module]]) -> dict:
    """Output shape (torch layout, no batch) of each module, from one zero batch."""
    shapes = {}
    if getattr(model, "input_shape", None) is None:
        return shapes

    def recorder(key):
        def hook(module, inputs, output):  # returns None: the output passes unchanged
            if isinstance(output, torch.Tensor):
                shapes.setdefault(key, tuple(output.shape[1:]))
        return hook

    hooks = [m.register_forward_hook(recorder(key)) for key, m in modules]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            dev = next(iter(model.parameters()), torch.zeros(())).device
            model(torch.zeros((1, *model.torch_input_shape), device=dev))
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    return shapes


def _subclassed_rows(model):
    layers = list(model.layers)
    keyed = [(str(i), layer) for i, layer in enumerate(layers)]
    shapes = _traced_shapes(model, keyed)
    return [_Row(getattr(layer, "name", None) or _snake(_kind(layer)), _kind(layer),
                 _shape_text(shapes.get(key)), _params_text(layer), layer=layer)
            for key, layer in keyed]


def _leaves(module: nn.Module):
    """A plain module's layers: leaf modules, cnnkit layers and nested cnnkit models."""
    from .base import Model
    for name, child in module.named_children():
        if name == "preprocess":
            continue
        if isinstance(child, (Layer, Model)) or not any(True for _ in child.children()):
            yield child
        else:
            yield from _leaves(child)


def _module_rows(model):
    """A zoo network or a wrapped module: its leaf modules with Keras names and shapes."""
    target = model.module if getattr(model, "module", None) is not None else model
    leaves, seen = [], set()
    for leaf in _leaves(target):
        if id(leaf) not in seen:
            seen.add(id(leaf))
            leaves.append(leaf)
    keyed = [(str(i), leaf) for i, leaf in enumerate(leaves)]
    shapes = _traced_shapes(model, keyed)
    counts: dict[str, int] = {}
    rows = []
    for key, leaf in keyed:
        kind = _kind(leaf)
        name = getattr(leaf, "name", None)
        if not isinstance(name, str) or not name:
            base = _snake(kind)
            n = counts.get(base, 0)
            counts[base] = n + 1
            name = base if n == 0 else f"{base}_{n}"
        rows.append(_Row(name, kind, _shape_text(shapes.get(key)), _params_text(leaf), layer=leaf))
    return rows


def _model_rows(model, with_connections: bool = False):
    """The rows of a Keras-built model's own layers (None for other modules)."""
    from .base import Model
    from .functional import Functional
    from .sequential import Sequential
    if isinstance(model, Sequential):
        return _sequential_rows(model)
    if isinstance(model, Functional):
        return _functional_rows(model, with_connections)
    if isinstance(model, Model) and model.module is None:
        return _subclassed_rows(model)
    return None


def _expanded(rows, with_connections: bool, level: int = 1):
    """Keras's ``expand_nested``: a nested model's layers below its row, prefixed "└ "."""
    out = []
    for row in rows:
        out.append(row)
        inner = _model_rows(row.layer, with_connections) if row.layer is not None else None
        if inner:
            for sub in inner:
                sub.name = "   " * level + "└ " + sub.name
                sub.connected = "-" if with_connections else None  # not the outer graph's
            out += _expanded(inner, with_connections, level + 1)
    return out


def _rows(model):
    """(rows, sequential_like) for any cnnkit model."""
    from .functional import Functional
    from .sequential import Sequential
    if isinstance(model, Sequential):
        return _sequential_rows(model), True
    if isinstance(model, Functional):
        plain = _functional_is_sequential_like(model)
        return _functional_rows(model, with_connections=not plain), plain
    if getattr(model, "module", None) is None:
        return _subclassed_rows(model), True
    return _module_rows(model), True


# -- drawing -------------------------------------------------------------------------------
def _column_widths(positions, line_length):
    widths, current = [], 0
    for pos in positions:
        width = int(pos * line_length) - current if pos <= 1 else int(pos) - current
        if width < 4:
            raise ValueError("the line is too short to print the summary: give a larger "
                             "line_length")
        widths.append(width)
        current += width
    return widths


def _trainable_cell(layer: nn.Module) -> str:
    specs = weight_specs(layer)
    if not specs:
        return "-"
    return "Y" if getattr(layer, "trainable", any(s.trainable for s in specs)) else "N"


def _optimizer_count(model) -> tuple[int, int] | None:
    """(count, bytes) of the optimizer's variables as Keras counts them once it has stepped:
    iteration (int64) and learning rate (float32), plus each per-weight slot (Adam's
    momentum and velocity, ...); None before the first training step."""
    opt = getattr(model, "optimizer", None)
    if not getattr(model, "compiled", False) or opt is None or not (opt.state or model.timing):
        return None
    slots = 0
    for group in opt.param_groups:
        for p in group["params"]:
            state = opt.state.get(p, {})
            slots += sum(v.numel() for k, v in state.items()
                         if k != "step" and isinstance(v, torch.Tensor))
    return 2 + slots, 8 + 4 + 4 * slots


def _layer_range(rows, layer_range):
    """Keras's ``layer_range=(first, last)``: regexes matched against the layer names."""
    if layer_range is None:
        return rows
    if not isinstance(layer_range, (list, tuple)) or len(layer_range) != 2 or not all(
            isinstance(r, str) for r in layer_range):
        raise ValueError(f"layer_range must be two layer names (or regexes), got {layer_range!r}")
    lower = [i for i, r in enumerate(rows) if re.match(layer_range[0], r.name)]
    upper = [i for i, r in enumerate(rows) if re.match(layer_range[1], r.name)]
    if not lower or not upper:
        raise ValueError(f"layer_range {tuple(layer_range)} matches no layer name of the model; "
                         f"names: {', '.join(r.name for r in rows)}")
    if min(lower) > max(upper):
        return rows[min(upper):max(lower) + 1]
    return rows[min(lower):max(upper) + 1]


def summary_text(model, line_length: int | None = None, positions=None,
                 show_trainable: bool = False, expand_nested: bool = False,
                 layer_range=None) -> str:
    """The summary Keras's ``model.summary()`` prints, as one string."""
    import rich.console
    import rich.markup
    import rich.table

    rows, sequential_like = _rows(model)
    rows = _layer_range(rows, layer_range)
    if expand_nested:
        rows = _expanded(rows, not sequential_like)
    if sequential_like:
        default, positions = 88, positions or [0.45, 0.80, 1.0]
        header = ["Layer (type)", "Output Shape", "Param #"]
        justify = ["left", "left", "right"]
    else:
        default, positions = 108, positions or [0.3, 0.56, 0.74, 1.0]
        header = ["Layer (type)", "Output Shape", "Param #", "Connected to"]
        justify = ["left", "left", "right", "left"]
    if show_trainable:
        default += 12
        positions = [p * 0.90 for p in positions] + [1.0]
        header.append("Trainable")
        justify.append("center")
    line_length = line_length or min(default, shutil.get_terminal_size().columns - 4)
    widths = _column_widths(positions, line_length)
    table = rich.table.Table(*[rich.table.Column(h, justify=j, width=w)
                               for h, j, w in zip(header, justify, widths)],
                             width=line_length, show_lines=True)
    esc = rich.markup.escape
    for row in rows:
        cells = [f"{esc(row.name)} ({esc(row.kind)})", esc(row.shape), esc(row.params)]
        if not sequential_like:
            cells.append(esc(row.connected))
        if show_trainable:
            cells.append(row.trainable)
        table.add_row(*cells)

    specs = weight_specs(model)
    trainable = sum(s.tensor.numel() for s in specs if s.trainable)
    frozen = sum(s.tensor.numel() for s in specs if not s.trainable)
    size = lambda n: readable_size(n * 4)  # noqa: E731 - float32 weights
    optimizer = _optimizer_count(model)
    opt_count, opt_bytes = optimizer or (0, 0)
    console = rich.console.Console(file=io.StringIO(), highlight=False, force_terminal=False,
                                   color_system=None, width=max(line_length, 80))
    console.begin_capture()
    console.print(f'[bold]Model: "{esc(model.name)}"[/]')
    console.print(table)
    total = trainable + frozen + opt_count
    console.print(f"[bold] Total params: [/]{total:,} "
                  f"({readable_size((trainable + frozen) * 4 + opt_bytes)})")
    console.print(f"[bold] Trainable params: [/]{trainable:,} ({size(trainable)})")
    console.print(f"[bold] Non-trainable params: [/]{frozen:,} ({size(frozen)})")
    if optimizer is not None:
        console.print(f"[bold] Optimizer params: [/]{opt_count:,} ({readable_size(opt_bytes)})")
    text = console.end_capture().rstrip("\n")
    note = _training_note(model)
    return text + ("\n" + note if note else "")


def _training_note(model) -> str:
    """Which parts train, when some are frozen (transfer learning)."""
    params = list(model.parameters())
    from .transfer import ZooModel
    if getattr(model, "module", None) is None and not any(
            isinstance(m, ZooModel) for m in model.modules()):
        return ""  # a model of Keras layers only: exactly Keras's text
    if params and not all(p.requires_grad for p in params):
        try:
            from .transfer import trainable_report
            return " " + trainable_report(model)
        except (ImportError, ValueError, AttributeError):
            pass
    return ""
