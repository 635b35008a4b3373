"""The ``cnnkit train`` options, generated from ``TrainConfig``'s fields.

Each field becomes one option (``batch_size`` -> ``--batch-size``) in its group, with the
field's doc, unit, choices and default as its help; a bool that defaults to False is a
switch (``--grayscale``), one that defaults to True a ``--no-NAME`` switch. Adding a field
to ``TrainConfig`` adds its option here; nothing in this file lists a setting.
Imports nothing heavy: ``cnnkit train --help`` does not load torch.
"""

from __future__ import annotations

import argparse
import dataclasses

__all__ = ["add_config_options", "GROUPS"]

GROUPS = ("data", "model", "optimisation", "run")


def _help(f: dataclasses.Field, default) -> str:
    meta = f.metadata
    text = meta.get("doc", "")
    if meta.get("unit"):
        text += f" [{meta['unit']}]"
    if meta.get("choices"):
        text += f" (one of: {', '.join(meta['choices'])})"
    if default not in (None, "", False, True):
        text += f" [default: {default}]"
    return text.replace("%", "%%")


def _type(f: dataclasses.Field):
    kind = str(f.type)
    if kind.startswith("int"):
        return int
    if kind.startswith("float"):
        return float
    return None  # strings as given; lists ('32,32') are read by TrainConfig's coercion


def add_config_options(parser: argparse.ArgumentParser) -> dict[str, argparse._ArgumentGroup]:
    """Add one option per ``TrainConfig`` field to ``parser``; returns the groups by name.

    Options default to ``argparse.SUPPRESS``, so ``vars(args)`` holds only what was typed
    (the config file and the defaults fill in the rest)."""
    from .config import TrainConfig
    groups = {name: parser.add_argument_group(name) for name in GROUPS}
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        meta, default = f.metadata, getattr(defaults, f.name)
        group = groups[meta.get("group", "run")]
        flag = "--" + f.name.replace("_", "-")
        kw: dict = {"dest": f.name, "default": argparse.SUPPRESS, "help": _help(f, default)}
        if isinstance(default, bool):
            if default:
                flag = "--no-" + f.name.replace("_", "-")
                kw["action"] = "store_false"
            else:
                kw["action"] = "store_true"
        else:
            kw["type"] = _type(f)
            if meta.get("choices"):
                kw["choices"] = list(meta["choices"])
            if meta.get("metavar"):
                kw["metavar"] = meta["metavar"]
            elif not meta.get("choices"):
                kw["metavar"] = f.name.upper()
        group.add_argument(flag, *meta.get("aliases", ()), **kw)
    return groups
