"""Speed: what this machine is fast at, and the settings that follow from it.

- ``measure``: a one-time micro-benchmark of this CPU (bf16 vs fp32 matmul and convolution),
  cached per CPU model and torch version under ``$CNNKIT_CACHE/perf/``.
- ``policy``: the decisions taken from it and from the device (autocast dtype, compiled
  kernels, host syncs, channels_last) and the ``PerformanceWarning`` for a slower flag.
"""
