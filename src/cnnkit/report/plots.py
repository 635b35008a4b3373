"""The pictures of a run, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Each function takes plain arrays and writes one PNG:

- ``curves``: training and validation accuracy (or loss) per epoch
- ``confusion``: the confusion matrix, counts written in the cells
- ``prediction_grid``: images captioned "Actual: cat | Predicted: dog", as the tutorial draws one
- ``top_losses``: the worst mistakes, each beside its Grad-CAM heatmap when one is given

(The two image grids are one montage in one axes, captions as its texts: fast to draw.)
- ``timing``: seconds per epoch spent waiting for data vs computing
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

__all__ = ["curves", "confusion", "prediction_grid", "top_losses", "timing", "to_display"]

RIGHT, WRONG = "#1a7f37", "#cf222e"


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def to_display(images) -> np.ndarray:
    """uint8 N×C×H×W (tensor or array) -> N×H×W×C numpy for imshow (C = 1 or 3)."""
    arr = images.cpu().numpy() if hasattr(images, "cpu") else np.asarray(images)
    if arr.ndim == 4 and arr.shape[1] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(0, 2, 3, 1)
    if arr.dtype != np.uint8:
        arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    return arr


def _show(ax, image: np.ndarray) -> None:
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def curves(rows: list[dict], key: str, path, title: str | None = None) -> Path:
    """``key`` ('accuracy' or 'loss') and ``val_<key>`` per epoch from history rows."""
    fig = Figure(figsize=(6, 4))
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


def confusion(cm, class_names: list[str], path, title: str = "Confusion matrix") -> Path:
    """Rows: actual class, columns: predicted; colour is the share of the row."""
    cm = np.asarray(cm)
    k = len(cm)
    size = min(4 + 0.5 * k, 30)
    fig = Figure(figsize=(size + 1.5, size))
    ax = fig.add_subplot()
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.nan_to_num(cm / cm.sum(axis=1, keepdims=True))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the actual class")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    small = k > 12
    ax.set_xticklabels(class_names, rotation=45 if not small else 90, ha="right" if not small else "center",
                       fontsize=8 if small else 10)
    ax.set_yticklabels(class_names, fontsize=8 if small else 10)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("Actual")
    ax.set_title(title)
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(j, i, str(int(cm[i, j])), ha="center", va="center",
                            fontsize=7 if small else 9,
                            color="white" if share[i, j] > 0.5 else "black")
    return _save(fig, path)


def _grid(n: int, cols: int) -> tuple[int, int]:
    cols = min(cols, n)
    return -(-n // cols), cols


def _as_rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]


def _tiles(tiles: list[np.ndarray], captions: list[str], colors: list[str], cols: int,
           tile_inches: tuple[float, float], title: str, fontsize: float, loc: str = "center"):
    """One figure, ONE axes: the tiles laid out in a montage image, each with its caption
    above it (an axes per tile costs ~0.1 s each to build and draw; a report has ~40)."""
    n = len(tiles)
    rows, cols = _grid(max(n, 1), cols)
    h = max((t.shape[0] for t in tiles), default=1)
    w = max((t.shape[1] for t in tiles), default=1)
    band = int(np.ceil(0.42 * h))           # caption space above each tile, in tile pixels
    gap = max(1, w // 12)
    canvas = np.full((rows * (h + band), cols * (w + gap), 3), 255, np.uint8)
    fig = Figure(figsize=(tile_inches[0] * cols, tile_inches[1] * rows))
    ax = fig.add_axes((0, 0, 1, 0.94 if title else 1))
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        y0, x0 = r * (h + band) + band, c * (w + gap)
        canvas[y0:y0 + tile.shape[0], x0:x0 + tile.shape[1]] = _as_rgb(tile)
        x = x0 if loc == "left" else x0 + tile.shape[1] / 2
        ax.text(x, y0 - band * 0.08, captions[i], ha=loc, va="bottom", fontsize=fontsize,
                color=colors[i])
    ax.imshow(canvas, interpolation="nearest", aspect="equal")
    ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=13 if loc == "center" else 12)
    return fig


def prediction_grid(images, actual, predicted, probabilities, class_names, path,
                    title: str = "Sample predictions", cols: int = 4) -> Path:
    """One tile per image captioned "Actual: cat | Predicted: dog" (green right, red wrong)."""
    images = to_display(images)
    captions, colors = [], []
    for i in range(len(images)):
        a, p = int(actual[i]), int(predicted[i])
        text = f"Actual: {class_names[a]} | Predicted: {class_names[p]}"
        if probabilities is not None:
            text += f"\n({float(probabilities[i][p]):.0%} sure)"
        captions.append(text)
        colors.append(RIGHT if a == p else WRONG)
    fig = _tiles(list(images), captions, colors, cols, (3.2, 3.3), title, 9)
    return _save(fig, path)


def top_losses(images, actual, predicted, losses, probabilities, class_names, path,
               heatmaps=None, overlays=None, cols: int = 4,
               title: str = "Top losses: the most confident mistakes") -> Path:
    """The highest-loss images, each captioned with actual/predicted, loss and probability.

    ``overlays``: N×H×W×3 uint8 Grad-CAM overlays shown beside each image (optional).
    """
    images = to_display(images)
    pair = overlays is not None
    tiles, captions, colors = [], [], []
    for i in range(len(images)):
        a, p = int(actual[i]), int(predicted[i])
        tile = _as_rgb(images[i])
        if pair:
            spacer = np.full((tile.shape[0], max(1, tile.shape[1] // 16), 3), 255, np.uint8)
            tile = np.concatenate([tile, spacer, _as_rgb(np.asarray(overlays[i]))], axis=1)
        tiles.append(tile)
        captions.append(f"Actual: {class_names[a]} | Predicted: {class_names[p]}\n"
                        f"loss {float(losses[i]):.2f}, p(pred) {float(probabilities[i][p]):.2f}")
        colors.append(WRONG if a != p else RIGHT)
    fig = _tiles(tiles, captions, colors, cols, (2.6 * (2 if pair else 1), 3.1),
                 title + (" (right: Grad-CAM for the predicted class)" if pair else ""), 8.5,
                 loc="left")
    return _save(fig, path)


def timing(rows: list[dict], path, title: str = "Time per epoch: waiting for data vs computing") -> Path:
    fig = Figure(figsize=(6, 3.6))
    ax = fig.add_subplot()
    epochs = [r["epoch"] for r in rows]
    wait = np.array([r.get("data_wait_s") or 0.0 for r in rows], dtype=float)
    comp = np.array([r.get("compute_s") or 0.0 for r in rows], dtype=float)
    ax.bar(epochs, comp, label=f"compute ({comp.sum():.1f}s)", color="#0969da")
    ax.bar(epochs, wait, bottom=comp, label=f"data wait ({wait.sum():.1f}s)", color="#fb8500")
    ax.set_xlabel("Epoch")
    ax.set_ylabel("Seconds")
    ax.set_title(title, fontsize=11)
    if epochs:
        ax.set_xticks(epochs if len(epochs) <= 20 else np.linspace(epochs[0], epochs[-1], 10).round())
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)
