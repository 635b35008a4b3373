"""Machine settings: threads from idle cores, precision choice, channels_last."""

from __future__ import annotations

import os

import torch

import cnnkit
from cnnkit import perf


def test_auto_threads_stays_within_the_cores():
    n = perf.auto_threads()
    assert 1 <= n <= perf.physical_cores()
    assert perf.auto_threads(local_processes=perf.physical_cores() * 4) == 1


def test_idle_cores_is_a_fraction_of_the_machine():
    idle = perf.idle_cores(window_s=0.05)
    assert idle is None or 0.0 <= idle <= (os.cpu_count() or 1) + 1e-6


def test_configure_sets_threads_and_reports(monkeypatch):
    before = torch.get_num_threads()
    try:
        s = perf.configure("cpu", threads=1)
        assert torch.get_num_threads() == 1 and s["threads"] == 1
        monkeypatch.setenv("CNNKIT_THREADS", "2")
        assert perf.configure("cpu")["threads"] == 2
    finally:
        torch.set_num_threads(before)
    assert {"torch", "physical_cores", "cpu_bf16"} <= set(s)


def test_ensure_configured_runs_once(monkeypatch):
    monkeypatch.setattr(perf, "_CONFIGURED", {})
    calls = []
    monkeypatch.setattr(perf, "configure", lambda device=None, **kw: calls.append(device))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    perf.ensure_configured("cpu")
    perf._CONFIGURED["cpu"] = 1
    perf.ensure_configured("cpu")
    assert calls == ["cpu"]


def test_default_precision():
    assert perf.default_precision("cuda") == "bf16"
    # the CPU's choice is measured: tests/speed/test_speed_policy.py
    assert perf.default_precision("mps") == "fp32"


def test_channels_last_converts_weights_and_marks_the_model():
    model = cnnkit.Model(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)), input_shape=(8, 8, 3))
    assert perf.channels_last(model) is model
    assert model.memory_format == torch.channels_last
    assert model.module[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_default_threads_are_fixed_and_auto_is_opt_in(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("CNNKIT_THREADS", raising=False)
        monkeypatch.setattr(perf, "auto_threads", lambda *a, **k: 99)  # must not be consulted
        assert perf.configure("cpu")["threads"] == perf.physical_cores()
        monkeypatch.setenv("CNNKIT_THREADS", "auto")
        monkeypatch.setattr(perf, "auto_threads", lambda *a, **k: 1)
        assert perf.configure("cpu")["threads"] == 1
    finally:
        torch.set_num_threads(before)
