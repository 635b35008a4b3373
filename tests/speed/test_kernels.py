"""Compiled conv-block pooling (``compile(jit_compile=True)``): exact, and safe to fall back."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnkit import Sequential, kernels, layers


needs_compiler = pytest.mark.skipif(
    not any(shutil.which(c) for c in ("g++", "c++", "clang++")),
    reason="inductor needs a C++ compiler to build the kernels")


@pytest.fixture
def fresh_kernels(monkeypatch):
    """Compile at the first call, from an empty cache, with no earlier failure on record."""
    monkeypatch.setattr(kernels, "_HOT", 1)
    monkeypatch.setattr(kernels, "_COMPILED", {})
    monkeypatch.setattr(kernels, "_BROKEN", [])
    monkeypatch.setattr(kernels, "_seen", __import__("collections").Counter())


def _reference(x):
    return torch.relu(F.max_pool2d(x, 2))


@needs_compiler
@pytest.mark.parametrize("dtype, shape", [(torch.float32, (3, 5, 9, 11)),  # odd: floor
                                          (torch.bfloat16, (2, 8, 6, 6))])
def test_values_and_gradients_equal_max_pool_bit_for_bit(fresh_kernels, dtype, shape):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen).to(dtype)
    # ties inside windows (the first maximum must win, as max_pool2d picks) and all-negative
    # windows (the ReLU passes no gradient)
    x[:, :, 0:2, 0:2] = 1.0
    x[:, :, 2:4, 2:4] = -1.0
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    ref = _reference(x)
    grad = torch.randn(ref.shape, generator=gen).to(dtype)
    (ref_grad,) = torch.autograd.grad(ref, x, grad)

    out = kernels.max_pool2x2_relu(x)
    assert kernels._COMPILED, "the kernel was not compiled"
    (out_grad,) = torch.autograd.grad(out, x, grad)
    assert out.dtype == dtype and out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, ref)
    assert torch.equal(out_grad, ref_grad)


def test_a_shape_is_compiled_only_once_hot(monkeypatch):
    monkeypatch.setattr(kernels, "_COMPILED", {})
    monkeypatch.setattr(kernels, "_seen", __import__("collections").Counter())
    built = []
    monkeypatch.setattr(kernels, "_Compiled", lambda x: built.append(tuple(x.shape)) or None)
    x = torch.randn(2, 3, 4, 4)
    for _ in range(kernels._HOT - 1):
        assert torch.equal(kernels.max_pool2x2_relu(x), _reference(x))  # eager meanwhile
    assert built == []
    kernels._kernel_for(x)
    assert built == [(2, 4, 4, 3)]


def test_compile_failure_warns_once_and_trains_on_eagerly(fresh_kernels, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler")
    monkeypatch.setattr(torch._inductor, "compile", broken)
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        out = kernels.max_pool2x2_relu(x)
    assert torch.equal(out, _reference(x))
    out.sum().backward()
    assert x.grad is not None
    assert not kernels.supports(x, (2, 2), (2, 2), "valid")  # eager from then on


def test_only_the_kernels_case_is_routed():
    x = torch.randn(1, 2, 6, 6)
    assert kernels.supports(x, (2, 2), (2, 2), "valid")
    assert not kernels.supports(x, (3, 3), (3, 3), "valid")
    assert not kernels.supports(x, (2, 2), (1, 1), "valid")
    assert not kernels.supports(x, (2, 2), (2, 2), "same")
    assert not kernels.supports(torch.zeros(1, 2, 6, 6, device="meta"), (2, 2), (2, 2), "valid")


def _tiny_cnn(jit_compile: bool):
    torch.manual_seed(0)
    model = Sequential([layers.Input((10, 10, 3)),
                        layers.Conv2D(4, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
                        layers.Flatten(), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  device="cpu", jit_compile=jit_compile)
    return model


@needs_compiler
def test_jit_compile_trains_exactly_as_eager(fresh_kernels):
    rng = np.random.default_rng(0)
    x = rng.random((48, 10, 10, 3), dtype=np.float32)
    y = rng.integers(0, 3, 48)
    eager, jit = _tiny_cnn(False), _tiny_cnn(True)
    h_eager = eager.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
    h_jit = jit.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
    assert kernels._COMPILED, "the jit_compile model never used the compiled kernel"
    assert h_eager.history["loss"] == h_jit.history["loss"]
    for a, b in zip(eager.parameters(), jit.parameters()):
        assert torch.equal(a, b)
    assert np.array_equal(eager.predict(x[:5], verbose=0), jit.predict(x[:5], verbose=0))


def test_tracers_and_exporters_get_the_plain_ops():
    x = torch.randn(1, 2, 6, 6)
    seen = []

    def probe(t):
        seen.append(kernels.supports(t, (2, 2), (2, 2), "valid"))
        return t * 2
    torch.jit.trace(probe, (x,), check_trace=False)
    torch.compile(probe, backend="eager", fullgraph=True)(x)
    assert seen == [False, False]
    assert kernels.supports(x, (2, 2), (2, 2), "valid")


@needs_compiler
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_jit_compiled_model_exports(fresh_kernels, tmp_path, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnx")
    from cnnkit.export import export
    model = _tiny_cnn(True)
    x = np.random.default_rng(0).random((16, 10, 10, 3), dtype=np.float32)
    model.fit(x, np.arange(16) % 3, epochs=1, batch_size=8, verbose=0)
    assert kernels._COMPILED, "the model never used the compiled kernel"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = export(model, tmp_path / f"m.{'onnx' if fmt == 'onnx' else 'pt'}", fmt,
                        n_check=8, verbose=False)
    assert not [w for w in caught if "torch.export failed" in str(w.message)]  # no fallback
    assert result.path.exists() and result.max_abs_diff < 1e-4
