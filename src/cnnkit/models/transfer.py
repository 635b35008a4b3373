"""Transfer learning that is right by default.

- :func:`freeze` / :func:`unfreeze` / :func:`set_trainable`: ``requires_grad`` off or on, and
  every BatchNorm of a frozen part stays in inference mode: it normalises with its running
  statistics and never updates them, even when the training loop calls ``model.train()``
  (a forward pre-hook puts it back in eval mode before each call). That is Keras's
  ``trainable = False`` behaviour, and what keeps a "frozen" base really frozen.
- :func:`transfer` builds a zoo backbone with pretrained (or file) weights, a new head for
  ``num_classes`` and a frozen base, in one call.
- :func:`fine_tune` runs the two-stage schedule: train the head with the base frozen, then
  unfreeze all or the last N blocks and train on with lower, per-block (discriminative)
  learning rates.
- :class:`ZooModel` is the ``cnnkit.Model`` the registry returns; it adds Keras's
  ``trainable`` property.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .base import Model

log = logging.getLogger("cnnkit")

__all__ = ["ZooModel", "freeze", "unfreeze", "set_trainable", "freeze_base", "transfer", "fine_tune",
           "discriminative_param_groups", "trainable_report", "blocks_of", "is_frozen_bn"]


# --- BatchNorm stays in inference mode while frozen ------------------------------------------
def _keep_eval(module: nn.Module, args) -> None:
    if module.training:  # (no write in eval mode: tracing and export see a hook that does nothing)
        module.training = False  # a frozen BatchNorm uses (and keeps) its running statistics


def _frozen_hook_keys(m: nn.Module) -> list:
    return [k for k, fn in m._forward_pre_hooks.items() if fn is _keep_eval]


def is_frozen_bn(m: nn.Module) -> bool:
    return isinstance(m, _BatchNorm) and bool(_frozen_hook_keys(m))


def _freeze_bn(m: nn.Module) -> None:
    if not _frozen_hook_keys(m):
        m.register_forward_pre_hook(_keep_eval)
    m.eval()


def _release_bn(m: nn.Module, training: bool) -> None:
    for k in _frozen_hook_keys(m):
        del m._forward_pre_hooks[k]
    m.train(training)


def _params(modules: Iterable[nn.Module]) -> list[nn.Parameter]:
    seen, out = set(), []
    for mod in modules:
        for p in mod.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


# --- what a model is made of -----------------------------------------------------------------
def _net(model: nn.Module) -> nn.Module:
    """The zoo network inside a cnnkit.Model (or the module itself)."""
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, nn.Module) else model


def _name(model: nn.Module) -> str:
    arch = getattr(model, "architecture", None) or {}
    return arch.get("name") or getattr(model, "name", None) or type(_net(model)).__name__


def _has_params(m: nn.Module) -> bool:
    return any(True for _ in m.parameters())


def _layer_list(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """A Sequential's layers (by their Keras names), else the module's children."""
    layers = getattr(net, "layers", None)
    if isinstance(layers, nn.ModuleList):
        return [(getattr(m, "name", None) or str(i), m) for i, m in enumerate(layers)]
    return [(n, m) for n, m in net.named_children() if n != "preprocess"]


def _parts(model: nn.Module) -> tuple[list[tuple[str, nn.Module]], nn.Module | None]:
    """(the base's blocks in order, the head) of a zoo network, a cnnkit.Model around one, a
    Keras-style stack ``[base, pooling, Dense..., Dense]`` or any module."""
    net = _net(model)
    if hasattr(net, "blocks") and callable(getattr(net, "get_classifier", None)):
        return list(net.blocks()), net.get_classifier()
    layers = _layer_list(net)
    bases = [i for i, (_, m) in enumerate(layers) if callable(getattr(m, "blocks", None))]
    if bases:  # the tutorial's Sequential([base_model, GlobalAveragePooling2D(), Dense, Dense])
        i = bases[-1]
        blocks = [(n, m) for n, m in layers[:i] if _has_params(m)]
        blocks += [(f"{layers[i][0]}.{bn}", bm) for bn, bm in layers[i][1].blocks()]
        return blocks, nn.ModuleList([m for _, m in layers[i + 1:]])
    with_params = [(n, m) for n, m in layers if _has_params(m)]
    return with_params[:-1], (with_params[-1][1] if with_params else None)


def blocks_of(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The base's stages in order, first to last (``unfreeze(blocks=N)`` counts from the end)."""
    return _parts(model)[0]


def _head(model: nn.Module) -> nn.Module | None:
    return _parts(model)[1]


# --- freezing --------------------------------------------------------------------------------
def freeze(module: nn.Module) -> nn.Module:
    """Make every parameter of ``module`` untrainable and its BatchNorms inference-only."""
    for p in module.parameters():
        p.requires_grad_(False)
    for m in module.modules():
        if isinstance(m, _BatchNorm):
            _freeze_bn(m)
    return module


def _thaw(module: nn.Module, train_bn: bool = True, training: bool = True) -> None:
    for p in module.parameters():
        p.requires_grad_(True)
    if train_bn:
        for m in module.modules():
            if isinstance(m, _BatchNorm):
                _release_bn(m, training)


def set_trainable(module: nn.Module, trainable: bool) -> None:
    """Keras's ``layer.trainable = flag`` for a whole module (BatchNorm included)."""
    if trainable:
        _thaw(module, training=module.training)
    else:
        freeze(module)


def freeze_base(model: nn.Module) -> nn.Module:
    """Freeze everything but the head (a zoo net's ``get_classifier()``; in a Keras-style stack,
    the layers after the base), which stays trainable."""
    head = _head(model)
    if head is None:
        raise ValueError(f"{_name(model)} has no layer with parameters to train; freeze parts with freeze(module)")
    freeze(_net(model))
    _thaw(head, training=model.training)
    log.info("%s", trainable_report(model))
    return model


def unfreeze(model: nn.Module, blocks: int | str | None = "all", train_bn: bool = True) -> nn.Module:
    """Make the last ``blocks`` stages of the base trainable (``'all'``/``None``: everything).

    The classifier always trains. ``train_bn=False`` keeps the BatchNorms of the unfrozen
    blocks in inference mode (Keras's advice for small datasets).
    """
    net = _net(model)
    if blocks in ("all", None):
        _thaw(net, train_bn, training=model.training)
        log.info("%s", trainable_report(model))
        return model
    stages = blocks_of(model)
    if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 0:
        raise ValueError(f"blocks must be 'all' or a number of blocks (0..{len(stages)}), got {blocks!r}")
    if blocks > len(stages):
        names = ", ".join(n for n, _ in stages)
        raise ValueError(f"{_name(model)} has {len(stages)} blocks ({names}); cannot unfreeze {blocks}. "
                         f"Pass blocks='all' or a number up to {len(stages)}")
    for _, mod in stages[len(stages) - blocks:]:
        _thaw(mod, train_bn, training=model.training)
    head = _head(model)
    if head is not None:
        _thaw(head, train_bn, training=model.training)
    log.info("%s", trainable_report(model))
    return model


def trainable_report(model: nn.Module) -> str:
    """One line saying which blocks train and which are frozen, with parameter counts."""
    parts = list(blocks_of(model))
    head = _head(model)
    if head is not None:
        parts.append(("classifier", head))
    train, frozen = [], []
    for n, m in parts:
        ps = list(m.parameters())
        if not ps:
            continue
        (train if any(p.requires_grad for p in ps) else frozen).append(n)
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_all = sum(p.numel() for p in model.parameters())
    return (f"{_name(model)}: training {n_train:,} of {n_all:,} parameters; "
            f"trainable: {', '.join(train) or 'nothing'}; frozen (BatchNorm in inference mode): "
            f"{', '.join(frozen) or 'nothing'}")


def discriminative_param_groups(model: nn.Module, lr: float, decay: float = 0.5) -> list[dict[str, Any]]:
    """Optimizer parameter groups: the head (and anything outside the blocks) at ``lr``, the last
    block at ``lr * decay``, the one before at ``lr * decay**2``... Frozen parameters are left out."""
    stages = blocks_of(model)
    in_blocks: set[int] = set()
    groups = []
    for k, (name, mod) in enumerate(reversed(stages), start=1):
        ps = [p for p in _params([mod]) if p.requires_grad and id(p) not in in_blocks]
        in_blocks.update(id(p) for p in mod.parameters())
        if ps:
            groups.append({"params": ps, "lr": lr * decay ** k, "name": name})
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in in_blocks]
    if rest:
        groups.insert(0, {"params": rest, "lr": lr, "name": "head"})
    return groups


# --- the model the registry returns ------------------------------------------------------------
class ZooModel(Model):
    """A ``cnnkit.Model`` around a zoo network; ``model.trainable = False`` freezes it the Keras way
    (BatchNorm in inference mode); ``freeze_base()``, ``unfreeze(blocks)``, ``blocks()``."""

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.parameters())

    @trainable.setter
    def trainable(self, value: bool) -> None:
        set_trainable(self.module, bool(value))
        log.info("%s", trainable_report(self))

    def blocks(self) -> list[tuple[str, nn.Module]]:
        return blocks_of(self)

    def freeze_base(self) -> "ZooModel":
        return freeze_base(self)

    def unfreeze(self, blocks: int | str | None = "all", train_bn: bool = True) -> "ZooModel":
        return unfreeze(self, blocks, train_bn)

    def get_config(self) -> dict[str, Any]:
        """What rebuilds this model as a layer of a saved ``Sequential`` (weights travel separately)."""
        arch = self.architecture or {}
        return {"zoo_name": arch.get("name"), "kwargs": dict(arch.get("kwargs", {})), "name": self.name,
                "preprocess": self.preprocess.config(), "trainable": self.trainable}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ZooModel":
        from .preprocess import Preprocess
        from .registry import rebuild

        model = rebuild(config["zoo_name"], config.get("kwargs", {}))
        model.preprocess = Preprocess.from_config(config.get("preprocess"))
        model.name = config.get("name") or model.name
        if not config.get("trainable", True):
            set_trainable(model.module, False)
        return model

    def reset_classifier(self, num_classes: int, hidden: int | None = None, dropout: float = 0.0) -> None:
        self.module.reset_classifier(num_classes, hidden, dropout)
        if self.architecture:
            kw = self.architecture.setdefault("kwargs", {})
            kw.update({"num_classes": num_classes, "head_hidden": hidden, "head_dropout": dropout})


# --- one-call transfer and the fine-tuning schedule ---------------------------------------------
def transfer(backbone: str, num_classes: int | None = None, weights: str | None = "imagenet", *,
             input_shape=None, hidden: int | None = None, dropout: float = 0.0, freeze: bool = True,
             class_names=None, resize: Any = "auto", **kwargs) -> ZooModel:
    """A registry backbone with ``weights``, a new ``num_classes`` head, and (``freeze=True``) its
    base frozen with BatchNorm in inference mode.

    ``weights``: ``'imagenet'`` (torchvision's published weights, cached), a ``.pth`` /
    ``.safetensors`` path (its own classifier, if any, is ignored), or ``None``.
    ``hidden``/``dropout`` add ``Dense(hidden, relu) -> Dropout`` before the new classifier
    (the tutorials' ``Dense(1024, 'relu')`` head).
    """
    from .registry import create_model

    model = create_model(backbone, num_classes=num_classes, input_shape=input_shape, weights=weights,
                         class_names=class_names, resize=resize, new_head=True, head_hidden=hidden,
                         head_dropout=dropout, **kwargs)
    if freeze:
        freeze_base(model)  # logs which blocks train
    return model


def fine_tune(model: nn.Module, x=None, y=None, *, head_epochs: int = 3, epochs: int = 3,
              blocks: int | str = "all", lr: float = 1e-3, fine_tune_lr: float = 1e-4, lr_decay: float = 0.5,
              optimizer: str = "adam", loss: str = "sparse_categorical_crossentropy",
              metrics=("accuracy",), train_bn: bool = True, **fit_kwargs):
    """Two stages: (1) ``head_epochs`` with the base frozen at ``lr``; (2) unfreeze ``blocks``
    (``'all'`` or the last N) and train ``epochs`` more, the head at ``fine_tune_lr`` and each
    block further from it ``lr_decay`` times slower. Returns ``(head_history, fine_tune_history)``;
    the second continues the epoch count of the first.
    """
    from ..train import optim as optim_mod

    # check the block count before spending time on stage 1
    n_blocks = len(blocks_of(model))
    if blocks not in ("all", None) and (not isinstance(blocks, int) or blocks > n_blocks or blocks < 0):
        names = ", ".join(n for n, _ in blocks_of(model))
        raise ValueError(f"{_name(model)} has {n_blocks} blocks ({names}); cannot fine-tune {blocks!r}. "
                         f"Pass blocks='all' or a number up to {n_blocks}")

    def opt_for(groups):
        spec = optim_mod.get(optimizer)
        return spec.build(groups) if isinstance(spec, optim_mod.Optimizer) else spec

    history_head = None
    if head_epochs:
        freeze_base(model)
        head_params = [p for p in model.parameters() if p.requires_grad]
        model.compile(optimizer=opt_for([{"params": head_params, "lr": lr}]), loss=loss, metrics=list(metrics))
        log.info("fine_tune stage 1: training the head for %d epoch(s) at lr %g", head_epochs, lr)
        history_head = model.fit(x, y, epochs=head_epochs, **fit_kwargs)
    unfreeze(model, blocks, train_bn=train_bn)
    groups = discriminative_param_groups(model, fine_tune_lr, lr_decay)
    log.info("fine_tune stage 2: %s", ", ".join(f"{g['name']} lr {g['lr']:.2g}" for g in groups))
    for g in groups:
        g.pop("name")
    model.compile(optimizer=opt_for(groups), loss=loss, metrics=list(metrics))
    history_fine = model.fit(x, y, epochs=head_epochs + epochs, initial_epoch=head_epochs, **fit_kwargs)
    return history_head, history_fine
