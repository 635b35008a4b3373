"""Helpers for the command-line tests (imported by name: the test folders are not packages)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"

# 256 bundled digits, the one-conv tutorial network: a few seconds on two shared cores.
TINY = ["--limit", "256", "--model", "mnist-1conv", "--batch-size", "32", "--verbose", "2"]


def cnnkit_env() -> dict:
    env = dict(os.environ)
    threads = os.environ.get("OMP_NUM_THREADS", "2")  # this worker's share (tests/conftest.py)
    env.update(CNNKIT_OFFLINE="1", PYTHONUNBUFFERED="1", CNNKIT_DEVICE="cpu",
               OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads,
               PYTHONFAULTHANDLER="1")  # a crashing subprocess prints where it was
    return env


def run_cli(*args, cwd=None, timeout=300, check=True) -> subprocess.CompletedProcess:
    """``python -m cnnkit ARGS`` in a subprocess; output captured as text."""
    proc = subprocess.run([sys.executable, "-m", "cnnkit", *map(str, args)], cwd=cwd,
                          env=cnnkit_env(), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"cnnkit {' '.join(map(str, args))} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc
