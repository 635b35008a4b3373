"""Which speed settings a device gets, and one warning for a chosen flag that is slower here.

    from cnnkit.speed import policy
    policy.plan("cpu", precision="auto")     # Plan(autocast_dtype=None, channels_last=True, ...)
    policy.check_flags("cpu", precision="bf16", jit_compile=True)   # warns where slower

The rules, and the measurements behind them (docs/speed.md, "Defaults by machine"):

- Precision. ``'auto'`` is bf16 autocast on CUDA; on a CPU it is fp32, the exact setting
  (bf16 autocast costs seed 003's model about a point of accuracy). The recipes, whose
  accuracy was established in bf16, use :func:`default_precision`: bf16 on a CPU only where
  :func:`cnnkit.speed.measure.measure` finds it more than ``BF16_FAST`` (1.3x) faster than
  fp32. ``precision='bf16'`` where it measures below ``1 / BF16_FAST`` of fp32 (emulated bf16:
  ~50x slower on a Zen 3) is honoured with a ``PerformanceWarning``.
- ``jit_compile=True`` (cnnkit's compiled conv -> pool kernels, CPU only): faster with
  AVX-512 (here 4x on the pooling, 1.08x on seed 003's whole step), no faster on AVX2 (issue
  18 measured 0.75x eager's speed on a Zen 3; the kernels' rewrite since measured 0.94-1.15x
  there, 6 interleaved rounds, median 0.97x). So a rule on torch's CPU capability, not a
  timing: timing it means compiling it, which costs seconds. Elsewhere: one warning.
- Host syncs: on a CPU reading a scalar costs nothing, so the loss is checked for NaN every
  step; on CUDA every ``50`` steps, so the host never waits for the device in between.
- The dataset lives on the training device (one copy when training starts, not one per
  batch); 4-D activations are channels_last (the facade's models; plain modules keep theirs).
"""

from __future__ import annotations

import dataclasses
import warnings

import torch

__all__ = ["PerformanceWarning", "Plan", "DevicePolicy", "POLICIES", "plan", "for_device",
           "autocast_dtype", "default_precision", "bf16_is_fast", "bf16_on_matrix_units",
           "jit_kernels_fast",
           "resolve_jit_compile", "check_flags", "BF16_FAST", "BF16_MATRIX"]

BF16_FAST = 1.3  # bf16 counts as faster (or slower) only beyond this ratio: timing noise
BF16_MATRIX = 3.0  # bf16 at >= 3x fp32: matrix units (Intel AMX measured 4.05x; AVX512-BF16
#   vector FMAs 1.9-2.6x on Zen 4 and Zen 5), where wider recipe networks pay for themselves
_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


class PerformanceWarning(UserWarning):
    """A setting the user chose runs slower on this machine than what cnnkit would pick."""


@dataclasses.dataclass(frozen=True)
class DevicePolicy:
    """What a device type wants from the engine, whatever the flags. The engine reads
    ``auto_autocast`` and ``nan_check_every``; ``data_on_device`` and ``channels_last``
    record what the in-memory loader and the facade's models do on every device (for the
    plan and its tests; they are not switches)."""

    auto_autocast: torch.dtype | None  # precision='auto' -> this autocast dtype (None: fp32)
    nan_check_every: int  # steps between host syncs that check the loss is finite
    data_on_device: bool  # the in-memory loader keeps the dataset on the device
    channels_last: bool  # the facade's models run NHWC activations


POLICIES: dict[str, DevicePolicy] = {
    "cpu": DevicePolicy(auto_autocast=None, nan_check_every=1, data_on_device=True,
                        channels_last=True),
    "cuda": DevicePolicy(auto_autocast=torch.bfloat16, nan_check_every=50, data_on_device=True,
                         channels_last=True),
    "mps": DevicePolicy(auto_autocast=None, nan_check_every=50, data_on_device=True,
                        channels_last=True),
}


def for_device(device) -> DevicePolicy:
    """The policy of ``device``'s type (a GPU-like one for types not listed)."""
    return POLICIES.get(torch.device(device).type, POLICIES["cuda"])


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the engine will do on one device with one set of flags (for tests and records)."""

    device: str
    autocast_dtype: torch.dtype | None
    channels_last: bool
    data_on_device: bool
    nan_check_every: int
    jit_kernels: bool  # cnnkit.speed.kernels' compiled conv -> pool blocks run
    cudnn_benchmark: bool
    tf32: bool

    def as_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["autocast_dtype"] = str(self.autocast_dtype).replace("torch.", "") \
            if self.autocast_dtype else "fp32"
        return out


def autocast_dtype(device, precision: str) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device`` (None: no autocast, fp32)."""
    if precision in _AUTOCAST:
        return _AUTOCAST[precision]
    if precision == "auto":
        return for_device(device).auto_autocast
    return None


def plan(device, precision: str = "auto", jit_compile: bool = False) -> Plan:
    """The settings the engine uses for ``device`` given the user's flags."""
    device = torch.device(device)
    rules = for_device(device)
    return Plan(device=str(device), autocast_dtype=autocast_dtype(device, precision),
                channels_last=rules.channels_last, data_on_device=rules.data_on_device,
                nan_check_every=rules.nan_check_every,
                jit_kernels=bool(jit_compile) and device.type == "cpu",
                cudnn_benchmark=device.type == "cuda", tf32=device.type == "cuda")


# -- measured decisions ---------------------------------------------------------------------
def _measurement(measurement=None):
    if measurement is not None:
        return measurement
    from .measure import measure
    return measure()


def bf16_is_fast(measurement=None) -> bool:
    """bf16 measures more than ``BF16_FAST`` times fp32's throughput on this CPU."""
    return _measurement(measurement).bf16_speedup > BF16_FAST


def bf16_on_matrix_units(measurement=None) -> bool:
    """bf16 measures at least ``BF16_MATRIX`` times fp32 here: matrix tiles (AMX), not vector
    FMAs. The recipes' ``cpu_amx`` fields apply on such CPUs."""
    return _measurement(measurement).bf16_speedup >= BF16_MATRIX


def default_precision(device, measurement=None) -> str:
    """'bf16' on CUDA and on CPUs where bf16 measures fast, else 'fp32' (the recipes' 'auto')."""
    kind = torch.device(device).type
    if kind == "cuda":
        return "bf16"
    if kind == "cpu" and bf16_is_fast(measurement):
        return "bf16"
    return "fp32"


def jit_kernels_fast(capability: str | None = None) -> bool:
    """The compiled conv -> pool kernels beat eager on this CPU: torch runs AVX-512 here."""
    if capability is None:
        capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "")()
    return str(capability).upper().startswith("AVX512")


def resolve_jit_compile(value) -> bool:
    """Keras's ``jit_compile`` argument -> whether cnnkit's compiled kernels run. ``'auto'``
    (Keras 3's default) is eager, as on Keras's torch backend: a compile costs seconds that
    a short fit does not earn back. ValueError for anything but True, False or 'auto'."""
    if value == "auto":
        return False
    if isinstance(value, bool) or value in (0, 1):
        return bool(value)
    raise ValueError(f"jit_compile must be True, False or 'auto', got {value!r}")


_WARNED: set[str] = set()  # flags warned about in this process


def _warn_once(flag: str, message: str) -> None:
    if flag not in _WARNED:
        _WARNED.add(flag)
        warnings.warn(message, PerformanceWarning, stacklevel=4)


def check_flags(device, precision: str = "auto", jit_compile: bool = False, *,
                measurement=None, capability: str | None = None) -> list[str]:
    """Warn (once per process and flag) about each chosen flag that is slower on ``device``;
    the flags are honoured all the same. Returns the warnings' texts (also those given before)."""
    if torch.device(device).type != "cpu":
        return []
    texts = []
    if precision == "bf16":
        m = _measurement(measurement)
        if m.bf16_speedup < 1 / BF16_FAST:
            from .perf import fast_bf16_cpu
            native = "native bf16" if fast_bf16_cpu() else "no native bf16"
            texts.append(("precision", (
                f"precision='bf16' on this CPU ({m.cpu}; {native}) runs matmuls and "
                f"convolutions ~{1 / m.bf16_speedup:.0f}x slower than fp32 (measured: matmul "
                f"{m.bf16_matmul_gflops:.1f} vs {m.fp32_matmul_gflops:.1f} GFLOP/s, conv "
                f"{m.bf16_conv_gflops:.1f} vs {m.fp32_conv_gflops:.1f}); use precision='auto'")))
    if jit_compile and not jit_kernels_fast(capability):
        from .measure import cpu_name
        texts.append(("jit_compile", (
            f"jit_compile=True on this CPU ({cpu_name()}) gains nothing over eager PyTorch: "
            "cnnkit's compiled conv -> pool kernels ran 0.94-1.15x eager's step speed on an "
            "AMD EPYC Zen 3 with AVX2 and cost ~15 s to compile on first use; they are faster "
            "only with AVX-512; use jit_compile=False")))
    for flag, text in texts:
        _warn_once(flag, text)
    return [text for _, text in texts]
