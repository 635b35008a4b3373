"""Starting a data-parallel job: ``torchrun`` on N local processes, apart from the training.

    cnnkit train --nproc 2 ...            # calls launch(2, [...the same command...])
    python -c "from cnnkit.run.launch import launch; launch(2, ['train', ...])"
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

__all__ = ["launch", "launch_command"]


def launch_command(nproc: int, argv: list[str], module: str = "cnnkit",
                   nnodes: int = 1) -> list[str]:
    """The torchrun command line that runs ``python -m <module> <argv>`` on ``nproc`` ranks."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={int(nproc)}"]
    if nnodes == 1:
        cmd.append("--standalone")
    else:
        cmd.append(f"--nnodes={int(nnodes)}")
    return cmd + ["-m", module, *argv]


def launch(nproc: int, argv: list[str], module: str = "cnnkit", env: dict | None = None,
           check: bool = False) -> int:
    """Run ``python -m <module> <argv>`` under torchrun on ``nproc`` local processes.

    Returns the exit status (raises ``CalledProcessError`` when ``check`` and it fails).
    ``cnnkit train --nproc N ...`` calls this with its own argv minus ``--nproc``.
    """
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    run_env = dict(os.environ, **(env or {}))
    # one BLAS/OpenMP thread pool per rank, sized by cnnkit.perf.configure in each rank
    run_env.setdefault("OMP_NUM_THREADS", str(max(1, _physical_cores() // nproc)))
    cmd = launch_command(nproc, argv, module)
    # Ctrl-C reaches torchrun (same terminal process group), which passes it on to the ranks
    # (each in its own session) and waits for them to save and exit. This process must not
    # react itself: subprocess.run would SIGKILL torchrun a quarter second later. (A Python
    # handler, not SIG_IGN: an ignored signal would stay ignored in torchrun after exec.)
    main_thread = threading.current_thread() is threading.main_thread()
    interrupted = []
    old = signal.signal(signal.SIGINT, lambda *_: interrupted.append(1)) if main_thread else None
    try:
        proc = subprocess.Popen(cmd, env=run_env)
        code = proc.wait()
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, old)
    if interrupted and code:
        code = 130  # torchrun reports the ranks' orderly stop after Ctrl-C as its own failure
    if check and code:
        raise subprocess.CalledProcessError(code, cmd)
    return code


def _physical_cores() -> int:
    from ..speed.perf import physical_cores
    return physical_cores()
