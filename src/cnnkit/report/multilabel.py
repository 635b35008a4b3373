"""The multi-label part of ``report.html``: key numbers and the per-label table (AP, the
threshold tuned on validation, precision, recall and F1 at it, support)."""

from __future__ import annotations

import html

__all__ = ["cards", "section"]


def _fmt(v, digits: int = 3) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def cards(metrics: dict) -> list[tuple[str, str]]:
    split = "test" if metrics.get("split", "test") == "test" else "held-out"
    return [(f"{split} mAP", _fmt(metrics.get("map"), 4)),
            ("macro F1 (tuned thresholds)", _fmt(metrics.get("macro_f1"), 4)),
            ("exact match", _fmt(metrics.get("exact_match"), 4)),
            ("Hamming accuracy", _fmt(metrics.get("hamming_accuracy"), 4)),
            (f"{split} loss", _fmt(metrics.get("test_loss"), 4))]


def section(metrics: dict, table) -> str:
    """The per-label table as HTML (``table(header, rows, cls)`` draws it)."""
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
                    "metrics per-label"))
