"""The one error type of Keras file reading and writing."""

from __future__ import annotations

from ..saving import ModelFileError


class KerasFileError(ModelFileError):
    """A Keras file that cannot be read, or a model that cannot be written as one.

    The message is one line: what is wrong and what to do instead."""


def short_list(items: list[str], n: int = 8) -> str:
    shown = ", ".join(items[:n])
    return shown + (f", and {len(items) - n} more" if len(items) > n else "")
