"""``cnnkit train --nproc 2`` for ordinary runs: two CPU processes (gloo, DistributedDataParallel)
train each on its share of every global batch and end with the weights and logs of one process
with the same global batch; rank 0 alone writes the run directory. An interrupt reaching one
rank stops both after the same step, and ``--resume`` continues on two processes to exactly
the weights of a run never stopped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from cli_helpers import TINY, cnnkit_env, run_cli

# 260 training digits in global batches of 32: 9 steps an epoch, 16 + 16 images per step
# (the last 2 + 2). mnist-1conv has no BatchNorm or dropout, so the two processes compute
# exactly what one does, up to the order of floating-point sums.
ARGS = [*TINY, "--epochs", "2", "--no-report", "--device", "cpu", "--val-split", "0.05"]


def _weights(run: Path) -> dict:
    return load_file(str(run / "last" / "model.safetensors"))


def _history(run: Path) -> list[dict]:
    from cnnkit.runs import RunDir
    return RunDir(run).read_history()


def _env(**extra) -> dict:
    return dict(cnnkit_env(), OMP_NUM_THREADS="1", **extra)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    from cnnkit.cli import main
    assert main(["train", *ARGS, "--output", str(out / "one"), "--name", "single"]) == 0
    proc = subprocess.run([sys.executable, "-m", "cnnkit", "train", *ARGS, "--nproc", "2",
                           "--output", str(out / "two"), "--name", "ddp"],
                          env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    return out / "one" / "single", out / "two" / "ddp", proc.stdout


def test_two_processes_match_one_process_with_the_same_global_batch(runs):
    single, ddp, stdout = runs
    assert "x 2 processes" in stdout and stdout.count("run: ") == 1  # rank 0 speaks
    a, b = _weights(single), _weights(ddp)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5)
    one, two = _history(single), _history(ddp)
    assert [r["epoch"] for r in two] == [1, 2]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):  # reduced over the ranks
        np.testing.assert_allclose([r[key] for r in two], [r[key] for r in one], rtol=1e-4, atol=1e-5)
    m1, m2 = (json.loads((r / "metrics.json").read_text()) for r in (single, ddp))
    assert m2["test_accuracy"] == pytest.approx(m1["test_accuracy"], abs=2e-3)


def test_rank_zero_alone_writes_and_the_checkpoint_holds_every_rank(runs):
    _, ddp, _ = runs
    assert [p.name for p in ddp.parent.iterdir()] == ["ddp"]  # no second run directory
    assert json.loads((ddp / "env.json").read_text())["world_size"] == 2
    typed, explicit = (ddp / "command.txt").read_text().splitlines()[1:4:2]
    assert typed.endswith("--name ddp --nproc 2") and explicit.endswith("--nproc 2")
    from cnnkit.runs import RunDir, load_checkpoint
    ckpt = load_checkpoint(RunDir(ddp))
    assert (ckpt.epoch, ckpt.step, ckpt.world_size) == (2, 0, 2)
    assert "rank1.rng.gen.augment" in ckpt.tensors and "rank1.rng.torch" in ckpt.tensors
    assert not any(k.startswith("rank2.") for k in ckpt.tensors)


def test_resume_refuses_another_number_of_processes(runs, capsys):
    _, ddp, _ = runs
    from cnnkit.cli import main
    for nproc in ("1", "3"):
        assert main(["train", "--resume", str(ddp), "--epochs", "3", "--nproc", nproc]) == 2
        assert "trained on 2 processes: resume it on the same number (--nproc 2)" in \
            capsys.readouterr().err


# Under torchrun: rank 0 alone gets SIGINT while its loader hands out global batch 13 (step 4
# of epoch 2); rank 1 never sees a signal and must stop after the same step.
DRIVER = """
import os, signal, sys
from cnnkit import distributed
if os.environ["RANK"] == "0":
    original, seen = distributed.ResumableShardedLoader.__iter__, [0]
    def iterate(self):
        for batch in original(self):
            seen[0] += 1
            if seen[0] == 13:
                os.kill(os.getpid(), signal.SIGINT)
            yield batch
    distributed.ResumableShardedLoader.__iter__ = iterate
from cnnkit.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_interrupt_on_one_rank_stops_both_and_resumes_to_the_same_weights(tmp_path):
    # augmentation: each rank draws from its own generator, which the checkpoint must keep
    args = [*ARGS, "--epochs", "3", "--augment", "shift=0.1", "--output", str(tmp_path)]
    run_cli("train", *args, "--nproc", "2", "--name", "whole", timeout=600)
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    cut = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc-per-node=2", str(script), "train", *args, "--name", "cut"],
                         env=_env(), capture_output=True, text=True, timeout=600)
    run = tmp_path / "cut"
    assert "interrupted at epoch 2, step 4/9" in cut.stdout, cut.stdout + cut.stderr[-3000:]
    from cnnkit.runs import RunDir, load_checkpoint
    ckpt = load_checkpoint(RunDir(run))
    assert (ckpt.epoch, ckpt.step, ckpt.world_size) == (1, 4, 2)
    assert not (run / "metrics.json").exists()

    resumed = run_cli("train", "--resume", run, timeout=600)  # relaunches on 2 processes
    assert "resuming at epoch 2/3, step 4/9" in resumed.stdout and "x 2 processes" in resumed.stdout
    a, b = _weights(tmp_path / "whole"), _weights(run)
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after resuming"
    val = [[(r["epoch"], r["val_loss"], r["val_accuracy"]) for r in _history(p)]
           for p in (tmp_path / "whole", run)]
    assert val[0] == val[1]
