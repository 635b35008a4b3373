"""Ending a cnnkit process promptly: exit handlers run and the output is flushed, then the
process leaves without Python's finalization.

Why: after a training run, tearing down torch's modules (and ``torch._dynamo``, which any
``torch.optim`` optimizer imports) took 0.5-1.4 s here, the last seconds of every
``cnnkit train``, where nothing is left to save. Files cnnkit writes are closed before this
point (context managers, atomic writes); loggers close in ``run.loggers``; ``atexit``
handlers (MLflow's end of run, multiprocessing's children) still run. ``CNNKIT_SLOW_EXIT=1``
exits the ordinary way."""

from __future__ import annotations

import atexit
import logging
import os
import sys
from typing import NoReturn

__all__ = ["exit_now"]


def exit_now(code: int = 0, run_exit_handlers: bool = True) -> NoReturn:
    """Run the exit handlers (unless told not to), flush stdout/stderr, end the process."""
    if os.environ.get("CNNKIT_SLOW_EXIT") == "1":
        sys.exit(code)
    if run_exit_handlers:
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or broken: nothing left to save
            pass
    logging.shutdown()
    os._exit(code)
