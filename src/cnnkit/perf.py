"""Old import path: ``cnnkit.perf`` is ``cnnkit.speed.perf`` (the same module object)."""
import sys

from .speed import perf as _perf

sys.modules[__name__] = _perf
