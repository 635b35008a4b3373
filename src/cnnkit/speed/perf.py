"""Speed settings for the machine at hand: threads, denormals, memory format, precision.

    from cnnkit.speed import perf    # or the old path: from cnnkit import perf
    perf.configure()                 # once, before training: right for this CPU or GPU
    net = perf.channels_last(net)    # NHWC memory for 4-D weights (faster convs on CPU and GPU)

On a CPU, ``configure`` uses one intra-op thread per free physical core (hyper-threads
share the vector units that convolutions saturate, so they add contention, not speed; cores
other processes are keeping busy are left to them, see ``auto_threads``), flushes
denormal floats to zero (tiny activations late in training otherwise cost ~100x per op),
keeps freed activation memory in the process instead of handing it back to the OS after
every step (see ``keep_freed_memory``), and leaves the rest to oneDNN. On a GPU it turns on cuDNN autotuning and TF32 matmuls.
``fast_bf16_cpu()`` says whether this CPU has bfloat16 dot-product instructions (AVX512-BF16
or AMX); ``default_precision`` (the recipes' CPU precision) goes by a measurement instead
(``cnnkit.speed.measure``), since flags say what exists, not how fast torch uses it.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import time

import torch
from torch import nn

__all__ = ["configure", "ensure_configured", "auto_threads", "physical_cores", "channels_last",
           "fast_bf16_cpu", "cpu_flags", "settings", "default_precision", "keep_freed_memory"]


def physical_cores() -> int:
    """Physical cores this process may use (affinity-aware; hyper-threads counted once)."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = list(range(os.cpu_count() or 1))
    cores = set()
    for cpu in allowed:
        path = f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list"
        try:
            with open(path) as f:
                siblings = f.read().strip()
        except OSError:
            siblings = str(cpu)
        cores.add(siblings)
    return max(1, len(cores))


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where that file does not exist)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def fast_bf16_cpu() -> bool:
    """True when this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX-BF16)."""
    flags = cpu_flags()
    return bool({"avx512_bf16", "amx_bf16"} & flags) and torch.backends.mkldnn.is_available()


def default_precision(device: torch.device | str) -> str:
    """'bf16' on CUDA and on CPUs where bf16 measures faster than fp32 (``cnnkit.speed.measure``:
    a ~0.1 s micro-benchmark, cached per CPU), else 'fp32' (the engine's names)."""
    from . import policy
    return policy.default_precision(device)


def idle_cores(window_s: float = 0.25) -> float | None:
    """Cores left idle by every process on the machine over the next ``window_s`` seconds
    (from /proc/stat; this process sleeps meanwhile). None where /proc/stat is missing."""
    def sample():
        with open("/proc/stat") as f:
            parts = [float(v) for v in f.readline().split()[1:]]
        return parts[3] + (parts[4] if len(parts) > 4 else 0.0), sum(parts[:8])
    try:
        idle0, total0 = sample()
        time.sleep(window_s)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return (os.cpu_count() or 1) * (idle1 - idle0) / (total1 - total0)


def auto_threads(local_processes: int | None = None) -> int:
    """Intra-op threads for this process: its share of the physical cores that are idle.

    Physical cores (divided among the ranks of a torchrun job on this host), fewer when other
    processes keep some busy right now (measured over a quarter second), at least 1. A busy
    machine gets fewer threads on purpose: an OpenMP thread waiting at a barrier for a
    sibling the OS has descheduled spins, so oversubscribed cores run PyTorch several times
    slower (seed 003's epoch here, others keeping both cores busy: 263 s with 2 threads,
    34 s with 1; on idle cores 2 threads take 15 s and 1 thread 23 s).
    """
    if local_processes is None:
        local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    local_processes = max(local_processes, 1)
    share = max(1, physical_cores() // local_processes)
    idle = idle_cores()
    if idle is None:
        return share
    ratio = physical_cores() / max(os.cpu_count() or 1, 1)  # idle logical -> physical cores
    free = idle * ratio / local_processes
    return max(1, min(share, int(free + 0.3)))


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MALLOC_TUNED: dict = {}


def keep_freed_memory(mmap_threshold_mb: int = 256, trim_threshold_mb: int = 1024) -> bool:
    """Let glibc reuse freed activation buffers instead of returning them to the OS each step.

    By default glibc serves blocks above a few MB with ``mmap`` and unmaps them when freed,
    and trims the heap top once 2x that much is free. A training step allocates and frees
    the same activation buffers every time (seed 003: 7.4 MB for the first conv's output
    alone), so each step page-faults its activations back in: zero-filling fresh pages cost
    ~40% of the step here (18 -> 10.5 ms per step of seed 003's CNN, 2 cores). This raises
    both thresholds, as tcmalloc/jemalloc behave; the process then keeps its peak heap.
    Linux/glibc only (returns False elsewhere, or with ``CNNKIT_MALLOC=default``).
    """
    if _MALLOC_TUNED:
        return _MALLOC_TUNED["on"]
    on = False
    if os.environ.get("CNNKIT_MALLOC", "").strip().lower() != "default" \
            and platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        try:
            libc = ctypes.CDLL("libc.so.6")
            on = bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold_mb << 20)) and \
                bool(libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold_mb << 20))
        except (OSError, AttributeError):
            on = False
    _MALLOC_TUNED["on"] = on
    return on


_CONFIGURED: dict = {}


def configure(device: torch.device | str | None = None, threads: int | None = None,
              deterministic: bool = False) -> dict:
    """Apply the speed settings for ``device`` (default: CUDA when present, else CPU).

    ``threads``: intra-op threads (default: ``$CNNKIT_THREADS`` — a number, or ``auto`` for
    :func:`auto_threads` on a shared busy machine — else this process's share of the
    physical cores, a fixed number so that the same seed gives the same result).
    Returns :func:`settings`.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    env = os.environ.get("CNNKIT_THREADS", "").strip().lower()
    if threads is None and env == "auto":
        threads = auto_threads()
    elif threads is None and env:
        threads = int(env)
    if threads is None:
        # A fixed count by default: results depend (in the last bits) on the thread count, so
        # a count read off the machine's momentary load would make runs unrepeatable.
        local = max(int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1), 1)
        threads = max(1, physical_cores() // local)
    torch.set_num_threads(int(threads))
    torch.set_flush_denormal(True)
    keep_freed_memory()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.set_float32_matmul_precision("high")
    _CONFIGURED[device.type] = int(threads)
    return settings()


def ensure_configured(device: torch.device | str | None = None) -> None:
    """:func:`configure` once per process and device type (the engine calls this).

    Skipped where the user chose already: ``OMP_NUM_THREADS`` set, or ``configure`` called.
    """
    dev_type = torch.device(device).type if device is not None else "cpu"
    if dev_type in _CONFIGURED:
        return
    if os.environ.get("OMP_NUM_THREADS") and not os.environ.get("CNNKIT_THREADS"):
        _CONFIGURED[dev_type] = torch.get_num_threads()
        torch.set_flush_denormal(True)
        keep_freed_memory()
        return
    configure(device)


def settings() -> dict:
    """What is in force now (for run records and benchmark headers)."""
    out = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "physical_cores": physical_cores(),
        "cpu_capability": getattr(torch.backends.cpu, "get_cpu_capability", lambda: "?")(),
        "cpu_bf16": fast_bf16_cpu(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "malloc_keeps_freed": bool(_MALLOC_TUNED.get("on", False)),
    }
    from .measure import measured_already
    measured = measured_already()  # the bf16/fp32 micro-benchmark, where it was taken
    if measured is not None:
        out["cpu_bf16_speedup"] = round(measured.bf16_speedup, 2)
    if torch.cuda.is_available():
        out.update(cuda=torch.cuda.get_device_name(0), cudnn_benchmark=torch.backends.cudnn.benchmark,
                   tf32=torch.backends.cuda.matmul.allow_tf32)
    return out


def channels_last(module: nn.Module) -> nn.Module:
    """Store 4-D parameters and buffers in channels_last (NHWC) memory; returns ``module``.

    A ``cnnkit.Model`` also gets ``memory_format = channels_last`` so the engine hands it NHWC
    batches. Only for networks that never ``.view`` a 4-D activation (use ``flatten``).
    """
    module = module.to(memory_format=torch.channels_last)
    if hasattr(module, "memory_format"):
        module.memory_format = torch.channels_last
    return module
