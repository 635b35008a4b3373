"""Multi-label metrics on numpy arrays: average precision (mAP), per-label precision, recall
and F1 at thresholds, the per-label threshold that maximises F1, exact-match and Hamming
accuracy.

``probs`` is (N, L) sigmoid probabilities, ``targets`` (N, L) multi-hot (0/1, any dtype).
A label is predicted when its probability is ``>= threshold``. Average precision is
scikit-learn's ``average_precision_score`` (the step-wise sum of precision times the rise in
recall over the distinct scores, ties taken together; checked against values scikit-learn
recorded, tests/golden/multilabel_ap.json); a label without positives has no AP (None) and
is left out of the macro mean. Hand-written rather than torchmetrics (not a dependency): the
whole computation is one sort and two cumulative sums per label.
"""

from __future__ import annotations

import numpy as np

__all__ = ["average_precision", "mean_average_precision", "tune_thresholds",
           "precision_recall_f1", "multilabel_report", "labels_above", "DEFAULT_THRESHOLD"]

DEFAULT_THRESHOLD = 0.5


def _ranked(scores: np.ndarray, positive: np.ndarray):
    """(distinct scores high to low, true positives and false positives at or above each)."""
    order = np.argsort(-scores, kind="mergesort")
    s, t = scores[order], positive[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # the last row of each run of ties
    tp = np.cumsum(t)[last]
    fp = np.cumsum(~t)[last]
    return s[last], tp, fp


def average_precision(scores, targets) -> float | None:
    """AP of one label (scikit-learn's definition); None when ``targets`` has no positive."""
    scores = np.asarray(scores, np.float64).ravel()
    positive = np.asarray(targets).ravel() > 0.5
    if not positive.any():
        return None
    _, tp, fp = _ranked(scores, positive)
    precision = tp / (tp + fp)
    recall = tp / tp[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def mean_average_precision(probs, targets) -> float:
    """Macro mean of the per-label APs (labels without positives left out; NaN if none)."""
    aps = [average_precision(probs[:, j], targets[:, j]) for j in range(probs.shape[1])]
    aps = [a for a in aps if a is not None]
    return float(np.mean(aps)) if aps else float("nan")


def _best_f1_threshold(scores: np.ndarray, positive: np.ndarray) -> float:
    """The threshold with the highest F1 for one label: halfway between the lowest score
    predicted positive and the next score below it (so ``>=`` and ``>`` agree on these
    scores); the highest such threshold when several tie."""
    if not positive.any():
        return DEFAULT_THRESHOLD
    s, tp, fp = _ranked(scores, positive)
    fn = positive.sum() - tp
    f1 = 2 * tp / (2 * tp + fp + fn)
    k = int(np.argmax(f1))  # first maximum: the fewest predicted positives
    below = s[k + 1] if k + 1 < len(s) else s[k] - 1e-6
    return float((s[k] + below) / 2)


def tune_thresholds(probs, targets) -> list[float]:
    """Per label, the threshold that maximises F1 on (validation) ``probs`` / ``targets``;
    0.5 for a label without positives there."""
    probs, positive = np.asarray(probs, np.float64), np.asarray(targets) > 0.5
    return [_best_f1_threshold(probs[:, j], positive[:, j]) for j in range(probs.shape[1])]


def _as_thresholds(thresholds, n_labels: int) -> np.ndarray:
    if thresholds is None:
        return np.full(n_labels, DEFAULT_THRESHOLD)
    t = np.asarray(thresholds, np.float64).ravel()
    if t.size == 1:
        return np.full(n_labels, float(t[0]))
    if t.size != n_labels:
        raise ValueError(f"{t.size} thresholds for {n_labels} labels; give one per label")
    return t


def precision_recall_f1(probs, targets, thresholds=None) -> dict[str, np.ndarray]:
    """Per-label precision, recall, F1 and support (positives) at ``thresholds``
    (one per label, one for all, or None = 0.5); 0 where undefined (as scikit-learn's
    ``zero_division=0``)."""
    probs = np.asarray(probs, np.float64)
    positive = np.asarray(targets) > 0.5
    predicted = probs >= _as_thresholds(thresholds, probs.shape[1])
    tp = (predicted & positive).sum(0)
    fp = (predicted & ~positive).sum(0)
    fn = (~predicted & positive).sum(0)
    div = lambda a, b: np.divide(a, b, out=np.zeros(len(a)), where=b > 0)  # noqa: E731
    return {"precision": div(tp, tp + fp), "recall": div(tp, tp + fn),
            "f1": div(2 * tp, 2 * tp + fp + fn), "support": positive.sum(0)}


def multilabel_report(probs, targets, class_names, thresholds=None) -> dict:
    """Everything a run records for multi-label data, as JSON-ready numbers: ``map``,
    ``exact_match`` (every label of an image right), ``hamming_accuracy`` (share of the
    N x L decisions right), ``macro_f1`` / ``micro_f1``, ``thresholds`` and ``per_label``
    (AP, threshold, precision, recall, F1, support per label)."""
    probs = np.asarray(probs, np.float64)
    positive = np.asarray(targets) > 0.5
    t = _as_thresholds(thresholds, probs.shape[1])
    predicted = probs >= t
    prf = precision_recall_f1(probs, positive, t)
    tp, fp = int((predicted & positive).sum()), int((predicted & ~positive).sum())
    fn = int((~predicted & positive).sum())
    per_label = {}
    for j, name in enumerate(class_names):
        per_label[str(name)] = {"ap": average_precision(probs[:, j], positive[:, j]),
                                "threshold": float(t[j]),
                                "precision": float(prf["precision"][j]),
                                "recall": float(prf["recall"][j]), "f1": float(prf["f1"][j]),
                                "support": int(prf["support"][j])}
    n = len(probs)
    return {"map": mean_average_precision(probs, positive),
            "exact_match": float((predicted == positive).all(1).mean()) if n else float("nan"),
            "hamming_accuracy": float((predicted == positive).mean()) if n else float("nan"),
            "macro_f1": float(prf["f1"].mean()) if len(t) else float("nan"),
            "micro_f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
            "thresholds": [float(v) for v in t],
            "per_label": per_label}


def labels_above(probs_row, class_names, thresholds=None) -> list[dict]:
    """One image's labels at or above their thresholds, most probable first:
    ``[{"class": name, "probability": p, "threshold": t}, ...]``."""
    p = np.asarray(probs_row, np.float64).ravel()
    t = _as_thresholds(thresholds, len(p))
    chosen = [j for j in np.argsort(-p, kind="stable") if p[j] >= t[j]]
    return [{"class": str(class_names[j]) if class_names else str(j),
             "probability": float(p[j]), "threshold": float(t[j])} for j in chosen]
