"""Old import path: ``cnnkit.kernels`` is ``cnnkit.speed.kernels`` (the same module object)."""
import sys

from .speed import kernels as _kernels

sys.modules[__name__] = _kernels
