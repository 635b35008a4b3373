"""The command line ends promptly (``process_exit.exit_now``) without losing anything: exit
handlers run, buffered output is flushed, the exit status is the command's."""

from __future__ import annotations

import subprocess
import sys

from cli_helpers import cnnkit_env

# a buffered stdout (not a terminal) with text still in its buffer at the end, an exit handler
PROBE = """
import atexit, sys
atexit.register(lambda: print("exit handler ran"))
sys.argv = ["cnnkit", *sys.argv[1:]]
print("buffered before the command")
from cnnkit.cli import entry
entry()
print("not reached: entry() ends the process")
"""


def _probe(*args, **env):
    e = {**cnnkit_env(), **env}
    e.pop("PYTHONUNBUFFERED", None)
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                          env=e, timeout=120)


def test_entry_flushes_output_runs_exit_handlers_and_keeps_the_status():
    ok = _probe("models")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("buffered before the command")
    assert "mnist-2conv" in ok.stdout and ok.stdout.rstrip().endswith("exit handler ran")
    assert "not reached" not in ok.stdout
    bad = _probe("train", "--epochs", "zero")
    assert bad.returncode == 2 and "exit handler ran" in bad.stdout


def test_slow_exit_is_the_ordinary_interpreter_exit():
    proc = _probe("models", CNNKIT_SLOW_EXIT="1")
    assert proc.returncode == 0 and proc.stdout.rstrip().endswith("exit handler ran")
