"""The multi-label side of a run: its data (a labels CSV or a folder per label), its loss
(binary cross-entropy on sigmoid outputs), the per-label thresholds tuned on the validation
split and the metrics a run records (``metrics.json``: mAP, per-label AP / precision /
recall / F1 at the thresholds, exact-match and Hamming accuracy).

A run takes the multi-label path when ``--data`` is a ``.csv`` file, or with
``--multi-label`` and a folder per label. The thresholds (one per label, each maximising F1
on the validation images) are stored with the weights the run reports, in their folder's
``config.json`` (``"thresholds"``), so ``cnnkit predict``, ``serve`` and ``export`` use them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from ..config import ConfigError, TrainConfig

__all__ = ["wants_multilabel", "load_multilabel_data", "mark_multilabel", "label_metrics",
           "store_thresholds", "gathered",
           "LOSS"]

LOSS = "binary_crossentropy"


def wants_multilabel(cfg: TrainConfig) -> bool:
    """Whether ``cfg`` asks for multi-label data (``--multi-label``, or ``--data X.csv``)."""
    return bool(cfg.multi_label) or str(cfg.data).lower().endswith(".csv")


def _read(path: Path, cfg: TrainConfig, class_names=None, image_size=None):
    from ..data.multilabel import (MultiLabelDataError, multilabel_dataset_from_csv,
                                   multilabel_dataset_from_directory)
    from .data import DataError
    size = image_size or (tuple(cfg.image_size) if cfg.image_size else None)
    mode = "grayscale" if cfg.grayscale else "rgb"
    try:
        if path.is_file():
            return multilabel_dataset_from_csv(path, label_delimiter=cfg.label_delimiter,
                                               image_root=cfg.image_root or None,
                                               image_size=size, color_mode=mode,
                                               class_names=class_names)
        if path.is_dir():
            return multilabel_dataset_from_directory(path, image_size=size, color_mode=mode,
                                                     class_names=class_names)
    except MultiLabelDataError as err:
        raise DataError(str(err)) from err
    raise DataError(f"{path}: no such labels CSV or folder; give a CSV of filename,labels rows "
                    "or a folder per label")


def load_multilabel_data(cfg: TrainConfig):
    """The run's ``Data`` from a labels CSV or a folder per label: float32 N×L multi-hot
    labels; a seeded random ``--val-split`` held out (rows cannot be stratified by class);
    ``--limit`` keeps about N training images and the same share of the validation ones."""
    from ..data.multilabel import random_split
    from .data import Data
    if cfg.recipe:
        raise ConfigError(f"--recipe {cfg.recipe}: the recipes train single-label classifiers; "
                          "train multi-label data without --recipe (e.g. --model resnet-cifar)")
    path = Path(cfg.data).expanduser()
    ds = _read(path, cfg)
    notes = []
    tr, va = random_split(len(ds), cfg.val_split, cfg.seed) if cfg.val_split else \
        (np.arange(len(ds)), None)
    if cfg.limit and cfg.limit < len(tr):
        share = cfg.limit / len(tr)
        rng = np.random.default_rng([int(cfg.seed), 0x4C49])
        tr = np.sort(rng.permutation(tr)[:cfg.limit])
        if va is not None:
            va = np.sort(rng.permutation(va)[:max(1, int(round(share * len(va))))])
    gather = lambda idx: (ds.images[torch.from_numpy(idx)], ds.labels[torch.from_numpy(idx)])  # noqa: E731
    train = gather(tr)
    val = gather(va) if va is not None and len(va) else None
    test = None
    if cfg.test_data:
        h, w = ds.images.shape[2:]
        held = _read(Path(cfg.test_data).expanduser(), cfg, class_names=ds.class_names,
                     image_size=(int(h), int(w)))
        test = (held.images, held.labels)
    elif val is not None:
        notes.append("no --test-data: the final evaluation uses the validation images held out "
                     f"from training ({cfg.val_split:.0%}, at random), on which the thresholds "
                     "were also tuned (F1 at them is optimistic)")
    if ds.skipped:
        notes.append(f"{len(ds.skipped)} listed files were skipped (unreadable, missing or "
                     "outside the image folder)")
    unseen = [n for n, c in zip(ds.class_names, train[1].sum(0).tolist()) if c == 0]
    if unseen:
        notes.append(f"labels without a training image: {', '.join(unseen[:8])}")
    root = path.resolve()
    tag = root.parent.name if root.is_file() else root.name
    return Data(train, val, test, ds.class_names, str(path), tag,
                "test" if test is not None else "validation", notes, multi_label=True)


def mark_multilabel(model) -> None:
    """Make ``model`` a multi-label model: one sigmoid per label (its outputs must be logits
    or sigmoids, not a softmax over the labels)."""
    from .build import UnknownModelName
    if getattr(model, "output_activation", None) == "softmax":
        raise UnknownModelName(f"--model {model.name}: ends in a softmax, which makes the labels "
                               "compete; a multi-label model needs one sigmoid (or logit) per "
                               "label: use a zoo model or a model ending in "
                               "Dense(L, activation='sigmoid')")
    model.multi_label = True
    model.thresholds = getattr(model, "thresholds", None)


def label_metrics(model, data, ev: dict) -> dict:
    """Tune one threshold per label on the validation split (maximising F1), set them on
    ``model`` and return the multi-label part of ``metrics.json`` for the evaluation ``ev``
    (``run.evaluate.evaluate(..., per_sample=True)`` on ``data.eval_split``)."""
    from ..metrics_multilabel import multilabel_report, tune_thresholds
    from .evaluate import evaluate
    from .report import EVAL_BATCH_SIZE
    if data.val is not None and len(data.val[0]):
        if data.test_name == "test":
            val = evaluate(model, *data.val, batch_size=EVAL_BATCH_SIZE, per_sample=True)
            probs, labels = val["probabilities"], val["labels"]
        else:
            probs, labels = ev["probabilities"], ev["labels"]
        thresholds = tune_thresholds(probs, labels)
        tuned_on = f"validation split ({len(labels)} images)"
    else:
        thresholds, tuned_on = [0.5] * len(data.class_names), "none (no validation split): 0.5"
    model.multi_label, model.thresholds = True, thresholds
    report = multilabel_report(ev["probabilities"], ev["labels"], data.class_names, thresholds)
    at_half = multilabel_report(ev["probabilities"], ev["labels"], data.class_names, 0.5)
    return {"multi_label": True, "map": report["map"], "exact_match": report["exact_match"],
            "hamming_accuracy": report["hamming_accuracy"], "macro_f1": report["macro_f1"],
            "micro_f1": report["micro_f1"], "macro_f1_at_0.5": at_half["macro_f1"],
            "thresholds": report["thresholds"], "thresholds_tuned_on": tuned_on,
            "per_label": report["per_label"]}


def gathered(probs: np.ndarray, labels: np.ndarray, total: int):
    """Every rank's (probabilities, labels) rows, joined (a collective: all ranks call it).
    The shards (``run.loader.shard``) differ by at most one row, so each is padded to
    ``ceil(total / world)`` rows and the padding dropped after the gather."""
    from ..train import ddp
    rows = -(-total // ddp.world_size())
    pad = rows - len(probs)
    parts = ddp.gather_tensors({
        "p": torch.from_numpy(np.pad(probs, ((0, pad), (0, 0)))).float(),
        "y": torch.from_numpy(np.pad(labels, ((0, pad), (0, 0)))).float(),
        "keep": torch.arange(rows) < len(probs)})
    keep = [part["keep"] for part in parts]
    return (np.concatenate([part["p"][k].numpy() for part, k in zip(parts, keep)]),
            np.concatenate([part["y"][k].numpy() for part, k in zip(parts, keep)]))


def store_thresholds(model_dir, thresholds) -> None:
    """Write ``thresholds`` (and ``multi_label``) into a saved model folder's config.json,
    atomically (the weights are not rewritten)."""
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        return
    config = json.loads(path.read_text())
    config["multi_label"] = True
    config["thresholds"] = [float(t) for t in thresholds]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(config, indent=2))
    os.replace(tmp, path)
