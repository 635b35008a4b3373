"""A run's pictures and its one-page report.

``write_plots`` draws every picture of a run into ``<run>/plots/``; ``write_report`` builds
``<run>/report.html`` from the run directory's files (``cnnkit report RUN`` calls it).
"""

from __future__ import annotations

import numpy as np

from . import plots
from .html import render_report, write_report

__all__ = ["write_plots", "write_report", "render_report", "plots", "gradcam_overlays"]


def gradcam_overlays(model, images_nhwc: np.ndarray):
    """(Grad-CAM overlays N×H×W×3 uint8 for the predicted classes, the layer as the user
    knows it), or (None, None) when ``cnnkit.explain`` is not installed or cannot explain
    this model."""
    try:
        from .. import explain
    except ImportError:
        return None, None
    try:
        ex = explain.explain(model, images_nhwc)
        return (np.stack([explain.overlay(img, heat) for img, heat in zip(images_nhwc, ex.heatmaps)]),
                ex.layer)
    except Exception:  # noqa: BLE001 - a model Grad-CAM cannot explain: plain top losses
        return None, None


def write_plots(run, model, split, ev: dict, class_names, history: list[dict], seed: int = 0,
                n_samples: int = 16, n_top: int = 12) -> list:
    """Draw the curves, confusion matrix, sample predictions, top losses and timing, each
    for a laptop window (``x.png``) and for a phone (``x.narrow.png``)."""
    out = run.plots
    written = []
    images, _ = split
    y, pred, probs = ev["labels"], ev["predicted"], ev["probabilities"]
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(y), size=min(n_samples, len(y)), replace=False))
    order = np.argsort(-ev["per_sample_loss"], kind="stable")[:min(n_top, len(y))]
    shown = plots.to_display(images[order])
    overlays, layer = (None, None) if ev.get("multi_label") else gradcam_overlays(model, shown)
    for narrow in (False, True):
        def file(name):
            return plots.narrow_path(out / name) if narrow else out / name
        if history:
            written.append(plots.curves(history, "accuracy", file("accuracy.png"), narrow=narrow))
            written.append(plots.curves(history, "loss", file("loss.png"), narrow=narrow))
            written.append(plots.timing(history, file("timing.png"), narrow=narrow))
        if ev.get("multi_label"):  # no confusion matrix or top class: report/multilabel.py
            from .multilabel import SAMPLES, sample_grid
            written.append(sample_grid(images[pick], y[pick], probs[pick],
                                       getattr(model, "thresholds", None), class_names,
                                       file(SAMPLES), narrow=narrow))
            continue
        written.append(plots.confusion(ev["report"]["confusion_matrix"], class_names,
                                       file("confusion_matrix.png"), narrow=narrow))
        written.append(plots.prediction_grid(images[pick], y[pick], pred[pick], probs[pick],
                                             class_names, file("samples.png"), narrow=narrow))
        written.append(plots.top_losses(shown, y[order], pred[order], ev["per_sample_loss"][order],
                                        probs[order], class_names, file("top_losses.png"),
                                        overlays=overlays, layer=layer, narrow=narrow))
    return written
