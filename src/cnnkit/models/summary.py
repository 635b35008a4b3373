"""``summary()``: Keras's table (Layer (type) | Output Shape | Param #) and param totals."""

from __future__ import annotations

import torch
from torch import nn

from ..layers import Layer, keras_shape

WIDTHS = (38, 29, 17)  # Keras 3's column widths, borders excluded


def readable_size(num_bytes: float) -> str:
    """Keras's size format: 654.54 KB, with 1024 per step."""
    for unit in ("B", "KB", "MB", "GB"):
        if num_bytes < 1024 or unit == "GB":
            return f"{num_bytes:.2f} {unit}"
        num_bytes /= 1024
    return f"{num_bytes:.2f} GB"


def _row(cells, left="│", mid="│", right="│"):
    texts = []
    for i, (cell, width) in enumerate(zip(cells, WIDTHS)):
        cell = str(cell)
        if len(cell) > width - 2:
            cell = cell[: width - 3] + "…"
        texts.append(" " + (cell.rjust(width - 2) if i == 2 else cell.ljust(width - 2)) + " ")
    return left + mid.join(texts) + right


def _rule(left, mid, right, fill):
    return left + mid.join(fill * w for w in WIDTHS) + right


def _layer_rows(model):
    """(name, type, shape text, params, trainable params, non-trainable params) per layer."""
    from .sequential import Sequential
    rows = []
    if isinstance(model, Sequential):
        model._require_built()
        for layer, shape in zip(model.layers, model.output_shapes):
            params = list(layer.parameters())
            trainable = sum(p.numel() for p in params if p.requires_grad)
            frozen = sum(p.numel() for p in params if not p.requires_grad)
            frozen += layer.non_trainable_state_count() if isinstance(layer, Layer) else 0
            rows.append((layer.name, type(layer).__name__, keras_shape(shape), trainable + frozen,
                         trainable, frozen))
        return rows
    return _module_rows(model)


def _children(module: nn.Module, prefix: str = ""):
    """Direct children, looking one level into plain containers (nn.Sequential, ModuleList)."""
    for name, child in module.named_children():
        if name == "preprocess":
            continue
        if isinstance(child, (nn.Sequential, nn.ModuleList)) and len(child) and not prefix:
            yield from _children(child, prefix=f"{name}.")
        else:
            yield prefix + name, child


def _module_rows(model):
    """A plain module: its direct children (one level into containers), shapes via hooks."""
    target = model.module if getattr(model, "module", None) is not None else model
    children = list(_children(target))
    shapes = {}

    def recorder(name):
        def hook(module, inputs, output):  # returns None: the output passes unchanged
            if isinstance(output, torch.Tensor):
                shapes.setdefault(name, tuple(output.shape[1:]))
        return hook

    hooks = [m.register_forward_hook(recorder(n)) for n, m in children]
    if getattr(model, "input_shape", None) is not None:
        was = model.training
        model.eval()
        try:
            with torch.no_grad():
                dev = next(model.parameters()).device
                model(torch.zeros((1, *model.torch_input_shape), device=dev))
        finally:
            model.train(was)
            for h in hooks:
                h.remove()
    else:
        for h in hooks:
            h.remove()
    rows = []
    for name, child in children:
        params = list(child.parameters())
        trainable = sum(p.numel() for p in params if p.requires_grad)
        frozen = sum(p.numel() for p in params if not p.requires_grad)
        shape = shapes.get(name)
        text = "(" + ", ".join(["None"] + [str(s) for s in shape]) + ")" if shape else "?"
        rows.append((name, type(child).__name__, text, trainable + frozen, trainable, frozen))
    return rows


def summary_text(model) -> str:
    rows = _layer_rows(model)
    lines = [f'Model: "{model.name}"']
    lines.append(_rule("┏", "┳", "┓", "━"))
    lines.append(_row(("Layer (type)", "Output Shape", "Param #"), "┃", "┃", "┃"))
    lines.append(_rule("┡", "╇", "┩", "━"))
    for i, (name, kind, shape, params, _, _) in enumerate(rows):
        if i:
            lines.append(_rule("├", "┼", "┤", "─"))
        lines.append(_row((f"{name} ({kind})", shape, f"{params:,}")))
    lines.append(_rule("└", "┴", "┘", "─"))
    trainable = sum(r[4] for r in rows)
    frozen = sum(r[5] for r in rows)
    # Parameters the rows missed (a module's own tensors outside its children).
    all_params = sum(p.numel() for p in model.parameters())
    missing = all_params - sum(r[4] + r[5] for r in rows) + sum(
        m.non_trainable_state_count() for m in model.modules() if isinstance(m, Layer))
    if missing > 0:
        trainable += missing
    bytes_per = 4
    total = trainable + frozen
    lines.append(f" Total params: {total:,} ({readable_size(total * bytes_per)})")
    lines.append(f" Trainable params: {trainable:,} ({readable_size(trainable * bytes_per)})")
    lines.append(f" Non-trainable params: {frozen:,} ({readable_size(frozen * bytes_per)})")
    lines.append(_training_note(model))
    return "\n".join(line for line in lines if line)


def _training_note(model) -> str:
    """Which parts train, when some are frozen (transfer learning)."""
    params = list(model.parameters())
    if params and not all(p.requires_grad for p in params):
        try:
            from .transfer import trainable_report
            return " " + trainable_report(model)
        except (ImportError, ValueError, AttributeError):
            pass
    frozen = [n for n, m in model.named_children() if n != "preprocess"
              and any(True for _ in m.parameters()) and not any(p.requires_grad for p in m.parameters())]
    return f" Frozen: {', '.join(frozen)}" if frozen else ""
