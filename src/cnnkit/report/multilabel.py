"""The multi-label part of a run's report: key numbers, the per-label table (AP, the
threshold tuned on validation, precision, recall and F1 at it, support) and a picture of
sample images with their labels and the labels predicted at the thresholds."""

from __future__ import annotations

import html
import textwrap

__all__ = ["cards", "section", "sample_grid", "SAMPLES"]

SAMPLES = "samples.png"  # in plots/, as the single-label report names its sample picture


def _fmt(v, digits: int = 3) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def cards(metrics: dict) -> list[tuple[str, str]]:
    split = "test" if metrics.get("split", "test") == "test" else "held-out"
    return [(f"{split} mAP", _fmt(metrics.get("map"), 4)),
            ("macro F1 (tuned thresholds)", _fmt(metrics.get("macro_f1"), 4)),
            ("exact match", _fmt(metrics.get("exact_match"), 4)),
            ("Hamming accuracy", _fmt(metrics.get("hamming_accuracy"), 4)),
            (f"{split} loss", _fmt(metrics.get("test_loss"), 4))]


def section(metrics: dict, table, samples_html: str = "") -> str:
    """The per-label table as HTML (``table(header, rows, cls)`` draws it), then
    ``samples_html`` (the sample picture)."""
    per = metrics.get("per_label") or {}
    rows = [[name, _fmt(v["ap"]), _fmt(v["threshold"]), _fmt(v["precision"]),
             _fmt(v["recall"]), _fmt(v["f1"]), v["support"]] for name, v in per.items()]
    rows.append(["macro average", _fmt(metrics.get("map")), "", "", "",
                 _fmt(metrics.get("macro_f1")), sum(v["support"] for v in per.values())])
    text = (f"<p>Multi-label: a label is predicted when its sigmoid probability is at or above "
            f"its threshold, each tuned to maximise F1 on the "
            f"{html.escape(str(metrics.get('thresholds_tuned_on', 'validation split')))} and stored with the "
            f"weights (config.json <code>thresholds</code>). mAP {_fmt(metrics.get('map'), 4)}; "
            f"macro F1 {_fmt(metrics.get('macro_f1'), 4)} at the tuned thresholds, "
            f"{_fmt(metrics.get('macro_f1_at_0.5'), 4)} at 0.5; micro F1 "
            f"{_fmt(metrics.get('micro_f1'), 4)}; exact match {_fmt(metrics.get('exact_match'), 4)};"
            f" Hamming accuracy {_fmt(metrics.get('hamming_accuracy'), 4)}.</p>")
    return ("<h2 id='metrics'>Metrics per label</h2>" + text
            + table(["label", "AP", "threshold", "precision", "recall", "F1", "support"], rows,
                    "metrics per-label")
            + "<h2 id='samples'>Sample predictions</h2>" + samples_html)


def sample_grid(images, targets, probs, thresholds, class_names, path, narrow: bool = False):
    """One tile per image captioned with its labels and the ones predicted at ``thresholds``
    (green when they are the same set, red otherwise)."""
    import numpy as np

    from . import tiles
    from .plots import RIGHT, WRONG, to_display
    images = to_display(images)
    t = np.asarray(thresholds if thresholds is not None else [0.5] * len(class_names))
    width = 22 if narrow else 34  # characters that fit above a tile at the caption's size
    names = lambda row: ", ".join(class_names[j] for j in np.nonzero(row)[0]) or "-"  # noqa: E731
    cells = []
    for i in range(len(images)):
        actual, predicted = targets[i] > 0.5, probs[i] >= t
        caption = (textwrap.fill(f"Actual: {names(actual)}", width) + "\n"
                   + textwrap.fill(f"Predicted: {names(predicted)}", width))
        cells.append(tiles.Cell([images[i]], caption,
                                RIGHT if bool((actual == predicted).all()) else WRONG))
    grid = tiles.tile_figure(cells, cols=2 if narrow else 4, panel_in=1.9 if narrow else 3.2,
                            title="Sample predictions (labels at their thresholds)",
                            caption_pt=9.5 if narrow else 10.5, title_pt=13, centered=True,
                            gap_px=8 if narrow else 16)
    return grid.save(path)
