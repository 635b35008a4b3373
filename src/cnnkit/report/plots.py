"""The pictures of a run, drawn with Pillow (``report.drawing``: no matplotlib, no display).

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

import math
from pathlib import Path

import numpy as np

from . import tiles
from .axes import COLORS, Chart, Legend, legend_size, nice_ticks, view
from .drawing import Drawing, line_px

__all__ = ["curves", "confusion", "prediction_grid", "top_losses", "timing", "to_display",
           "narrow_path"]

RIGHT, WRONG = "#1a7f37", "#cf222e"
LEGIBLE_PX = 10.5
# CSS pixels report.html gives a picture: a full-width figure in a 1280 px window, a half-width
# one (the curves), the confusion matrix (its max-width), and any figure in a 390 px window.
SHOWN_PX = {"wide": 1114, "half": 540, "square": 900, "narrow": 324}
# matplotlib's 'Blues' colour map (ColorBrewer's nine blues, interpolated linearly)
BLUES = np.array([[247, 251, 255], [222, 235, 247], [198, 219, 239], [158, 202, 225],
                  [107, 174, 214], [66, 146, 198], [33, 113, 181], [8, 81, 156], [8, 48, 107]],
                 dtype=float)


def narrow_path(path) -> Path:
    """Where the phone-width version of the picture at ``path`` goes: ``x.png`` -> ``x.narrow.png``."""
    path = Path(path)
    return path.with_name(path.stem + ".narrow" + path.suffix)


def to_display(images) -> np.ndarray:
    """uint8 N×C×H×W (tensor or array) -> N×H×W×C numpy for imshow (C = 1 or 3)."""
    arr = images.cpu().numpy() if hasattr(images, "cpu") else np.asarray(images)
    if arr.ndim == 4 and arr.shape[1] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(0, 2, 3, 1)
    if arr.dtype != np.uint8:
        arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    return arr


def _epoch_ticks(epochs: list) -> list[float]:
    return (list(epochs) if len(epochs) <= 20
            else list(np.linspace(epochs[0], epochs[-1], 10).round()))


def curves(rows: list[dict], key: str, path, title: str | None = None, narrow: bool = False) -> Path:
    """``key`` ('accuracy' or 'loss') and ``val_<key>`` per epoch from history rows."""
    chart = Chart(*((360, 290) if narrow else (600, 400)),
                  title=title or f"Training and validation {key}", xlabel="Epoch",
                  ylabel=key.capitalize())
    epochs = [r["epoch"] for r in rows]
    series = []
    for k, label, marker, color in ((key, f"training {key}", "o", COLORS[0]),
                                    (f"val_{key}", f"validation {key}", "s", COLORS[1])):
        values = [r.get(k) for r in rows]
        values = [np.nan if v is None or not math.isfinite(float(v)) else float(v) for v in values]
        if any(not math.isnan(v) for v in values):
            series.append((label, values, marker, color))
    finite = [v for _, vals, _, _ in series for v in vals if not math.isnan(v)] or [0.0, 1.0]
    xs = epochs or [1]
    chart.layout(view(min(xs), max(xs)), view(min(finite), max(finite)), _epoch_ticks(xs))
    chart.frame(grid="both")
    d, drawn = chart.drawing, []
    for label, values, marker, color in series:
        points = [chart.px(e, v) for e, v in zip(epochs, values)]
        run: list = []
        for p, v in zip(points + [None], values + [np.nan]):  # a gap where a value is missing
            if p is not None and not math.isnan(v):
                run.append(p)
            elif run:
                d.line(run, color, 1.5, role="series-segment")
                run = []
        d.line([], color, role="series", text=label, data=tuple(values))
        for p, v in zip(points, values):
            if not math.isnan(v):
                d.marker(*p, marker, 6, color, role="series-marker")
                drawn.append(p)
    entries = [Legend(label, color, marker=marker) for label, _, marker, color in series]
    if entries:
        chart.legend(entries, chart.best_legend_corner(entries, drawn))
    return d.save(path)


def _blues(share: np.ndarray) -> np.ndarray:
    """RGB uint8 of ``share`` (values in [0, 1]) on the Blues map."""
    at = np.clip(share, 0, 1) * (len(BLUES) - 1)
    lo = np.floor(at).astype(int).clip(0, len(BLUES) - 2)
    t = (at - lo)[..., None]
    return ((1 - t) * BLUES[lo] + t * BLUES[lo + 1]).round().astype(np.uint8)


def confusion(cm, class_names: list[str], path, title: str = "Confusion matrix",
              narrow: bool = False) -> Path:
    """Rows: actual class, columns: predicted; colour is the share of the row (the colour
    bar is left out of the narrow picture: the counts are in the cells)."""
    cm = np.asarray(cm)
    k = len(cm)
    small = k > 12
    label_pt = 7 if small else (10 if narrow else 11)
    count_pt = 6 if small else (9.5 if narrow else 10.5)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.nan_to_num(cm / cm.sum(axis=1, keepdims=True))
    pad, tick = 8, 4
    names_w = max((Drawing.text_size(n, label_pt)[0] for n in class_names), default=0)
    left = pad + line_px(10) + 4 + names_w + tick + 3
    if narrow:
        cell = max(8.0, (360 - left - pad) / max(k, 1))
    else:
        cell = float(max(round(560 / max(k, 1)), math.ceil(line_px(label_pt)) + 2))
    angle = 90 if small else 45
    rad = math.radians(angle)
    label_h = max((w * math.sin(rad) + h * math.cos(rad) for w, h in
                   (Drawing.text_size(n, label_pt) for n in class_names)), default=0)
    top = pad + line_px(12) + 6
    side = cell * k
    bar_w = 0 if narrow else 18 + 16 + Drawing.text_size("0.0", 11)[0] + 6 + line_px(11)
    width = left + side + (20 + bar_w if bar_w else 0) + pad
    height = top + side + tick + 3 + label_h + 4 + line_px(10) + pad
    d = Drawing(width, height)
    x0, y0 = left, top
    colors = _blues(share)
    for i in range(k):  # rows: actual
        for j in range(k):
            r, g, b = colors[i, j]
            d.rect((x0 + j * cell, y0 + i * cell, x0 + (j + 1) * cell, y0 + (i + 1) * cell),
                   fill=f"#{r:02x}{g:02x}{b:02x}", role="cell")
    d.rect((x0, y0, x0 + side + 1, y0 + side + 1), outline="black", width=1, role="frame")
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    d.text(x0 + (j + 0.5) * cell, y0 + (i + 0.5) * cell, str(int(cm[i, j])),
                           count_pt, color="white" if share[i, j] > 0.5 else "black",
                           ha="center", va="center", role="count")
    for i, name in enumerate(class_names):
        y = y0 + (i + 0.5) * cell
        d.text(x0 - tick - 3, y, name, label_pt, ha="right", va="center", role="ytick")
        x = x0 + (i + 0.5) * cell
        d.line([(x, y0 + side), (x, y0 + side + tick)], "black", 1, role="tick")
        if small:
            d.text(x, y0 + side + tick + 3, name, label_pt, ha="center", va="top", rotation=90,
                   role="xtick")
        else:
            d.text(x + 4, y0 + side + tick + 1, name, label_pt, ha="right", va="top",
                   rotation=45, role="xtick")
    d.text(x0 + side / 2, y0 + side + tick + 3 + label_h + 4, "Predicted", 10, ha="center",
           va="top", role="xlabel")
    d.text(pad, y0 + side / 2, "Actual", 10, ha="left", va="center", rotation=90, role="ylabel")
    d.text(x0 + side / 2, pad, title, 12, ha="center", va="top", role="title")
    if bar_w:  # the colour bar: share of the actual class, 0 to 1
        bx = x0 + side + 20
        steps = 64
        for s, (r, g, b) in enumerate(_blues(1 - (np.arange(steps) + 0.5) / steps)):
            d.rect((bx, y0 + s * side / steps, bx + 18, y0 + (s + 1) * side / steps + 1),
                   fill=f"#{r:02x}{g:02x}{b:02x}", role="colorbar")
        d.rect((bx, y0, bx + 19, y0 + side + 1), outline="black", width=1, role="colorbar")
        for v in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
            y = y0 + (1 - v) * side
            d.line([(bx + 18, y), (bx + 18 + tick, y)], "black", 1, role="tick")
            d.text(bx + 18 + tick + 3, y, f"{v:.1f}", 11, ha="left", va="center",
                   role="colorbar-tick")
        d.text(width - pad, y0 + side / 2, "share of the actual class", 11, ha="right",
               va="center", rotation=90, role="colorbar-label")
    return d.save(path)


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
    grid = tiles.tile_figure(cells, cols=cols or (2 if narrow else 4),
                            panel_in=1.9 if narrow else 3.2, title=title,
                            caption_pt=9.5 if narrow else 10.5, title_pt=13, centered=True,
                            gap_px=8 if narrow else 16)
    return grid.save(path)


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
    grid = tiles.tile_figure(cells, cols=cols or {(False, False): 4, (False, True): 3,
                                                 (True, False): 2, (True, True): 1}[narrow, pair],
                            panel_in=1.9 if (narrow or pair) else 2.8, title=title + note,
                            caption_pt=10, title_pt=11 if narrow else 13,
                            gap_px=8 if narrow else 16)
    return grid.save(path)


def timing(rows: list[dict], path, title: str = "Time per epoch: waiting for data vs computing",
           narrow: bool = False) -> Path:
    """Stacked bars per epoch; the legend sits under the chart, where it covers no bar."""
    epochs = [r["epoch"] for r in rows]
    wait = np.array([r.get("data_wait_s") or 0.0 for r in rows], dtype=float)
    comp = np.array([r.get("compute_s") or 0.0 for r in rows], dtype=float)
    entries = [Legend(f"compute ({comp.sum():.1f}s)", "#0969da", kind="patch"),
               Legend(f"data wait ({wait.sum():.1f}s)", "#fb8500", kind="patch")]
    width, height = (360, 300) if narrow else (600, 360)
    legend_w, legend_h = legend_size(entries, columns=2)
    chart = Chart(width, height, title=title.replace(": ", ":\n", 1) if narrow else title,
                  xlabel="Epoch", ylabel="Seconds", title_pt=11, below=legend_h + 6)
    xs = epochs or [1]
    top = float((comp + wait).max()) if len(rows) else 1.0
    yticks = nice_ticks(0.0, top * 1.05 or 1.0)
    chart.layout(view(min(xs) - 0.4, max(xs) + 0.4),  # bars 0.8 of an epoch wide
                 (0.0, max(top * 1.05, 1e-9)), _epoch_ticks(xs), yticks)
    chart.frame(grid="y")
    d = chart.drawing
    for e, c, w in zip(epochs, comp, wait):
        (xl, yb), (xr, yc) = chart.px(e - 0.4, 0.0), chart.px(e + 0.4, c)
        d.rect((xl, yc, xr, yb), fill=entries[0].color, role="bar", text="compute")
        yw = chart.px(e, c + w)[1]
        if w > 0:
            d.rect((xl, yw, xr, yc), fill=entries[1].color, role="bar", text="data wait")
    chart.draw_frame()
    chart.legend(entries, ((width - legend_w) / 2, height - 8 - legend_h), columns=2,
                 framed=False)
    return d.save(path)
