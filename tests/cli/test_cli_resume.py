"""Interrupt and resume: a run stopped by Ctrl-C (SIGINT) or killed outright (SIGKILL) and
then continued with ``--resume`` ends with exactly the weights of a run never stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cli_helpers import TINY, cnnkit_env, run_cli

# ~256 digits in batches of 16 (17 steps an epoch) for 8 epochs; checkpoints every epoch.
# Eight, so that after the first checkpoint there is always training left for the signal to
# interrupt, however fast the machine (with three, a quiet machine could finish first).
# Augmentation draws random numbers every step: resuming must restore its generator too.
ARGS = [*TINY, "--batch-size", "16", "--epochs", "8", "--no-report", "--device", "cpu",
        "--augment", "shift=0.1,rotate=10"]


def _weights(run: Path) -> dict:
    return load_file(str(run / "last" / "model.safetensors"))


def _assert_same_weights(a: Path, b: Path):
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), f"{key} differs after resuming"


def _val_history(run: Path) -> list:
    from cnnkit.runs import RunDir
    return [(r["epoch"], r["val_loss"], r["val_accuracy"]) for r in RunDir(run).read_history()]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("resume")
    run_cli("train", *ARGS, "--output", out, "--name", "whole")
    return out / "whole"


def _start(out: Path, name: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cnnkit", "train", *ARGS, "--output", str(out),
                             "--name", name], env=cnnkit_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"training ended before {path} appeared:\n{proc.stdout.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{path} did not appear in {timeout}s")
        time.sleep(0.02)


def test_sigint_finishes_the_step_saves_and_resumes_to_the_same_weights(uninterrupted, tmp_path):
    proc = _start(tmp_path, "cut")
    run = tmp_path / "cut"
    _wait_for(run / "checkpoint" / "state.json", proc)   # epoch 1 is done: now in epoch 2
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 130, out
    assert "interrupted at" in out and f"cnnkit train --resume {run}" in out, out
    assert (run / "last" / "model.safetensors").is_file()
    assert not (run / "metrics.json").exists()           # not evaluated: the run is not over
    resumed = run_cli("train", "--resume", run)
    assert "resuming at epoch" in resumed.stdout
    _assert_same_weights(uninterrupted, run)
    assert _val_history(run) == _val_history(uninterrupted)
    assert (run / "metrics.json").is_file()


def test_sigkill_resumes_from_the_last_checkpoint_to_the_same_weights(uninterrupted, tmp_path):
    proc = _start(tmp_path, "killed")
    run = tmp_path / "killed"
    _wait_for(run / "checkpoint" / "state.json", proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    resumed = run_cli("train", "--resume", run)
    assert "resuming at epoch" in resumed.stdout
    _assert_same_weights(uninterrupted, run)
    assert _val_history(run) == _val_history(uninterrupted)


def test_interrupt_inside_an_epoch_resumes_mid_epoch(tmp_path, monkeypatch):
    """In-process and deterministic: Ctrl-C arrives during step 6 of epoch 2."""
    from cnnkit import experiment
    from cnnkit.config import TrainConfig

    def cfg(name):
        return TrainConfig(limit=256, model="mnist-1conv", batch_size=16, epochs=3, report=False,
                           verbose="0", output=str(tmp_path), name=name, device="cpu",
                           augment="shift=0.1,rotate=10", schedule="cosine", warmup_epochs=0.5,
                           patience=5)

    whole = experiment.train(cfg("whole"), log=lambda *a: None)
    original = experiment.RunLoader.__iter__
    seen = {"n": 0}

    def ctrl_c_in_epoch_two(self):
        for batch in original(self):
            seen["n"] += 1
            if seen["n"] == len(self) + 6:
                os.kill(os.getpid(), signal.SIGINT)
            yield batch

    monkeypatch.setattr(experiment.RunLoader, "__iter__", ctrl_c_in_epoch_two)
    cut = experiment.train(cfg("cut"), log=lambda *a: None)
    monkeypatch.setattr(experiment.RunLoader, "__iter__", original)
    assert cut.interrupted and cut.stopped_at == (1, 6)
    from cnnkit.runs import load_checkpoint
    ckpt = load_checkpoint(cut.run)
    assert (ckpt.epoch, ckpt.step) == (1, 6)
    done = experiment.train(resume=cut.run.path, log=lambda *a: None)
    assert not done.interrupted
    _assert_same_weights(whole.run.path, done.run.path)
    assert done.metrics["test_accuracy"] == whole.metrics["test_accuracy"]


def test_resume_can_train_further(uninterrupted, tmp_path):
    import shutil
    run = tmp_path / "longer"
    shutil.copytree(uninterrupted, run)
    from cnnkit.experiment import train
    lines = []
    train(resume=run, epochs=9, log=lines.append)
    assert "resuming at epoch 9/9" in lines
    from cnnkit.runs import RunDir
    assert [r["epoch"] for r in RunDir(run).read_history()] == list(range(1, 10))
