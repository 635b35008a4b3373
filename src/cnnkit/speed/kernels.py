"""Compiled CPU kernels for the tutorials' Conv2D(relu) -> MaxPooling2D((2, 2)) blocks.

``model.compile(..., jit_compile=True)`` (Keras's name for compiling the step to native code)
routes those blocks here on CPUs. PyTorch's eager 2x2 max-pool walks channels_last tensors
slowly (seed 003's 30x30x32 pool takes ~0.5 ms forward and ~0.8 ms backward per batch of 64
on one of these cores, for 3.7 MB of bf16) and its backward zero-fills the input gradient,
then scatters into it. Here ``torch.compile`` (inductor) turns each direction into one
vectorised loop over channels_last memory:

- forward: the max of each 2x2 window, the ReLU, and a one-byte-per-output code saying which
  of the four won (the first maximum in row-major order, as ``max_pool2d`` picks; 4 where the
  ReLU cut it), in the input's dtype so every load is a full vector;
- backward: each input pixel takes its window's gradient where the code names it, else 0.

Values and gradients equal ``relu(max_pool2d(x, 2))`` exactly (tests compare bit for bit).
Compiling needs a C++ compiler; the first use costs seconds (inductor keeps the result in
its on-disk cache for later processes). Without a compiler, or on any compile error, the
block falls back to eager PyTorch with one warning.
"""

from __future__ import annotations

import collections
import functools
import logging
import warnings

import torch
import torch.nn.functional as F

__all__ = ["max_pool2x2_relu", "supports"]

_COMPILED: dict[tuple, "_Compiled"] = {}  # (input shape, dtype) -> kernels
_BROKEN: list[str] = []  # the compile error, once one happened: eager from then on


def supports(x: torch.Tensor, pool_size, strides, padding: str) -> bool:
    """True for what this kernel computes: a 2x2, stride-2, 'valid' pool of a CPU image batch,
    run eagerly. Exporters and compilers (``torch.export``, ``torch.jit.trace``, ONNX,
    ``torch.compile``) see fake or traced tensors and get the plain PyTorch ops instead."""
    return (type(x) is torch.Tensor and x.device.type == "cpu" and x.ndim == 4
            and tuple(pool_size) == (2, 2) and tuple(strides) == (2, 2) and padding == "valid"
            and x.is_floating_point() and not _BROKEN and not _tracing())


def _tracing() -> bool:
    return (torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling()
            or torch.onnx.is_in_onnx_export())


def _pool_forward(x: torch.Tensor):
    # x: (N, H, W, C), a channels_last batch seen through permute(0, 2, 3, 1)
    n, h, w, c = x.shape
    hp, wp = h // 2, w // 2
    v = x[:, :2 * hp, :2 * wp].reshape(n, hp, 2, wp, 2, c)
    a, b, cc, d = v[:, :, 0, :, 0], v[:, :, 0, :, 1], v[:, :, 1, :, 0], v[:, :, 1, :, 1]
    best = torch.maximum(torch.maximum(a, b), torch.maximum(cc, d))
    winner = torch.where(a == best, 0.0, torch.where(b == best, 1.0, torch.where(cc == best, 2.0, 3.0)))
    code = torch.where(best > 0, winner, 4.0).to(x.dtype)  # 4: the ReLU passes no gradient
    return torch.relu(best), code


def _pool_backward(grad: torch.Tensor, code: torch.Tensor, h: int, w: int):
    # grad, code: (N, H // 2, W // 2, C); returns the input gradient (N, H, W, C)
    n, hp, wp, c = grad.shape
    grad6 = grad[:, :, None, :, None, :].expand(n, hp, 2, wp, 2, c)
    code6 = code[:, :, None, :, None, :].expand(n, hp, 2, wp, 2, c)
    rows = torch.arange(2, device=grad.device).view(1, 1, 2, 1, 1, 1)
    cols = torch.arange(2, device=grad.device).view(1, 1, 1, 1, 2, 1)
    full = torch.where(code6 == (2 * rows + cols).to(code.dtype), grad6,
                       torch.zeros((), dtype=grad.dtype)).reshape(n, 2 * hp, 2 * wp, c)
    if (2 * hp, 2 * wp) != (h, w):  # odd sizes: the last row/column never wins a window
        full = F.pad(full, (0, 0, 0, w - 2 * wp, 0, h - 2 * hp))
    return full


class _Compiled:
    """Both directions of the pool for one input shape and dtype, compiled by inductor.

    ``make_fx`` traces each function to a graph and ``torch._inductor.compile`` builds it, so
    a call is ~5 us of Python instead of ``torch.compile``'s guard checks (~20-60 us, and
    there are four calls per conv block and step)."""

    def __init__(self, x: torch.Tensor):  # x: (N, H, W, C)
        from torch.fx.experimental.proxy_tensor import make_fx  # seconds to import: lazily
        # a CUDA build of torch on a machine without CUDA warns when inductor loads; moot here
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        self.hw = tuple(x.shape[1:3])
        out, code = _pool_forward(x)
        self.forward = torch._inductor.compile(make_fx(_pool_forward)(x), [x])
        grad = torch.zeros_like(out)
        backward = functools.partial(_pool_backward, h=self.hw[0], w=self.hw[1])
        self.backward = torch._inductor.compile(make_fx(backward)(grad, code), [grad, code])


_HOT = 8  # calls with one shape before it is compiled: a last short batch is not worth it
_seen: collections.Counter = collections.Counter()


def _kernel_for(x: torch.Tensor) -> _Compiled | None:
    """The compiled kernels for ``x``'s shape once it is hot; None: use eager PyTorch."""
    key = (tuple(x.shape), x.dtype)
    kernel = _COMPILED.get(key)
    if kernel is not None or _BROKEN:
        return kernel
    _seen[key] += 1
    if _seen[key] < _HOT:
        return None
    try:
        kernel = _COMPILED[key] = _Compiled(x.detach().permute(0, 2, 3, 1))
    except Exception as err:  # no C++ compiler, an inductor bug: keep training, eagerly
        _BROKEN.append(f"{type(err).__name__}: {err}"[:300])
        warnings.warn("jit_compile: compiling the pooling kernel failed, so these blocks run "
                      f"eagerly (same results, slower). The error: {_BROKEN[0]}",
                      RuntimeWarning, stacklevel=4)
    return kernel


class _MaxPool2x2ReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, kernel):
        out, code = kernel.forward(x.detach().permute(0, 2, 3, 1))
        ctx.save_for_backward(code)
        ctx.kernel = kernel
        return out.permute(0, 3, 1, 2)  # channels_last strides, NCHW shape

    @staticmethod
    def backward(ctx, grad):
        (code,) = ctx.saved_tensors
        grad = grad.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1)
        full = ctx.kernel.backward(grad, code)
        return full.permute(0, 3, 1, 2), None


def max_pool2x2_relu(x: torch.Tensor) -> torch.Tensor:
    """``relu(max_pool2d(x, 2))`` for an (N, C, H, W) batch: by the compiled kernels once this
    shape is hot, by eager PyTorch before (and for shapes seen only a few times)."""
    x = x.contiguous(memory_format=torch.channels_last)
    kernel = _kernel_for(x)
    if kernel is None:
        return F.relu(F.max_pool2d(x, 2))
    return _MaxPool2x2ReLU.apply(x, kernel)
