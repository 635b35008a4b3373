"""The pictures of a run, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Each function takes plain arrays and writes one PNG:

- ``curves``: training and validation accuracy (or loss) per epoch
- ``confusion``: the confusion matrix, counts written in the cells
- ``prediction_grid``: images titled "Actual: cat | Predicted: dog", as the tutorial draws one
- ``top_losses``: the worst mistakes, each beside its Grad-CAM heatmap when one is given
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


def prediction_grid(images, actual, predicted, probabilities, class_names, path,
                    title: str = "Sample predictions", cols: int = 4) -> Path:
    """One tile per image titled "Actual: cat | Predicted: dog" (green right, red wrong)."""
    images = to_display(images)
    n = len(images)
    rows, cols = _grid(max(n, 1), cols)
    fig = Figure(figsize=(3.2 * cols, 3.3 * rows))
    for i in range(n):
        ax = fig.add_subplot(rows, cols, i + 1)
        _show(ax, images[i])
        a, p = int(actual[i]), int(predicted[i])
        prob = float(probabilities[i][p]) if probabilities is not None else None
        text = f"Actual: {class_names[a]} | Predicted: {class_names[p]}"
        if prob is not None:
            text += f"\n({prob:.0%} sure)"
        ax.set_title(text, fontsize=9, color=RIGHT if a == p else WRONG)
    fig.suptitle(title, fontsize=13)
    return _save(fig, path)


def top_losses(images, actual, predicted, losses, probabilities, class_names, path,
               heatmaps=None, overlays=None, cols: int = 4,
               title: str = "Top losses: the most confident mistakes") -> Path:
    """The highest-loss images, each titled with actual/predicted, loss and probability.

    ``overlays``: N×H×W×3 uint8 Grad-CAM overlays shown beside each image (optional).
    """
    images = to_display(images)
    n = len(images)
    pair = overlays is not None
    rows, cols = _grid(max(n, 1), cols)
    per = 2 if pair else 1
    fig = Figure(figsize=(2.6 * cols * per, 3.1 * rows))
    for i in range(n):
        ax = fig.add_subplot(rows, cols * per, i * per + 1)
        _show(ax, images[i])
        a, p = int(actual[i]), int(predicted[i])
        ax.set_title(f"Actual: {class_names[a]} | Predicted: {class_names[p]}\n"
                     f"loss {float(losses[i]):.2f}, p(pred) {float(probabilities[i][p]):.2f}",
                     fontsize=8.5, color=WRONG if a != p else RIGHT, loc="left")
        if pair:
            ax2 = fig.add_subplot(rows, cols * per, i * per + 2)
            _show(ax2, overlays[i])
    fig.suptitle(title + (" (right: Grad-CAM for the predicted class)" if pair else ""), fontsize=12)
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
