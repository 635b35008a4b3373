"""Speed: the machine settings, the compiled kernels, the lean optimizer step, and the
measured defaults that choose among them (docs/speed.md).

- ``perf``: threads, denormals, allocator, channels_last, default precision; the engine
  calls ``perf.ensure_configured`` once (old path ``cnnkit.perf``, the same module).
- ``kernels``: ``compile(jit_compile=True)``'s compiled relu conv -> 2x2 max-pool kernels,
  opt-in (old path ``cnnkit.kernels``, the same module).
- ``fused_step``: the optimizer step without ``torch.optim``'s per-call bookkeeping, exact;
  the engine's (also importable as ``cnnkit.train.optim.step_function``).
- ``measure``: a one-time micro-benchmark of this CPU (bf16 vs fp32 matmul and convolution),
  cached per CPU model and torch version under ``$CNNKIT_CACHE/perf/``.
- ``policy``: the decisions taken from it and from the device (autocast dtype, compiled
  kernels, host syncs, channels_last) and the ``PerformanceWarning`` for a slower flag.
"""
