"""The CUDA path's logic, checked on the CPU: what the engine would do on a GPU (bf16
autocast, channels_last, data on the device once, no host sync per step, cuDNN autotuning),
and benchmarks/gpu_check.py end to end with --dry-run."""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from cnnkit import perf
from cnnkit.data.loader import InMemoryLoader
from cnnkit.metrics import get as get_metric
from cnnkit.speed import policy
from cnnkit.train import engine, losses

ROOT = Path(__file__).resolve().parents[2]


def test_the_cuda_plan():
    plan = policy.plan("cuda:0", precision="auto", jit_compile=True)
    assert plan.autocast_dtype == torch.bfloat16 and plan.channels_last and plan.data_on_device
    assert plan.nan_check_every == 50  # the host reads the loss once in 50 steps
    assert plan.cudnn_benchmark and plan.tf32
    assert not plan.jit_kernels  # cnnkit's compiled kernels are CPU kernels
    assert policy.plan("cuda", precision="fp32").autocast_dtype is None
    assert policy.plan("cuda", precision="fp16").autocast_dtype == torch.float16
    assert policy.plan("cuda").as_dict()["autocast_dtype"] == "bfloat16"
    cpu = policy.plan("cpu")
    assert cpu.autocast_dtype is None and cpu.nan_check_every == 1 and not cpu.cudnn_benchmark


def test_the_engine_autocasts_cuda_to_bf16():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "CUDA is not available ... disabling autocast"
        ctx = engine._autocast(torch.device("cuda"), "auto")
    assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == torch.bfloat16
    assert isinstance(engine._autocast(torch.device("cpu"), "auto"), contextlib.nullcontext)


def test_configure_for_cuda_turns_on_autotuning_and_tf32(monkeypatch):
    before = (torch.get_num_threads(), torch.backends.cudnn.benchmark,
              torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
              torch.get_float32_matmul_precision())
    monkeypatch.setattr(perf, "_CONFIGURED", {})
    try:
        torch.backends.cudnn.benchmark = False
        torch.backends.cuda.matmul.allow_tf32 = False
        perf.configure("cuda", threads=1)
        assert torch.backends.cudnn.benchmark and torch.backends.cuda.matmul.allow_tf32
        assert torch.backends.cudnn.allow_tf32
        perf.configure("cuda", threads=1, deterministic=True)
        assert not torch.backends.cudnn.benchmark
    finally:
        torch.set_num_threads(before[0])
        (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
         torch.backends.cudnn.allow_tf32) = before[1:4]
        torch.set_float32_matmul_precision(before[4])


def test_the_loader_puts_the_data_on_the_device_once(monkeypatch):
    """Batches come from tensors already on the device ('meta' stands in for a GPU): after
    the first copy no batch-sized host->device copy happens, and the engine's own ``.to``
    of a batch is a no-op."""
    images = torch.zeros(40, 1, 4, 4, dtype=torch.uint8)
    labels = torch.arange(40) % 3
    loader = InMemoryLoader(images, labels, batch_size=8, shuffle=True, seed=0, device="meta")
    assert loader.images.device.type == "meta" and loader.labels.device.type == "meta"
    copies = []
    real_to = torch.Tensor.to

    def to(self, *args, **kwargs):
        out = real_to(self, *args, **kwargs)
        if self.device != out.device:
            copies.append((self.device.type, out.device.type, tuple(self.shape)))
        return out

    monkeypatch.setattr(torch.Tensor, "to", to)
    for epoch in range(2):
        for batch in loader:
            x, y, _ = engine._split_batch(batch, torch.device("meta"))
            assert x.device.type == "meta" and y.device.type == "meta"
    # only the shuffled order, once per epoch, crosses to the device
    assert copies == [("cpu", "meta", (40,))] * 2


@contextlib.contextmanager
def _counting_host_syncs():
    """Counts the Python-level calls that read a tensor's value on the host (each a device
    sync on a GPU): .item(), bool(), float(), int(), .tolist(), .cpu(), .numpy()."""
    count = [0]
    saved = {}
    for name in ("item", "__bool__", "__float__", "__int__", "tolist", "cpu", "numpy"):
        saved[name] = real = getattr(torch.Tensor, name)

        def counted(self, *args, _real=real, **kwargs):
            count[0] += 1
            return _real(self, *args, **kwargs)
        setattr(torch.Tensor, name, counted)
    try:
        yield count
    finally:
        for name, real in saved.items():
            setattr(torch.Tensor, name, real)


def _syncs_in_one_epoch(steps: int) -> int:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    loader = InMemoryLoader(torch.randn(steps * 4, 1, 4, 4), torch.arange(steps * 4) % 3,
                            batch_size=4)
    loss = losses.get("sparse_categorical_crossentropy")
    metrics = [get_metric("accuracy", loss.name)]
    opt = torch.optim.Adam(model.parameters(), fused=True)
    with _counting_host_syncs() as count:
        engine.fit_loop(model, opt, loss, metrics, loader, epochs=1, verbose=0, device="cpu")
    return count[0]


def test_no_host_sync_per_step_under_the_cuda_policy(monkeypatch):
    """With CUDA's policy the training loop reads nothing back per step: one epoch of 50
    steps syncs as often as one of 20 (the epoch's logs, one NaN check per 50 steps). The
    CPU's policy checks the loss every step, where a sync costs nothing."""
    on_cpu = _syncs_in_one_epoch(20), _syncs_in_one_epoch(50)
    assert on_cpu[1] - on_cpu[0] == 30  # one isfinite check per step
    monkeypatch.setitem(policy.POLICIES, "cpu",
                        dataclasses.replace(policy.POLICIES["cuda"], auto_autocast=None))
    like_cuda = _syncs_in_one_epoch(20), _syncs_in_one_epoch(50)
    assert like_cuda[0] == like_cuda[1] < on_cpu[0]


@pytest.mark.slow
def test_gpu_check_runs_end_to_end_on_cpu_with_dry_run(tmp_path):
    out = tmp_path / "gpu.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run",
                           "--json", str(out)], capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "CNNKIT_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert "DRY RUN" in lines[0]
    assert any(line.startswith("seed 003 epoch (256 images, 4 steps of 64") for line in lines)
    assert any("airbench94 published: 2.59-3.29 s on an A100" in line for line in lines)
    assert any(line.startswith("ResNet-50, synthetic 32x32, batch 2") for line in lines)
    import json
    report = json.loads(out.read_text())
    assert report["dry_run"] and report["seed003"]["epoch_s"] > 0
    assert report["resnet50"]["train_images_per_s"] > 0 and len(report["fast"]["runs"]) == 1


@pytest.fixture
def gpu_check():
    import importlib.util
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_stops_at_its_budget_saying_what_it_skipped(gpu_check, capsys, tmp_path):
    import json
    import time
    report = {"seed003": {"epoch_s": 1.0}}
    assert not gpu_check._over_budget(time.perf_counter(), 60, "ResNet-50", report, None)
    assert gpu_check._over_budget(time.perf_counter() - 61, 60, "ResNet-50", report,
                                  str(tmp_path / "r.json"))
    assert capsys.readouterr().out.startswith("gpu_check: 60 s budget spent; skipped ResNet-50\n")
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["skipped"] == "ResNet-50" and saved["seed003"] == {"epoch_s": 1.0}


def test_gpu_check_says_in_one_line_that_there_is_no_gpu(gpu_check, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("gpu_check: no CUDA device")
    assert "--dry-run" in err
