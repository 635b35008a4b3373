"""Multi-label metrics: AP against scikit-learn's recorded values, the F1-best thresholds,
exact-match and Hamming accuracy, the labels above their thresholds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cnnkit import metrics_multilabel as mm

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "multilabel" / "sklearn_ap.json"


@pytest.mark.parametrize("case", range(3))
def test_average_precision_matches_scikit_learn(case):
    """scripts/record_multilabel_ap.py recorded these with scikit-learn (ties in two cases)."""
    c = json.loads(GOLDEN.read_text())["cases"][case]
    scores, targets = np.array(c["scores"]), np.array(c["targets"])
    got = [mm.average_precision(scores[:, j], targets[:, j]) for j in range(scores.shape[1])]
    np.testing.assert_allclose(got, c["ap"], rtol=0, atol=1e-12)
    assert mm.mean_average_precision(scores, targets) == pytest.approx(c["map"], abs=1e-12)
    np.testing.assert_allclose(mm.precision_recall_f1(scores, targets, 0.5)["f1"], c["f1_at_0.5"])


def test_a_label_without_positives_has_no_ap_and_leaves_the_mean():
    scores = np.array([[0.9, 0.2], [0.1, 0.8]])
    targets = np.array([[1, 0], [0, 0]])
    assert mm.average_precision(scores[:, 1], targets[:, 1]) is None
    assert mm.mean_average_precision(scores, targets) == 1.0


def _f1(scores, positive, t):
    pred = scores >= t
    tp, fp, fn = (pred & positive).sum(), (pred & ~positive).sum(), (~pred & positive).sum()
    return 2 * tp / (2 * tp + fp + fn)


def test_tuned_threshold_gives_the_best_f1_of_any_threshold():
    rng = np.random.default_rng(4)
    targets = rng.random((200, 3)) < [0.1, 0.4, 0.7]
    scores = np.clip(0.3 * targets + rng.random((200, 3)) * 0.8, 0, 1).round(2)  # with ties
    thresholds = mm.tune_thresholds(scores, targets)
    for j, t in enumerate(thresholds):
        s, pos = scores[:, j], targets[:, j]
        best = max(_f1(s, pos, c) for c in np.unique(s))  # every distinct cut
        assert _f1(s, pos, t) == pytest.approx(best)
        assert _f1(s, pos, t) == _f1(s, pos, t + 1e-9)  # halfway between scores: >= and > agree


def test_tuned_threshold_separates_a_separable_label_exactly():
    scores = np.array([[0.2], [0.35], [0.4], [0.9]])
    targets = np.array([[0], [0], [1], [1]])
    assert mm.tune_thresholds(scores, targets) == [pytest.approx(0.375)]


def test_exact_match_hamming_and_per_label_counts():
    probs = np.array([[0.9, 0.1, 0.6], [0.2, 0.7, 0.4], [0.8, 0.8, 0.1]])
    targets = np.array([[1, 0, 1], [0, 1, 1], [1, 0, 0]])
    r = mm.multilabel_report(probs, targets, ["a", "b", "c"], [0.5, 0.5, 0.5])
    assert r["exact_match"] == pytest.approx(1 / 3)      # only the first row is all right
    assert r["hamming_accuracy"] == pytest.approx(7 / 9)  # two of nine decisions wrong
    # b: 0.8 (not b) ranks above 0.7 (b): AP = precision at full recall = 1/2
    assert r["per_label"]["b"] == pytest.approx(
        {"ap": 0.5, "threshold": 0.5, "precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert r["per_label"]["c"]["recall"] == 0.5
    assert r["thresholds"] == [0.5] * 3


def test_labels_above_their_own_thresholds_most_probable_first():
    got = mm.labels_above([0.3, 0.9, 0.55, 0.2], ["a", "b", "c", "d"], [0.25, 0.5, 0.6, 0.1])
    assert [(q["class"], q["threshold"]) for q in got] == [("b", 0.5), ("a", 0.25), ("d", 0.1)]
    with pytest.raises(ValueError, match="3 thresholds for 4 labels"):
        mm.labels_above([0.3, 0.9, 0.55, 0.2], list("abcd"), [0.1, 0.2, 0.3])
