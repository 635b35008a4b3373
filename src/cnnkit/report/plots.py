"""The pictures of a run, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Each function takes plain arrays and writes one PNG:

- ``curves``: training and validation accuracy (or loss) per epoch
- ``confusion``: the confusion matrix, counts written in the cells
- ``prediction_grid``: images captioned "Actual: cat | Predicted: dog", as the tutorial draws one
- ``top_losses``: the worst mistakes, each beside its Grad-CAM heatmap when one is given

- ``timing``: seconds per epoch spent waiting for data vs computing

Every function draws for a laptop window by default and, with ``narrow=True``, for a phone
(report.html shows that one below 700 px). Each is sized so that its smallest text is at
least ``LEGIBLE_PX`` CSS pixels tall where the page shows it (``SHOWN_PX``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from . import tiles

__all__ = ["curves", "confusion", "prediction_grid", "top_losses", "timing", "to_display",
           "narrow_path"]

RIGHT, WRONG = "#1a7f37", "#cf222e"
LEGIBLE_PX = 10.5
# CSS pixels report.html gives a picture: a full-width figure in a 1280 px window, a half-width
# one (the curves), the confusion matrix (its max-width), and any figure in a 390 px window.
SHOWN_PX = {"wide": 1114, "half": 540, "square": 900, "narrow": 324}


def narrow_path(path) -> Path:
    """Where the phone-width version of the picture at ``path`` goes: ``x.png`` -> ``x.narrow.png``."""
    path = Path(path)
    return path.with_name(path.stem + ".narrow" + path.suffix)


def _save(fig: Figure, path) -> Path:
    """``fig`` as a PNG cropped to what it draws, as ``bbox_inches="tight"`` crops it, with one
    draw instead of two: the box comes from the artists' extents, not from a trial draw."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.set_dpi(tiles.DPI)
    box = fig.get_tightbbox(FigureCanvasAgg(fig).get_renderer()).padded(0.1)  # inches
    fig.savefig(path, dpi=tiles.DPI, bbox_inches=box, **tiles.PNG_OPTIONS)
    return path


def to_display(images) -> np.ndarray:
    """uint8 N×C×H×W (tensor or array) -> N×H×W×C numpy for imshow (C = 1 or 3)."""
    arr = images.cpu().numpy() if hasattr(images, "cpu") else np.asarray(images)
    if arr.ndim == 4 and arr.shape[1] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(0, 2, 3, 1)
    if arr.dtype != np.uint8:
        arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    return arr


def curves(rows: list[dict], key: str, path, title: str | None = None, narrow: bool = False) -> Path:
    """``key`` ('accuracy' or 'loss') and ``val_<key>`` per epoch from history rows."""
    fig = Figure(figsize=(3.6, 2.9) if narrow else (6, 4))
    ax = fig.add_subplot()
    epochs = [r["epoch"] for r in rows]
    for k, label, style in ((key, f"training {key}", "-o"), (f"val_{key}", f"validation {key}", "-s")):
        values = [r.get(k) for r in rows]
        if any(v is not None for v in values):
            ax.plot(epochs, [np.nan if v is None else v for v in values], style, label=label,
                    markersize=4)
    ax.set_xlabel("Epoch")
    ax.set_ylabel(key.capitalize())
    ax.set_title(title or f"Training and validation {key}")
    if epochs:
        ax.set_xticks(epochs if len(epochs) <= 20 else np.linspace(epochs[0], epochs[-1], 10).round())
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def confusion(cm, class_names: list[str], path, title: str = "Confusion matrix",
              narrow: bool = False) -> Path:
    """Rows: actual class, columns: predicted; colour is the share of the row (the colour
    bar is left out of the narrow picture: the counts are in the cells)."""
    cm = np.asarray(cm)
    k = len(cm)
    size = min(4 + 0.5 * k, 30)
    small = k > 12
    fig = Figure(figsize=(3.6, 3.6) if narrow else (size + 1.5, size))
    ax = fig.add_subplot()
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.nan_to_num(cm / cm.sum(axis=1, keepdims=True))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    if not narrow:
        bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        bar.set_label("share of the actual class", fontsize=11)
        bar.ax.tick_params(labelsize=11)
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    label_pt = 7 if small else (10 if narrow else 11)
    ax.set_xticklabels(class_names, rotation=45 if not small else 90, ha="right" if not small else "center",
                       fontsize=label_pt, rotation_mode="anchor" if not small else "default")
    ax.set_yticklabels(class_names, fontsize=label_pt)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("Actual")
    ax.set_title(title)
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(j, i, str(int(cm[i, j])), ha="center", va="center",
                            fontsize=6 if small else (9.5 if narrow else 10.5),
                            color="white" if share[i, j] > 0.5 else "black")
    return _save(fig, path)


def _actual_predicted(actual: str, predicted: str, narrow: bool) -> str:
    """The tutorial's "Actual: cat | Predicted: dog", on two lines where tiles are narrow."""
    return f"Actual: {actual}" + ("\n" if narrow else " | ") + f"Predicted: {predicted}"


def prediction_grid(images, actual, predicted, probabilities, class_names, path,
                    title: str = "Sample predictions", cols: int | None = None,
                    narrow: bool = False) -> Path:
    """One tile per image titled "Actual: cat | Predicted: dog" (green right, red wrong)."""
    images = to_display(images)
    cells = []
    for i in range(len(images)):
        a, p = int(actual[i]), int(predicted[i])
        text = _actual_predicted(class_names[a], class_names[p], narrow)
        if probabilities is not None:
            text += f"\n({float(probabilities[i][p]):.0%} sure)"
        cells.append(tiles.Cell([images[i]], text, RIGHT if a == p else WRONG))
    fig = tiles.tile_figure(cells, cols=cols or (2 if narrow else 4),
                            panel_in=1.9 if narrow else 3.2, title=title,
                            caption_pt=9.5 if narrow else 10.5, title_pt=13, centered=True,
                            gap_px=8 if narrow else 16)
    return tiles.save_exact(fig, path)


def top_losses(images, actual, predicted, losses, probabilities, class_names, path,
               heatmaps=None, overlays=None, cols: int | None = None,
               title: str = "Top losses: the most confident mistakes", narrow: bool = False,
               layer: str | None = None) -> Path:
    """The highest-loss images, each titled with actual/predicted, loss and probability.

    ``overlays``: N×H×W×3 uint8 Grad-CAM overlays shown beside each image (optional);
    ``layer``: the layer they were taken at, named in the title.
    ``cols``: images (or image + overlay pairs) per row; default 3 pairs or 4 images, and
    1 pair or 2 images when ``narrow``.
    """
    images = to_display(images)
    pair = overlays is not None
    cells = []
    for i in range(len(images)):
        a, p = int(actual[i]), int(predicted[i])
        text = (_actual_predicted(class_names[a], class_names[p], narrow and not pair) + "\n"
                f"loss {float(losses[i]):.2f}, p(pred) {float(probabilities[i][p]):.2f}")
        panels = [images[i], overlays[i]] if pair else [images[i]]
        cells.append(tiles.Cell(panels, text, WRONG if a != p else RIGHT))
    at = f" at {layer}" if layer else ""
    note = ("\n" if narrow else " ") + f"(right: Grad-CAM{at} for the predicted class)" if pair else ""
    fig = tiles.tile_figure(cells, cols=cols or {(False, False): 4, (False, True): 3,
                                                 (True, False): 2, (True, True): 1}[narrow, pair],
                            panel_in=1.9 if (narrow or pair) else 2.8, title=title + note,
                            caption_pt=10, title_pt=11 if narrow else 13,
                            gap_px=8 if narrow else 16)
    return tiles.save_exact(fig, path)


def timing(rows: list[dict], path, title: str = "Time per epoch: waiting for data vs computing",
           narrow: bool = False) -> Path:
    """Stacked bars per epoch; the legend sits under the chart, where it covers no bar."""
    fig = Figure(figsize=(3.6, 3.0) if narrow else (6, 3.6))
    ax = fig.add_subplot()
    epochs = [r["epoch"] for r in rows]
    wait = np.array([r.get("data_wait_s") or 0.0 for r in rows], dtype=float)
    comp = np.array([r.get("compute_s") or 0.0 for r in rows], dtype=float)
    ax.bar(epochs, comp, label=f"compute ({comp.sum():.1f}s)", color="#0969da")
    ax.bar(epochs, wait, bottom=comp, label=f"data wait ({wait.sum():.1f}s)", color="#fb8500")
    ax.set_xlabel("Epoch")
    ax.set_ylabel("Seconds")
    ax.set_title(title.replace(": ", ":\n", 1) if narrow else title, fontsize=11)
    if epochs:
        ax.set_xticks(epochs if len(epochs) <= 20 else np.linspace(epochs[0], epochs[-1], 10).round())
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2 if narrow else -0.17), ncol=2,
              frameon=False)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)
