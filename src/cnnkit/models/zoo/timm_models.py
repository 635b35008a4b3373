"""timm's models as zoo backbones: ``create('timm/resnet18', num_classes=10)``.

Any name in ``timm.list_models()`` (timm installed: ``pip install 'cnnkit[timm]'``) is a
registry name with the prefix ``timm/``. The network is ``timm.create_model(name, ...)``
inside :class:`TimmNet`, which gives it the zoo's head API (common.py), so freezing,
``fine_tune``, ``transfer``, Grad-CAM, save/load and export work as for the built-in zoo:

- ``blocks()`` are timm's own coarse parameter groups (``group_matcher(coarse=True)``: the
  stem, then each stage), the classifier left out;
- ``reset_classifier(num_classes, hidden, dropout)`` asks timm for a new classifier and, with
  ``hidden``/``dropout``, puts cnnkit's ``Linear-ReLU-Dropout-Linear`` head in its place;
- the preprocessing is the model's ``pretrained_cfg``: its mean/std, and its input size when
  pretrained weights are loaded (as the zoo resizes to 224).

Weights: ``weights=PATH`` reads a local ``.safetensors`` (or a ``.pth`` state dict, without
unpickling code) in timm's key layout, every key, shape and dtype checked; a classifier for
another number of classes is replaced by a new one (as timm does). ``weights='imagenet'`` /
``pretrained=True`` reads ``$CNNKIT_CACHE/weights/timm/<arch>.safetensors`` when it is there,
else lets timm fetch its default published weights (Hugging Face hub; refused under
``CNNKIT_OFFLINE=1``, naming that path). Only timm's names and a few keyword arguments
reach timm: a saved model's record cannot choose code or files.
"""

from __future__ import annotations

import logging
import os
import warnings
from functools import lru_cache
from typing import Any

import torch
from torch import nn

from .common import check_head, new_classifier

log = logging.getLogger("cnnkit")

PREFIX = "timm/"
# the keyword arguments a caller (or a saved record) may pass on to timm.create_model
TIMM_KWARGS = ("drop_rate", "drop_path_rate")
_CNNKIT_KWARGS = ("head_hidden", "head_dropout", "include_top", "pooling")


def _unknown_model_error():
    from ..registry import UnknownModelError
    return UnknownModelError


class TimmUnavailableError(_unknown_model_error()):
    """timm is not installed, so no ``timm/NAME`` model exists here (a KeyError / ValueError,
    as an unknown name is)."""


def _timm():
    try:
        import timm
    except ImportError as err:
        raise TimmUnavailableError(
            "timm/NAME models: cnnkit needs timm: pip install 'cnnkit[timm]' "
            "(or pip install timm)") from err
    return timm


@lru_cache(maxsize=None)
def timm_names(pretrained: bool = False) -> tuple[str, ...]:
    """Every architecture timm can build (``pretrained=True``: those with published weights)."""
    timm = _timm()
    if not pretrained:
        return tuple(timm.list_models())
    return tuple(sorted({n.split(".")[0] for n in timm.list_models(pretrained=True)}))


def timm_name(name: str) -> str:
    """``'timm/resnet18'`` -> ``'resnet18'``, refusing names timm does not list (one line)."""
    from ..registry import UnknownModelError

    arch = name[len(PREFIX):]
    names = timm_names()
    if arch not in names:
        import difflib
        close = difflib.get_close_matches(arch, names, n=4, cutoff=0.6)
        hint = f" Did you mean {', '.join(PREFIX + c for c in close)}?" if close else ""
        raise UnknownModelError(f"no timm model called {arch!r} (timm {_timm().__version__} "
                                f"lists {len(names)}).{hint} `cnnkit models 'timm/*'` lists them.")
    return arch


def _pretrained_cfg(arch: str) -> dict:
    from timm.models import get_pretrained_cfg
    cfg = get_pretrained_cfg(arch)
    return cfg.to_dict() if cfg is not None else {}


def entry(name: str):
    """The registry's ``ModelEntry`` for ``timm/<arch>`` (input size from its pretrained_cfg)."""
    from ..registry import ModelEntry

    arch = timm_name(name)
    c, h, w = _pretrained_cfg(arch).get("input_size", (3, 224, 224))

    def build(num_classes: int = 1000, input_shape=(h, w, c), include_top=True, pooling="avg",
              **timm_kwargs):  # the registry's builder signature (input_shape: unused)
        return TimmNet(arch, num_classes, include_top, pooling, **timm_kwargs)

    return ModelEntry(PREFIX + arch, build, "timm", (int(h), int(w), int(c)), 1000,
                      pretrained=arch in timm_names(pretrained=True), imagenet=True,
                      description=f"timm {arch}", min_size=32)


def list_names(pattern: str, pretrained: bool = False) -> list[str]:
    import fnmatch
    try:
        names = timm_names(pretrained)
    except TimmUnavailableError:
        return []
    return [PREFIX + n for n in names if fnmatch.fnmatch(PREFIX + n, pattern)]


class TimmNet(nn.Module):
    """A timm model (``self.model``) with the zoo's head API."""

    def __init__(self, arch: str, num_classes: int = 1000, include_top: bool = True,
                 pooling: str | None = "avg", pretrained: bool = False, **timm_kwargs):
        super().__init__()
        check_head(include_top, pooling)
        self.arch = arch
        self.include_top, self.pooling = include_top, pooling
        kw = dict(timm_kwargs)
        if not include_top:  # pooled features (or the feature map) instead of logits
            kw["global_pool"] = {"avg": "avg", "max": "max", None: ""}[pooling]
        self.model = _timm().create_model(arch, pretrained=pretrained,
                                          num_classes=num_classes if include_top else 0, **kw)
        self._new_head = False

    # --- the shared head API ---------------------------------------------------------------
    @property
    def num_features(self) -> int:
        return int(self.model.num_features)

    @property
    def num_classes(self) -> int:
        return int(self.model.num_classes) if self.include_top else 0

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)  # (N, C, h, w) for CNNs; tokens for ViTs

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if not self.include_top and self.pooling is None:
            return x
        return self.model.forward_head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.model.get_classifier()

    @property
    def head(self) -> nn.Module:
        return self.get_classifier()

    def classifier_prefix(self) -> str:
        """State-dict key prefix (in ``self.model``'s keys) of the final classifier."""
        clf = self.get_classifier()
        return next(n for n, m in self.model.named_modules() if m is clf)

    def reset_classifier(self, num_classes: int, hidden: int | None = None,
                         dropout: float = 0.0) -> None:
        if not self.include_top:
            raise ValueError("this backbone was built with include_top=False; add a head on top "
                             "of it or build it with include_top=True")
        self.model.reset_classifier(num_classes)  # timm's own: the right width and pooling
        if hidden or dropout:
            clf = self.get_classifier()
            path = self.classifier_prefix()
            parent, _, leaf = path.rpartition(".")
            owner = self.model.get_submodule(parent) if parent else self.model
            setattr(owner, leaf, new_classifier(clf.in_features, num_classes, hidden, dropout))
        self._new_head = bool(hidden or dropout)

    def blocks(self) -> list[tuple[str, nn.Module]]:
        from timm.models import group_modules

        head = self.classifier_prefix() if self.include_top else None
        out = []
        if not callable(getattr(self.model, "group_matcher", None)):  # no groups: its children
            return [(n, m) for n, m in self.model.named_children()
                    if n != head and any(True for _ in m.parameters())]
        groups = group_modules(self.model, self.model.group_matcher(coarse=True))
        for i, names in sorted(groups.items()):
            keep = [n for n in names if not (head and (n == head or n.startswith(head + ".")))]
            mods = [self.model.get_submodule(n) for n in keep]
            if any(True for m in mods for _ in m.parameters()):
                out.append((_group_name(keep, i), nn.ModuleList(mods)))
        return out

    def feature_layer(self) -> nn.Module:
        info = getattr(self.model, "feature_info", None)
        if info:
            return self.model.get_submodule(info[-1]["module"])
        return self.blocks()[-1][1]


def _group_name(names: list[str], index: int) -> str:
    """The dotted prefix the group's modules share (``layer2``), else ``stem`` / ``groupN``."""
    parts = [n.split(".") for n in names]
    common = []
    for level in zip(*parts):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    return ".".join(common) or ("stem" if index == 0 else f"group{index}")


def _check_kwargs(name: str, kwargs: dict) -> None:
    unknown = sorted(set(kwargs) - set(TIMM_KWARGS) - set(_CNNKIT_KWARGS))
    if unknown:
        raise ValueError(f"{name}: cnnkit passes timm only {', '.join(TIMM_KWARGS)} (and builds "
                         f"{', '.join(_CNNKIT_KWARGS)} itself); got {', '.join(unknown)}. Weights "
                         "come from weights=PATH")


def _load_file(net: TimmNet, path, num_classes: int, new_head: bool, name: str) -> None:
    """A local weights file in timm's key layout into ``net.model``: every key checked; the
    file's classifier only where it fits (else the classifier stays new, and it says so)."""
    from ..weights import load_into, read_state_dict

    state = read_state_dict(path)
    ignore: tuple[str, ...] = ()
    if net.include_top:
        clf = net.classifier_prefix()
        mine = net.model.state_dict()
        differs = any(k in mine and tuple(v.shape) != tuple(mine[k].shape)
                      for k, v in state.items() if k.startswith(clf + "."))
        if new_head or differs:
            ignore = (clf,)
        if differs and not new_head:
            msg = (f"{name}: loaded {path} into the base; its classifier is for another number "
                   f"of classes, so the {num_classes}-class classifier is new (random) and needs "
                   "training")
            log.warning(msg)
            warnings.warn(msg, stacklevel=4)
    else:
        ignore = tuple(k.rsplit(".", 1)[0] for k in state if k not in net.model.state_dict())
    load_into(net.model, state, ignore=ignore, source=str(path), arch=name)


def create_model(name: str, num_classes: int | None = None, input_shape=None, weights=None,
                 class_names=None, resize: Any = "auto", new_head: bool = False, **kwargs):
    """:func:`cnnkit.models.registry.create_model` for ``timm/<arch>`` names (module doc)."""
    from ..registry import _looks_like_path, preprocess_for, wrap

    e = entry(name)
    arch = e.name[len(PREFIX):]
    _check_kwargs(e.name, kwargs)
    if num_classes is None:
        num_classes = len(class_names) if class_names else e.num_classes
    num_classes = int(num_classes)
    input_shape = tuple(int(v) for v in (input_shape or e.input_shape))
    hidden, dropout = kwargs.get("head_hidden"), kwargs.get("head_dropout") or 0.0
    include_top, pooling = kwargs.get("include_top", True), kwargs.get("pooling", "avg")
    timm_kwargs = {k: kwargs[k] for k in TIMM_KWARGS if k in kwargs}

    published = weights is not None and not (isinstance(weights, (str, os.PathLike)) and
                                             _looks_like_path(str(weights)))
    if published and cached_weights(arch).is_file():  # a copy put in the cache: no download
        weights, published = cached_weights(arch), False
    elif published:
        _check_can_download(e.name, weights)
    net = TimmNet(arch, num_classes, include_top, pooling, pretrained=published, **timm_kwargs)
    if weights is not None and not published:
        _load_file(net, weights, num_classes, new_head, e.name)
    if published and include_top and num_classes != 1000:
        log.warning("%s: loaded timm's weights into the base; the %d-class classifier is new "
                    "(random) and needs training", e.name, num_classes)
    if include_top and (hidden or dropout):
        net.reset_classifier(num_classes, hidden, dropout)

    cfg = _pretrained_cfg(arch)
    size = int(cfg.get("input_size", (3, 224, 224))[1])
    pre, resolved_resize = preprocess_for(e, input_shape, pretrained=weights is not None,
                                          resize=resize, input_size=size)
    pre["mean"] = [float(v) for v in cfg.get("mean", pre["mean"])]
    pre["std"] = [float(v) for v in cfg.get("std", pre["std"])]
    arch_kwargs = {"num_classes": num_classes, "input_shape": list(input_shape),
                   "resize": resolved_resize, **kwargs}
    return wrap(net, e.name, arch_kwargs, input_shape, pre, class_names,
                output="logits" if include_top else "raw")


def cached_weights(arch: str):
    """Where ``pretrained=True`` looks first for timm's weights of ``arch``:
    ``$CNNKIT_CACHE/weights/timm/<arch>.safetensors`` (timm's key layout, e.g. the hub's
    ``model.safetensors`` copied there), so offline machines can use published weights."""
    from ..weights import cache_dir
    return cache_dir() / "timm" / f"{arch}.safetensors"


def _check_can_download(name: str, weights) -> None:
    from ...data.download import OFFLINE_ENV, offline
    from ..weights import WeightsUnavailableError

    arch = name[len(PREFIX):]
    if weights not in ("imagenet", True, "default"):
        raise ValueError(f"{name}: weights={weights!r} is neither 'imagenet' (timm's default "
                         "published weights) nor a local file (.safetensors / .pth)")
    if arch not in timm_names(pretrained=True):
        raise ValueError(f"{name}: timm publishes no weights for it; pass weights=None or a "
                         f"file, or put one at {cached_weights(arch)}")
    if offline():
        raise WeightsUnavailableError(
            f"{name}: timm's published weights come from the Hugging Face hub, and {OFFLINE_ENV} "
            f"forbids downloading: put a copy (safetensors, timm's keys) at "
            f"{cached_weights(arch)}, or pass weights=PATH")
