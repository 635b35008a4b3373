"""Record Keras 3 metric and loss values on fixed y_true / y_pred for cnnkit's tests.

Run: /work/tfvenv/bin/python scripts/keras_golden/record_metrics_losses.py
Writes tests/golden/keras/train/metrics_losses.json. Each metric is updated with two batches
(the second with sample weights where noted) so accumulated state is compared, not one batch.
"""

import json
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import numpy as np  # noqa: E402
import keras  # noqa: E402
from keras import losses as kl  # noqa: E402
from keras import metrics as km  # noqa: E402

OUT = Path(__file__).resolve().parents[2] / "tests/golden/keras/train/metrics_losses.json"
rng = np.random.default_rng(2)
N, C = 10, 4
LOGITS = rng.normal(size=(N, C)).astype("float32") * 2
PROBS = (np.exp(LOGITS) / np.exp(LOGITS).sum(1, keepdims=True)).astype("float32")
LABELS = rng.integers(0, C, size=N)
ONE_HOT = np.eye(C, dtype="float32")[LABELS]
MULTI = (rng.random((N, C)) > 0.6).astype("float32")   # multi-label targets
B_TRUE = (rng.random(N) > 0.5).astype("float32")
B_LOGIT = rng.normal(size=N).astype("float32") * 2
B_PROB = (1 / (1 + np.exp(-B_LOGIT))).astype("float32")
W = np.linspace(0.2, 2.0, N).astype("float32")
HALF = N // 2


def plain(v):
    a = np.asarray(v)
    return a.tolist() if a.ndim else float(a)


def two_batches(metric, y_true, y_pred, weighted=False):
    metric.update_state(y_true[:HALF], y_pred[:HALF])
    metric.update_state(y_true[HALF:], y_pred[HALF:], sample_weight=W[HALF:] if weighted else None)
    return plain(metric.result())


# (name, class, kwargs, inputs, weighted)
METRICS = [
    ("precision", "Precision", {}, "binary", False),
    ("precision_t03", "Precision", {"thresholds": 0.3}, "binary", False),
    ("precision_ts", "Precision", {"thresholds": [0.3, 0.5, 0.7]}, "binary", False),
    ("precision_weighted", "Precision", {}, "binary", True),
    ("precision_onehot", "Precision", {}, "onehot", False),
    ("precision_class_id", "Precision", {"class_id": 1}, "onehot", False),
    ("precision_top_k", "Precision", {"top_k": 2}, "onehot", False),
    ("recall", "Recall", {}, "binary", False),
    ("recall_t07", "Recall", {"thresholds": 0.7}, "binary", True),
    ("recall_onehot", "Recall", {}, "onehot", False),
    ("recall_class_id", "Recall", {"class_id": 2}, "onehot", False),
    ("auc", "AUC", {}, "binary", False),
    ("auc_weighted", "AUC", {}, "binary", True),
    ("auc_pr", "AUC", {"curve": "PR"}, "binary", False),
    ("auc_50", "AUC", {"num_thresholds": 50}, "binary", False),
    ("auc_minoring", "AUC", {"summation_method": "minoring"}, "binary", False),
    ("auc_majoring", "AUC", {"summation_method": "majoring"}, "binary", False),
    ("auc_logits", "AUC", {"from_logits": True}, "binary_logits", False),
    ("auc_onehot", "AUC", {}, "onehot", False),
    ("auc_multi_label", "AUC", {"multi_label": True}, "multi", False),
    ("auc_multi_label_weights", "AUC", {"multi_label": True, "label_weights": [1, 2, 0.5, 1]}, "multi", False),
    ("auc_multi_label_pr", "AUC", {"multi_label": True, "curve": "PR"}, "multi", False),
    ("f1_none", "F1Score", {}, "onehot", False),
    ("f1_macro", "F1Score", {"average": "macro"}, "onehot", False),
    ("f1_micro", "F1Score", {"average": "micro"}, "onehot", False),
    ("f1_weighted", "F1Score", {"average": "weighted"}, "onehot", False),
    ("f1_threshold", "F1Score", {"average": "macro", "threshold": 0.3}, "onehot", False),
    ("f1_multi", "F1Score", {"average": "micro", "threshold": 0.2}, "multi", True),
    ("fbeta", "FBetaScore", {"average": "macro", "beta": 2.0}, "onehot", False),
    ("top_k", "TopKCategoricalAccuracy", {"k": 2}, "onehot", False),
    ("top_k_weighted", "TopKCategoricalAccuracy", {"k": 2}, "onehot", True),
    ("sparse_top_k", "SparseTopKCategoricalAccuracy", {"k": 2}, "sparse", False),
    ("categorical_accuracy", "CategoricalAccuracy", {}, "onehot", True),
    ("sparse_categorical_accuracy", "SparseCategoricalAccuracy", {}, "sparse", False),
    ("binary_accuracy", "BinaryAccuracy", {}, "binary", False),
    ("binary_accuracy_t", "BinaryAccuracy", {"threshold": 0.3}, "binary", True),
    ("mae", "MeanAbsoluteError", {}, "onehot", False),
    ("mse", "MeanSquaredError", {}, "onehot", True),
    ("rmse", "RootMeanSquaredError", {}, "onehot", False),
    ("mape", "MeanAbsolutePercentageError", {}, "binary", False),
    ("kld", "KLDivergence", {}, "onehot", False),
]


def inputs(kind):
    return {"binary": (B_TRUE, B_PROB), "binary_logits": (B_TRUE, B_LOGIT), "onehot": (ONE_HOT, PROBS),
            "multi": (MULTI, PROBS), "sparse": (LABELS, PROBS)}[kind]


LOSSES = [
    ("cce", "CategoricalCrossentropy", {}, "onehot"),
    ("cce_ls", "CategoricalCrossentropy", {"label_smoothing": 0.1}, "onehot"),
    ("cce_logits", "CategoricalCrossentropy", {"from_logits": True}, "onehot_logits"),
    ("cce_logits_ls", "CategoricalCrossentropy", {"from_logits": True, "label_smoothing": 0.2}, "onehot_logits"),
    ("cce_sum", "CategoricalCrossentropy", {"reduction": "sum"}, "onehot"),
    ("cce_none", "CategoricalCrossentropy", {"reduction": "none"}, "onehot"),
    ("cce_mean", "CategoricalCrossentropy", {"reduction": "mean"}, "onehot"),
    ("cce_mean_sw", "CategoricalCrossentropy", {"reduction": "mean_with_sample_weight"}, "onehot"),
    ("scce", "SparseCategoricalCrossentropy", {}, "sparse"),
    ("scce_logits", "SparseCategoricalCrossentropy", {"from_logits": True}, "sparse_logits"),
    ("scce_ignore", "SparseCategoricalCrossentropy", {"ignore_class": 1}, "sparse"),
    ("bce", "BinaryCrossentropy", {}, "binary"),
    ("bce_ls", "BinaryCrossentropy", {"label_smoothing": 0.1}, "binary"),
    ("bce_logits", "BinaryCrossentropy", {"from_logits": True}, "binary_logits"),
    ("bce_multi", "BinaryCrossentropy", {}, "multi"),
    ("bfocal", "BinaryFocalCrossentropy", {}, "binary"),
    ("bfocal_balanced", "BinaryFocalCrossentropy", {"apply_class_balancing": True, "alpha": 0.3, "gamma": 1.5},
     "binary"),
    ("bfocal_logits_ls", "BinaryFocalCrossentropy", {"from_logits": True, "label_smoothing": 0.1}, "binary_logits"),
    ("cfocal", "CategoricalFocalCrossentropy", {}, "onehot"),
    ("cfocal_args", "CategoricalFocalCrossentropy", {"alpha": 0.5, "gamma": 1.0, "label_smoothing": 0.1}, "onehot"),
    ("cfocal_logits", "CategoricalFocalCrossentropy", {"from_logits": True}, "onehot_logits"),
    ("hinge", "Hinge", {}, "binary"),
    ("hinge_signed", "Hinge", {}, "signed"),
    ("squared_hinge", "SquaredHinge", {}, "binary"),
    ("categorical_hinge", "CategoricalHinge", {}, "onehot"),
    ("mse", "MeanSquaredError", {}, "onehot"),
    ("mae", "MeanAbsoluteError", {}, "onehot"),
    ("mape", "MeanAbsolutePercentageError", {}, "regress"),
    ("msle", "MeanSquaredLogarithmicError", {}, "regress"),
    ("huber", "Huber", {"delta": 0.5}, "regress"),
    ("log_cosh", "LogCosh", {}, "regress"),
    ("kld", "KLDivergence", {}, "onehot"),
    ("poisson", "Poisson", {}, "onehot"),
    ("cosine", "CosineSimilarity", {}, "onehot"),
]
REG_TRUE = rng.normal(size=(N, 3)).astype("float32") + 2
REG_PRED = rng.normal(size=(N, 3)).astype("float32") + 2


def loss_inputs(kind):
    return {"onehot": (ONE_HOT, PROBS), "onehot_logits": (ONE_HOT, LOGITS), "sparse": (LABELS, PROBS),
            "sparse_logits": (LABELS, LOGITS), "binary": (B_TRUE[:, None], B_PROB[:, None]),
            "binary_logits": (B_TRUE[:, None], B_LOGIT[:, None]), "multi": (MULTI, PROBS),
            "signed": (B_TRUE[:, None] * 2 - 1, B_PROB[:, None]), "regress": (REG_TRUE, REG_PRED)}[kind]


def main():
    out = {"logits": LOGITS.tolist(), "probs": PROBS.tolist(), "labels": LABELS.tolist(),
           "multi": MULTI.tolist(), "b_true": B_TRUE.tolist(), "b_logit": B_LOGIT.tolist(),
           "b_prob": B_PROB.tolist(), "w": W.tolist(), "half": HALF, "reg_true": REG_TRUE.tolist(),
           "reg_pred": REG_PRED.tolist(), "keras_version": keras.__version__,
           "metrics": {}, "losses": {}, "compiled": {}}
    for name, cls, kw, kind, weighted in METRICS:
        y_true, y_pred = inputs(kind)
        out["metrics"][name] = {"class": cls, "kwargs": kw, "inputs": kind, "weighted": weighted,
                                "value": two_batches(getattr(km, cls)(**kw), y_true, y_pred, weighted)}
    for name, cls, kw, kind in LOSSES:
        y_true, y_pred = loss_inputs(kind)
        loss = getattr(kl, cls)(**kw)
        out["losses"][name] = {"class": cls, "kwargs": kw, "inputs": kind,
                               "value": plain(loss(y_true, y_pred)),
                               "weighted": plain(loss(y_true, y_pred, sample_weight=W))}
    # metric strings in compile: which names Keras accepts, and the log keys it writes
    x = rng.normal(size=(N, 5)).astype("float32")
    for names, loss, y, units, act in [
        (["acc", "top_k_categorical_accuracy", "mae", "mse", "precision", "recall", "auc"],
         "categorical_crossentropy", ONE_HOT, C, "softmax"),
        (["accuracy", "sparse_top_k_categorical_accuracy", "sparse_categorical_accuracy"],
         "sparse_categorical_crossentropy", LABELS, C, "softmax"),
        (["accuracy", "precision", "recall", "auc", "binary_accuracy"], "binary_crossentropy", B_TRUE, 1,
         "sigmoid"),
    ]:
        keras.utils.set_random_seed(0)
        kernel = (rng.normal(size=(5, units)) * 0.5).astype("float32")
        m = keras.Sequential([keras.Input((5,)), keras.layers.Dense(units, activation=act)])
        m.layers[0].set_weights([kernel, np.zeros(units, "float32")])
        accepted, errors = list(names), {}
        m.compile(optimizer="sgd", loss=loss, metrics=accepted)
        logs = m.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
        out["compiled"][loss] = {"metrics": accepted, "unknown": errors, "kernel": kernel.tolist(),
                                 "x": x.tolist(), "logs": {k: plain(v) for k, v in logs.items()},
                                 "units": units, "activation": act}
    # plain functions as loss and metric
    def my_loss(y_true, y_pred):
        return keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1) * 2.0

    def my_metric(y_true, y_pred):
        return keras.ops.max(y_pred, axis=-1)

    kernel = (rng.normal(size=(5, C)) * 0.5).astype("float32")
    m = keras.Sequential([keras.Input((5,)), keras.layers.Dense(C, activation="softmax")])
    m.layers[0].set_weights([kernel, np.zeros(C, "float32")])
    m.compile(optimizer="sgd", loss=my_loss, metrics=[my_metric])
    logs = m.evaluate(x, ONE_HOT, batch_size=4, verbose=0, return_dict=True)
    out["functions"] = {"kernel": kernel.tolist(), "x": x.tolist(), "logs": {k: plain(v) for k, v in logs.items()}}
    OUT.write_text(json.dumps(out))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
