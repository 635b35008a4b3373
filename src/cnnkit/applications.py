"""Keras-spelled pretrained backbones: ``ResNet50(weights='imagenet', include_top=False, pooling='avg')``.

Each returns a :class:`cnnkit.models.transfer.ZooModel` (a ``cnnkit.Model``) whose
preprocessing (ImageNet mean/std, resize for small images, channel repeat for grayscale)
travels with it, and whose ``trainable`` property freezes the Keras way::

    base = cnnkit.applications.ResNet50(weights="imagenet", include_top=False,
                                        input_shape=(224, 224, 3), pooling="avg")
    base.trainable = False   # weights frozen AND BatchNorm in inference mode

Feed images as uint8 (0..255) or floats in [0, 1] (the tutorials' ``x / 255.0``); the
model normalises them itself, there is no separate ``preprocess_input`` to forget.
"""

from __future__ import annotations

import os

from .models.registry import create_model
from .models.transfer import ZooModel

__all__ = ["ResNet18", "ResNet34", "ResNet50", "MobileNetV3Large", "MobileNetV3Small", "EfficientNetB0",
           "ConvNeXtTiny"]


def _application(arch: str, include_top: bool = True, weights: str | None = "imagenet", input_tensor=None,
                 input_shape=None, pooling: str | None = None, classes: int = 1000,
                 classifier_activation: str | None = "softmax", resize="auto", name: str | None = None) -> ZooModel:
    if input_tensor is not None:
        raise ValueError("input_tensor is not supported: cnnkit models take tensors when called; "
                         "pass input_shape=(H, W, C)")
    if classifier_activation not in ("softmax", None):
        raise ValueError("classifier_activation must be 'softmax' or None: cnnkit models return logits "
                         "and predict() applies the softmax")
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max', got {pooling!r}")
    if weights is not None and not isinstance(weights, (str, os.PathLike)):
        raise ValueError(f"weights must be 'imagenet', None or a file path, got {weights!r}")
    if include_top and weights == "imagenet" and classes != 1000:
        raise ValueError(f"with weights='imagenet' and include_top=True, classes must be 1000 (got {classes}). "
                         f"For a {classes}-class model on an ImageNet base use include_top=False and add a "
                         f"head, or cnnkit.transfer('{arch}', {classes})")
    kwargs = {"include_top": include_top, "pooling": "avg" if include_top else pooling}
    model = create_model(arch, num_classes=classes, input_shape=input_shape or (224, 224, 3), weights=weights,
                         resize=resize, **kwargs)
    if name:
        model.name = name
    return model


def ResNet18(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax", **kw) -> ZooModel:
    """ResNet-18 (11,689,512 params with top)."""
    return _application("resnet18", include_top, weights, input_tensor, input_shape, pooling, classes,
                        classifier_activation, **kw)


def ResNet34(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax", **kw) -> ZooModel:
    """ResNet-34 (21,797,672 params with top)."""
    return _application("resnet34", include_top, weights, input_tensor, input_shape, pooling, classes,
                        classifier_activation, **kw)


def ResNet50(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax", **kw) -> ZooModel:
    """ResNet-50 (25,557,032 params with top, 23,508,032 without); torchvision's IMAGENET1K_V2 weights."""
    return _application("resnet50", include_top, weights, input_tensor, input_shape, pooling, classes,
                        classifier_activation, **kw)


def MobileNetV3Large(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                     classes=1000, classifier_activation="softmax", **kw) -> ZooModel:
    """MobileNetV3-Large (5,483,032 params with top)."""
    return _application("mobilenet_v3_large", include_top, weights, input_tensor, input_shape, pooling, classes,
                        classifier_activation, **kw)


def MobileNetV3Small(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                     classes=1000, classifier_activation="softmax", **kw) -> ZooModel:
    """MobileNetV3-Small (2,542,856 params with top)."""
    return _application("mobilenet_v3_small", include_top, weights, input_tensor, input_shape, pooling, classes,
                        classifier_activation, **kw)


def EfficientNetB0(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                   classes=1000, classifier_activation="softmax", **kw) -> ZooModel:
    """EfficientNet-B0 (5,288,548 params with top)."""
    return _application("efficientnet_b0", include_top, weights, input_tensor, input_shape, pooling, classes,
                        classifier_activation, **kw)


def ConvNeXtTiny(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                 classes=1000, classifier_activation="softmax", **kw) -> ZooModel:
    """ConvNeXt-Tiny (28,589,128 params with top)."""
    return _application("convnext_tiny", include_top, weights, input_tensor, input_shape, pooling, classes,
                        classifier_activation, **kw)
