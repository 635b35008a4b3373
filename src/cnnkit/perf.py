"""Speed settings for the machine at hand: threads, denormals, memory format, precision.

    from cnnkit import perf
    perf.configure()                 # once, before training: right for this CPU or GPU
    net = perf.channels_last(net)    # NHWC memory for 4-D weights (faster convs on CPU and GPU)

On a CPU, ``configure`` uses one intra-op thread per physical core (hyper-threads share the
vector units that convolutions saturate, so they add contention, not speed), flushes
denormal floats to zero (tiny activations late in training otherwise cost ~100x per op),
and leaves the rest to oneDNN. On a GPU it turns on cuDNN autotuning and TF32 matmuls.
``fast_bf16_cpu()`` says whether this CPU has bfloat16 dot-product instructions (AVX512-BF16
or AMX), where ``torch.autocast('cpu', torch.bfloat16)`` makes convolutions several times
faster; the recipes use it to choose their CPU precision.
"""

from __future__ import annotations

import functools
import os

import torch
from torch import nn

__all__ = ["configure", "physical_cores", "channels_last", "fast_bf16_cpu", "cpu_flags",
           "settings", "default_precision"]


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
    """'bf16' on CUDA and on CPUs with native bfloat16, else 'fp32' (the engine's names)."""
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16"
    if device.type == "cpu" and fast_bf16_cpu():
        return "bf16"
    return "fp32"


def configure(device: torch.device | str | None = None, threads: int | None = None,
              deterministic: bool = False) -> dict:
    """Apply the speed settings for ``device`` (default: CUDA when present, else CPU).

    ``threads``: intra-op threads on the CPU (default: physical cores, divided among the
    processes of a torchrun job on this host). Returns :func:`settings`.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if threads is None:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
        threads = max(1, physical_cores() // max(local, 1))
    torch.set_num_threads(int(threads))
    torch.set_flush_denormal(True)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.set_float32_matmul_precision("high")
    return settings()


def settings() -> dict:
    """What is in force now (for run records and benchmark headers)."""
    out = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "physical_cores": physical_cores(),
        "cpu_capability": getattr(torch.backends.cpu, "get_cpu_capability", lambda: "?")(),
        "cpu_bf16": fast_bf16_cpu(),
        "mkldnn": torch.backends.mkldnn.is_available(),
    }
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
