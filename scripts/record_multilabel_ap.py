"""Record scikit-learn's average precision on seeded multi-label scores, for
tests/multilabel/test_metrics.py (run once, offline, where scikit-learn is installed):

    python scripts/record_multilabel_ap.py tests/golden/multilabel/sklearn_ap.json

The scores include ties (rounded to 0.1) and the labels are imbalanced, the cases where a
hand-written AP most often departs from scikit-learn's.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import sklearn
from sklearn.metrics import average_precision_score, f1_score


def main(out: str) -> int:
    rng = np.random.default_rng(17)
    cases = []
    for n, labels, ties in ((40, 5, False), (60, 4, True), (25, 3, True)):
        y = (rng.random((n, labels)) < rng.uniform(0.1, 0.6, labels)).astype(int)
        y[0] = 1  # every label has a positive
        scores = np.clip(0.35 * y + rng.random((n, labels)) * 0.7, 0, 1)
        if ties:
            scores = np.round(scores, 1)
        cases.append({
            "scores": scores.tolist(), "targets": y.tolist(),
            "ap": [float(average_precision_score(y[:, j], scores[:, j])) for j in range(labels)],
            "map": float(average_precision_score(y, scores, average="macro")),
            "f1_at_0.5": [float(v) for v in f1_score(y, scores >= 0.5, average=None,
                                                     zero_division=0)]})
    json.dump({"sklearn": sklearn.__version__, "cases": cases}, open(out, "w"), indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
