"""Models by name: ``create('resnet18', num_classes=10, input_shape=(28, 28, 1))``.

A zoo family registers a builder ``builder(num_classes=..., input_shape=(H, W, C), **kw) ->
nn.Module`` with :func:`register_model`. :func:`create` builds it, loads weights when asked,
chooses the preprocessing the weights need (ImageNet mean/std, resize, channel repeat) and
returns a ``cnnkit.Model`` whose ``architecture`` records how to rebuild it, so ``save`` /
``load_model`` round-trip without downloading anything again.
"""

from __future__ import annotations

import difflib
import fnmatch
import logging
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

log = logging.getLogger("cnnkit")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    family: str
    input_shape: tuple[int, int, int]  # (H, W, C), Keras order
    num_classes: int
    pretrained: bool = False  # published weights exist (torchvision)
    imagenet: bool = False  # an ImageNet backbone: ImageNet mean/std preprocessing
    description: str = ""
    min_size: int = field(default=32)


_REGISTRY: dict[str, ModelEntry] = {}
_LOADED = False


def register_model(name: str | None = None, *, family: str, input_shape=(32, 32, 3), num_classes: int = 10,
                   pretrained: bool = False, imagenet: bool = False, description: str = "",
                   min_size: int = 32):
    """Decorator registering ``builder`` under ``name`` (default: the function's name)."""

    def deco(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or builder.__name__
        if key in _REGISTRY and _REGISTRY[key].builder is not builder:
            raise ValueError(f"a model called {key!r} is already registered")
        _REGISTRY[key] = ModelEntry(key, builder, family, tuple(input_shape), num_classes, pretrained,
                                    imagenet, description or (builder.__doc__ or "").strip(), min_size)
        return builder

    return deco


def _ensure_loaded() -> None:
    global _LOADED
    if not _LOADED:
        _LOADED = True
        from . import zoo  # noqa: F401  (registers the families)


class UnknownModelError(KeyError, ValueError):
    """No model of that name; the message lists the close ones."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


def get_entry(name: str) -> ModelEntry:
    if name.startswith("timm/"):  # timm's models, when timm is installed (zoo/timm_models.py)
        from .zoo.timm_models import entry
        return entry(name)
    _ensure_loaded()
    if name in _REGISTRY:
        return _REGISTRY[name]
    norm = {k.replace("-", "").replace("_", "").lower(): k for k in _REGISTRY}
    key = name.replace("-", "").replace("_", "").lower()
    if key in norm:  # 'ResNet18', 'mobilenet-v3-large', 'simple_cnn'
        return _REGISTRY[norm[key]]
    close = difflib.get_close_matches(name.lower(), list(_REGISTRY), n=5, cutoff=0.5)
    close += [k for k in difflib.get_close_matches(key, list(norm), n=5, cutoff=0.6) if norm[k] not in close
              for k in [norm[k]]]
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownModelError(f"no model called {name!r}.{hint} cnnkit.models.list() shows all {len(_REGISTRY)}.")


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Registered names matching a shell-style ``pattern`` (``'res*'``), sorted; ``pretrained=True``
    keeps those with published weights. timm's models are listed when the pattern names
    them (``'timm/*'``, ``'timm/res*'``)."""
    _ensure_loaded()
    timm = []
    if "timm/" in pattern:
        from .zoo.timm_models import list_names
        timm = list_names(pattern, pretrained)
    return sorted(n for n, e in _REGISTRY.items()
                  if fnmatch.fnmatch(n, pattern) and (e.pretrained or not pretrained)) + timm


def model_info(name: str) -> dict[str, Any]:
    """A JSON-able description of a registered model (for the CLI's ``cnnkit models``)."""
    e = get_entry(name)
    return {"name": e.name, "family": e.family, "input_shape": list(e.input_shape), "num_classes": e.num_classes,
            "pretrained": e.pretrained, "description": e.description}


def build(name: str, num_classes: int | None = None, input_shape=None, head_hidden: int | None = None,
          head_dropout: float = 0.0, **kwargs) -> nn.Module:
    """The bare ``nn.Module`` (random weights, no preprocessing, not wrapped in ``cnnkit.Model``).

    ``head_hidden``/``head_dropout`` replace the classifier by ``Linear(hidden) -> ReLU ->
    Dropout -> Linear(num_classes)`` (see ``reset_classifier``)."""
    e = get_entry(name)
    num_classes = e.num_classes if num_classes is None else int(num_classes)
    module = e.builder(num_classes=num_classes, input_shape=tuple(input_shape or e.input_shape), **kwargs)
    if head_hidden or head_dropout:
        module.reset_classifier(num_classes, head_hidden, head_dropout)
    return module


def _weights_wanted(pretrained, weights):
    if weights is not None and weights is not False:
        return weights
    if pretrained is True:
        return "imagenet"
    if isinstance(pretrained, str):
        return pretrained
    return None


def create(name: str, num_classes: int | None = None, input_shape=None, pretrained: bool | str = False,
           weights: str | None = None, class_names=None, resize: Any = "auto", **kwargs):
    """Build the registered model ``name`` as a ``cnnkit.Model`` (a :class:`~cnnkit.models.transfer.ZooModel`).

    - ``num_classes`` defaults to ``len(class_names)`` or the model's own default.
    - ``input_shape`` is ``(H, W, C)`` (Keras order) of the images you will feed it.
    - ``pretrained=True`` or ``weights='imagenet'`` loads torchvision's published weights
      (cached, checksum-checked); ``weights=PATH`` loads a ``.pth`` state dict or a
      ``.safetensors`` file, every key and shape checked. With ImageNet weights and
      ``num_classes != 1000`` the base is loaded and the classifier is new (and says so).
    - ``resize``: ``'auto'`` (ImageNet backbones: images smaller than the weights' 224 are
      resized to 224 when pretrained, to the backbone's minimum of 32 otherwise), an
      ``(H, W)`` tuple, or ``None`` for no resize.
    - other keyword arguments go to the family's builder (``width=``, ``dropout=``,
      ``include_top=``, ``pooling=``) or to :func:`build` (``head_hidden=``, ``head_dropout=``).
    """
    return create_model(name, num_classes, input_shape, weights=_weights_wanted(pretrained, weights),
                        class_names=class_names, resize=resize, **kwargs)


def create_model(name: str, num_classes: int | None = None, input_shape=None, weights=None, class_names=None,
                 resize: Any = "auto", new_head: bool = False, **kwargs):
    """:func:`create` with ``new_head``: the classifier is new, so a weights file's own classifier
    (any class count) is ignored instead of checked (what ``transfer`` does)."""
    from .weights import load_into, named_spec, read_state_dict

    if isinstance(name, str) and name.startswith("timm/"):
        from .zoo import timm_models
        return timm_models.create_model(name, num_classes, input_shape, weights, class_names,
                                        resize, new_head, **kwargs)
    e = get_entry(name)
    if num_classes is None:
        num_classes = len(class_names) if class_names else e.num_classes
    elif class_names and len(class_names) != int(num_classes) and kwargs.get("include_top", True):
        raise ValueError(f"{e.name}: num_classes={num_classes} but {len(class_names)} class_names were given")
    input_shape = tuple(int(v) for v in (input_shape or e.input_shape))
    module = build(e.name, num_classes, input_shape, **kwargs)
    include_top = kwargs.get("include_top", True)
    head_is_new = new_head or bool(kwargs.get("head_hidden") or kwargs.get("head_dropout"))

    spec = None
    if weights is not None:
        ignore: tuple[str, ...] = () if include_top else ("fc", "classifier")
        if isinstance(weights, str) and not _looks_like_path(weights):
            if not e.pretrained:
                raise ValueError(f"{e.name} has no published weights; pass weights=None or a file path "
                                 f"(models with published weights: {', '.join(list_models(pretrained=True))})")
            spec = named_spec(e.name, weights)
            state, source = read_state_dict(_fetch(spec)), spec.filename
            if include_top and (head_is_new or num_classes != spec.num_classes):
                ignore = (_classifier_key(module),)
                log.warning("%s: loaded %s weights into the base; the %d-class classifier is new "
                            "(random) and needs training", e.name, spec.tag, num_classes)
        else:
            state, source = read_state_dict(weights), str(weights)
            if include_top and head_is_new:
                ignore = (_classifier_key(module),)
        load_into(module, state, ignore=ignore, source=source, arch=e.name)

    pre, resolved_resize = preprocess_for(e, input_shape, pretrained=weights is not None, resize=resize,
                                          input_size=spec.input_size if spec else 224)
    arch_kwargs = {"num_classes": num_classes, "input_shape": list(input_shape), "resize": resolved_resize,
                   **kwargs}
    return wrap(module, e.name, arch_kwargs, input_shape, pre, class_names,
                output="logits" if include_top else "raw")


def rebuild(name, kwargs) -> Any:
    """Rebuild a saved zoo model from its record (``architecture`` of a model file): a
    registered name and its builder's keyword arguments, random weights (the file's own
    weights are loaded next). A record never chooses weights to download or read."""
    if not isinstance(name, str) or not isinstance(kwargs, dict):
        raise ValueError(f"a zoo model is recorded as a name and a dict of arguments, got {name!r}, "
                         f"{type(kwargs).__name__}")
    chosen = [k for k in ("weights", "pretrained") if k in kwargs]
    if chosen:
        raise ValueError(f"the record of {name!r} asks for {chosen[0]}={kwargs[chosen[0]]!r}; a saved "
                         "model's weights are its model.safetensors. Remove the key from config.json")
    return create_model(name, weights=None, **kwargs)


def _looks_like_path(s: str) -> bool:
    import os

    return os.sep in s or "/" in s or s.endswith((".pth", ".pt", ".safetensors", ".bin")) or os.path.exists(s)


def _fetch(spec):
    from .weights import fetch

    return fetch(spec)


def _classifier_key(module: nn.Module) -> str:
    if hasattr(module, "classifier_prefix"):
        return module.classifier_prefix()
    for n, m in module.named_modules():
        if m is module.get_classifier():
            return n
    raise ValueError("cannot find the classifier of this module")


def preprocess_for(entry: ModelEntry, input_shape, pretrained: bool, resize: Any = "auto",
                   input_size: int = 224) -> tuple[dict, list[int] | None]:
    """Preprocess settings for ``entry`` fed images of ``input_shape``; says what it changes."""
    h, w, c = input_shape
    auto = resize == "auto"  # a fresh decision (not a saved model being rebuilt): say what it does
    cfg: dict[str, Any] = {"scale": 1 / 255}
    if not entry.imagenet:
        if resize not in ("auto", None):
            cfg["resize"] = list(resize)
        return cfg, cfg.get("resize")
    from .weights import IMAGENET_MEAN, IMAGENET_STD

    cfg["mean"], cfg["std"] = list(IMAGENET_MEAN), list(IMAGENET_STD)
    notes = []
    if c == 1:
        cfg["channels"] = 3
        notes.append("repeats the single channel to 3")
    elif c != 3:
        raise ValueError(f"{entry.name} takes 3-channel (or 1-channel, repeated) images; input_shape has {c}")
    if resize == "auto":
        target = input_size if pretrained else entry.min_size
        resize = (target, target) if min(h, w) < target else None
    if resize is not None:
        resize = [int(resize[0]), int(resize[1])]
        cfg["resize"] = resize
        notes.append(f"resizes {h}x{w} images to {resize[0]}x{resize[1]}"
                     + (" (the size its pretrained weights expect)" if pretrained else ""))
    if notes and auto:
        msg = f"{entry.name}: preprocessing " + " and ".join(notes) + "; pass resize=None or resize=(H, W) to change"
        log.warning(msg)
        warnings.warn(msg, stacklevel=_user_stacklevel())
    return cfg, resize


def _user_stacklevel() -> int:
    """stacklevel pointing warnings.warn at the first caller outside cnnkit."""
    import os
    import sys

    pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    level, frame = 1, sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(pkg):
        level += 1
        frame = frame.f_back
    return level


def wrap(module: nn.Module, name: str, arch_kwargs: dict, input_shape, preprocess: dict, class_names=None,
         output: str = "logits"):
    """``cnnkit.Model`` around ``module`` with zoo architecture record and preprocessing."""
    from .transfer import ZooModel

    kwargs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in arch_kwargs.items()}
    return ZooModel(module, input_shape=tuple(input_shape), class_names=class_names, preprocess=dict(preprocess),
                    output=output, name=name, architecture={"kind": "zoo", "name": name, "kwargs": kwargs})
