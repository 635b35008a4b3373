"""The head API every zoo network shares.

A zoo network is ``features`` (the convolutional base, ending in a spatial map N×C×h×w),
then a head: pooling or flattening, optional hidden layers, and the final ``classifier``.

- ``forward_features(x)`` -> the feature map (what Grad-CAM, feature extraction and
  ``include_top=False, pooling=None`` return).
- ``forward_head(f, pre_logits=False)`` -> logits (or the vector fed to the classifier).
- ``get_classifier()`` / ``head`` -> the final layer, the one ``reset_classifier`` replaces.
- ``reset_classifier(num_classes, hidden=None, dropout=0.0)`` -> a new, trainable final layer
  (``num_classes=0`` removes it: the model then returns pooled features).
- ``feature_layer()`` -> the last convolutional block (Grad-CAM's default target).
- ``blocks()`` -> the base's stages in order, ``[(name, module), ...]``, which
  ``fine_tune``/``unfreeze(blocks=N)`` count from the end.
- ``num_features`` (width of the classifier's input) and ``num_classes``.

Networks return logits; losses and ``predict`` apply the softmax.
"""

from __future__ import annotations

import torch
from torch import nn


def new_classifier(in_features: int, num_classes: int, hidden: int | None = None,
                   dropout: float = 0.0) -> nn.Module:
    """A fresh head: ``Linear`` (or ``Linear-ReLU-Dropout-Linear`` when ``hidden`` is given)."""
    if num_classes == 0:
        return nn.Identity()
    if hidden:
        layers: list[nn.Module] = [nn.Linear(in_features, hidden), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(hidden, num_classes))
        return nn.Sequential(*layers)
    if dropout:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, num_classes))
    return nn.Linear(in_features, num_classes)


class ZooNet(nn.Module):
    """Base of the hand-written zoo networks: ``features`` -> ``pre_logits`` -> ``classifier``.

    Subclasses set ``self.features`` (nn.Sequential of blocks), ``self.pre_logits`` (pool or
    flatten plus hidden layers), ``self.classifier`` and ``self.num_features``.
    """

    features: nn.Module
    pre_logits: nn.Module
    classifier: nn.Module
    num_features: int
    num_classes: int

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (N, C, h, w)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pre_logits(x)  # (N, num_features)
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.classifier

    @property
    def head(self) -> nn.Module:
        return self.get_classifier()

    def reset_classifier(self, num_classes: int, hidden: int | None = None, dropout: float = 0.0) -> None:
        self.classifier = new_classifier(self.num_features, num_classes, hidden, dropout)
        self.num_classes = num_classes

    def blocks(self) -> list[tuple[str, nn.Module]]:
        out = [(f"features.{n}", m) for n, m in self.features.named_children() if has_params(m)]
        if has_params(self.pre_logits):
            out.append(("pre_logits", self.pre_logits))
        return out

    def feature_layer(self) -> nn.Module:
        return [m for m in self.features.children() if has_params(m)][-1]


def has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def flat_features(features: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Number of values ``features`` produces per image of ``input_shape`` (H, W, C)."""
    h, w, c = input_shape
    with torch.no_grad():
        was = features.training
        features.eval()
        out = features(torch.zeros(1, c, h, w))
        features.train(was)
    return int(out[0].numel())


def check_head(include_top: bool, pooling, own_pooling: str = "pooling") -> None:
    """A backbone wrapper's head arguments: ``pooling`` None, 'avg' or 'max', and only 'avg'
    with ``include_top`` (the network's ``own_pooling`` then stays)."""
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max', got {pooling!r}")
    if include_top and pooling != "avg":
        raise ValueError(f"include_top=True uses the network's own {own_pooling}; pass "
                         "include_top=False to choose pooling=None or 'max'")


def check_input_shape(name: str, input_shape, min_hw: int = 1) -> tuple[int, int, int]:
    """Validate an (H, W, C) tuple (Keras order) and return it as ints."""
    try:
        h, w, c = (int(v) for v in input_shape)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: input_shape must be (height, width, channels), got {input_shape!r}") from None
    if h < min_hw or w < min_hw or c < 1:
        raise ValueError(f"{name}: input_shape {input_shape!r} is too small: height and width must be "
                         f"at least {min_hw}")
    return h, w, c
