"""Class imbalance in a run: balanced class weights, a balanced sampling order, and the
warning about classes too rare to learn or to measure.

- ``balanced_class_weight(labels, num_classes)``: sklearn's ``compute_class_weight
  ('balanced')``, ``n_samples / (n_classes * count)``, as Keras's ``class_weight`` dict.
- ``balanced_sample_weights(labels)``: per-sample weights ``1 / count(class)`` for
  ``ResumableLoader(sampling_weights=...)``, which then draws each epoch's order with
  replacement from its own (seeded, checkpointed) generator: every class equally often in
  expectation, like ``torch.utils.data.WeightedRandomSampler``, and resumable.
- ``imbalance_warnings(train_labels, val_labels, class_names)``: one line per problem.
"""

from __future__ import annotations

import torch

__all__ = ["class_counts", "balanced_class_weight", "balanced_sample_weights",
           "imbalance_warnings", "RARE_SHARE_OF_MEDIAN", "MIN_VALIDATION_IMAGES"]

RARE_SHARE_OF_MEDIAN = 0.2   # a class with under 1/5 of the median count is under-represented
MIN_VALIDATION_IMAGES = 5    # fewer held-out images than this: its recall is noise


def class_counts(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Images per class, (num_classes,) int64; multi-hot rows (N×L) count each label."""
    labels = torch.as_tensor(labels)
    if labels.ndim == 2:
        return (labels > 0.5).sum(0).long()
    return torch.bincount(labels.reshape(-1).long(), minlength=num_classes)


def balanced_class_weight(labels, num_classes: int) -> dict[int, float]:
    """``{class: n_samples / (n_classes * count)}`` for the classes present (sklearn's
    'balanced'); classes with no images are left out (Keras then weighs them 1)."""
    counts = class_counts(labels, num_classes)
    n, k = int(counts.sum()), int((counts > 0).sum())
    return {c: n / (k * int(counts[c])) for c in range(num_classes) if counts[c] > 0}


def balanced_sample_weights(labels) -> torch.Tensor:
    """(N,) float weights ``1 / count(label)``: drawn in proportion, each class comes up
    equally often."""
    labels = torch.as_tensor(labels).reshape(-1).long()
    counts = torch.bincount(labels).clamp_min(1).double()
    return (1.0 / counts)[labels]


def imbalance_warnings(train_labels, val_labels, class_names) -> list[str]:
    """Warnings for classes with under ``RARE_SHARE_OF_MEDIAN`` of the median training count,
    or under ``MIN_VALIDATION_IMAGES`` held-out images."""
    k = len(class_names)
    out = []
    train = class_counts(train_labels, k)
    median = float(train.float().quantile(0.5))
    rare = [i for i in range(k) if train[i] < RARE_SHARE_OF_MEDIAN * median]
    if rare:
        listed = ", ".join(f"{class_names[i]} ({int(train[i])})" for i in rare)
        out.append(f"under-represented classes in training: {listed} against a median of "
                   f"{median:g} images per class; consider --class-weight balanced or "
                   "--sampler balanced, or more images of them")
    if val_labels is not None and len(val_labels):
        val = class_counts(val_labels, k)
        few = [i for i in range(k) if val[i] < MIN_VALIDATION_IMAGES]
        if few:
            listed = ", ".join(f"{class_names[i]} ({int(val[i])})" for i in few)
            out.append(f"classes with fewer than {MIN_VALIDATION_IMAGES} held-out images: "
                       f"{listed}; their precision and recall are not reliable (a larger "
                       "--val-split, or a test/ folder, holds out more)")
    return out
