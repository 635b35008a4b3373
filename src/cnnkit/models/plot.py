"""``cnnkit.utils.plot_model``: a PNG of a model's graph, drawn with matplotlib (no graphviz).

One box per layer ("name (Type)", optionally the output shape), placed in rows by depth from
the inputs (top) to the outputs, arrows for the connections (Keras's ``Connected to``).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["plot_model", "graph_of"]


def graph_of(model) -> tuple[list, list[tuple[int, int]], list[str]]:
    """(layers, edges as (from index, to index), output shape text per layer)."""
    from ..layers import keras_shape
    from .functional import Functional
    from .sequential import Sequential
    if isinstance(model, Functional):
        layers = list(model.layers)
        index = {id(layer): i for i, layer in enumerate(layers)}
        in_model = set(model._run_nodes)
        edges, shapes = [], []
        for i, layer in enumerate(layers):
            nodes = [n for n in layer.__dict__.get("_keras_nodes", []) if n in in_model]
            for node in nodes:
                for t in node.input_tensors:
                    edges.append((index[id(t.node.layer)], i))
            outs = [t for n in layer.__dict__.get("_keras_nodes", [])[-1:] for t in n.outputs]
            shapes.append(", ".join(keras_shape(t.torch_shape) for t in outs))
        return layers, sorted(set(edges)), shapes
    if isinstance(model, Sequential):
        model._require_built()
        layers = list(model.layers)
        return (layers, [(i, i + 1) for i in range(len(layers) - 1)],
                [keras_shape(s) for s in model.output_shapes])
    layers = list(model.layers)
    return layers, [(i, i + 1) for i in range(len(layers) - 1)], [""] * len(layers)


def _levels(n: int, edges) -> list[int]:
    level = [0] * n
    for _ in range(n):  # longest path from a source; edges are few
        changed = False
        for a, b in edges:
            if a != b and level[b] < level[a] + 1:
                level[b] = level[a] + 1
                changed = True
        if not changed:
            break
    return level


def plot_model(model, to_file="model.png", show_shapes: bool = False, show_dtype: bool = False,
               show_layer_names: bool = True, rankdir: str = "TB", dpi: int = 96, **kwargs):
    """Draw ``model``'s layers and connections to ``to_file`` (PNG); returns the path."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    layers, edges, shapes = graph_of(model)
    if not layers:
        raise ValueError(f"model '{model.name}' has no layers to plot")
    level = _levels(len(layers), edges)
    rows: dict[int, list[int]] = {}
    for i, lv in enumerate(level):
        rows.setdefault(lv, []).append(i)
    width = max(len(r) for r in rows.values())
    pos = {}
    for lv, members in rows.items():
        for k, i in enumerate(members):
            x = (k + 0.5) * width / len(members)
            pos[i] = (x, -lv) if rankdir == "TB" else (lv, -x)
    labels = []
    for layer, shape in zip(layers, shapes):
        kind = type(layer).__name__
        text = f"{layer.name} ({kind})" if show_layer_names else kind
        labels.append(text + (f"\n{shape}" if show_shapes and shape else ""))
    span_x = max(p[0] for p in pos.values()) - min(p[0] for p in pos.values()) + 1
    span_y = max(p[1] for p in pos.values()) - min(p[1] for p in pos.values()) + 1
    fig, ax = plt.subplots(figsize=(max(4.0, 3.2 * span_x), max(2.0, 1.1 * span_y)))
    for a, b in edges:
        if a == b:
            continue
        ax.annotate("", xy=pos[b], xytext=pos[a], zorder=1,
                    arrowprops={"arrowstyle": "-|>", "color": "#555", "lw": 1.2,
                                # an edge that skips rows (a residual) bends around them
                                "connectionstyle": f"arc3,rad={0.5 if level[b] - level[a] > 1 else 0}",
                                "shrinkA": 18 if show_shapes else 12,
                                "shrinkB": 18 if show_shapes else 12})
    for i, text in enumerate(labels):
        ax.text(*pos[i], text, ha="center", va="center", fontsize=9, zorder=2,
                bbox={"boxstyle": "round,pad=0.4", "fc": "#e8f0fe", "ec": "#4a6fa5"})
    ax.set_xlim(min(p[0] for p in pos.values()) - 0.8, max(p[0] for p in pos.values()) + 0.8)
    ax.set_ylim(min(p[1] for p in pos.values()) - 0.6, max(p[1] for p in pos.values()) + 0.6)
    ax.axis("off")
    path = Path(to_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path
