"""Warnings that point at the user's line, not at cnnkit's internals."""

from __future__ import annotations

import os
import sys
import warnings

_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../cnnkit


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` attributed to the first caller outside the cnnkit package."""
    frame, level = sys._getframe(1), 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PKG):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
