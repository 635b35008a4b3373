"""Recipe runs interrupt and resume like ordinary runs: Ctrl-C inside an epoch or a SIGKILL,
then ``--resume``, ends with exactly the weights (and held-out accuracies) of a run never
stopped. The recipe here is a tiny one registered for the tests, with every kind of state a
recipe carries: whitening (its bias frozen after one epoch), a lookahead average, flip and
translate augmentation, a triangular schedule, a fractional last epoch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cli_helpers import cnnkit_env

RECIPE = dict(name="resume-test", description="a tiny recipe for the resume tests",
              widths=(4, 8, 8), epochs=3.5, batch_size=32, whiten_bias_epochs=1.0,
              whiten_images=64, lookahead=(1.0, 0.9, 3.0, 2), translate=2, tta="flip",
              eval_batch_size=512, precision="fp32", compile="off", lr=4.0)
# 256 bundled digits (260 after the per-class split): 8 steps an epoch, 28 steps in all
ARGS = ["--recipe", "resume-test", "--limit", "256", "--val-split", "0.05", "--device", "cpu",
        "--verbose", "0", "--no-report"]
CUT_AT = 13  # the 13th batch: step 5 of epoch 2

# Registers the recipe, optionally signals itself when the loader yields batch KILL_AT (a
# deterministic stand-in for a signal from outside; under torchrun only rank 0 does), then
# runs the command line.
DRIVER = f"""
import os, signal, sys
from cnnkit import recipes
from cnnkit.run.loader import ResumableLoader
recipes.register(recipes.Recipe(**{RECIPE!r}))
at = int(os.environ.get("KILL_AT", "0"))
if at and os.environ.get("RANK", "0") == "0":
    def iterate(self, original=ResumableLoader.__iter__, seen=[0]):
        for batch in original(self):
            seen[0] += 1
            if seen[0] == at:
                os.kill(os.getpid(), getattr(signal, os.environ["KILL_SIGNAL"]))
            yield batch
    ResumableLoader.__iter__ = iterate
from cnnkit.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture
def recipe(monkeypatch):
    from cnnkit import recipes
    monkeypatch.setitem(recipes.RECIPES, RECIPE["name"], recipes.Recipe(**RECIPE))
    return recipes


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The uninterrupted run (in this process)."""
    from cnnkit import recipes
    from cnnkit.cli import main
    out = tmp_path_factory.mktemp("recipe-resume")
    recipes.RECIPES[RECIPE["name"]] = recipes.Recipe(**RECIPE)
    try:
        assert main(["train", *ARGS, "--output", str(out), "--name", "whole"]) == 0
    finally:
        del recipes.RECIPES[RECIPE["name"]]
    return out / "whole"


def _driver(tmp_path: Path, *args, kill_at: int = 0, kill_signal: str = "SIGKILL",
            nproc: int = 1):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = dict(cnnkit_env(), KILL_AT=str(kill_at), KILL_SIGNAL=kill_signal)
    launcher = [sys.executable]
    if nproc > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
        env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([*launcher, str(script), *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600)


def _assert_same_weights(a: Path, b: Path):
    wa, wb = load_file(str(a / "last" / "model.safetensors")), load_file(str(b / "last" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), f"{key} differs after resuming"


def _evaluations(run: Path) -> list:
    from cnnkit.runs import RunDir
    return [(r["epoch"], r["step"], r["val_accuracy"]) for r in RunDir(run).read_history()]


def test_recipe_ctrl_c_inside_an_epoch_saves_and_resumes_to_the_same_weights(
        whole, recipe, tmp_path, monkeypatch, capsys):
    from cnnkit.cli import main
    from cnnkit.run.loader import ResumableLoader
    from cnnkit.runs import RunDir, load_checkpoint
    original, seen = ResumableLoader.__iter__, {"n": 0}

    def ctrl_c_at_step_13(self):
        for batch in original(self):
            seen["n"] += 1
            if seen["n"] == CUT_AT:
                os.kill(os.getpid(), signal.SIGINT)
            yield batch

    monkeypatch.setattr(ResumableLoader, "__iter__", ctrl_c_at_step_13)
    assert main(["train", *ARGS, "--output", str(tmp_path), "--name", "cut"]) == 130
    monkeypatch.setattr(ResumableLoader, "__iter__", original)
    run = tmp_path / "cut"
    out = capsys.readouterr().out
    assert "interrupted at epoch 2, step 5" in out and f"cnnkit train --resume {run}" in out
    assert (run / "last" / "model.safetensors").is_file() and not (run / "metrics.json").exists()
    ckpt = load_checkpoint(RunDir(run))
    assert (ckpt.epoch, ckpt.step, ckpt.meta["recipe"]["steps_done"]) == (1, 5, 13)
    assert any(".ema." in k for k in ckpt.tensors)  # the lookahead average is saved too
    assert {p.suffix for p in (run / "checkpoint").iterdir()} == {".json", ".safetensors"}

    assert main(["train", "--resume", str(run)]) == 0
    assert "resuming at epoch 2, step 5/8 (13 of 28 steps done)" in capsys.readouterr().out
    _assert_same_weights(whole, run)
    assert _evaluations(run) == _evaluations(whole)
    metrics = [json.loads((r / "metrics.json").read_text()) for r in (whole, run)]
    assert metrics[0]["test_accuracy"] == metrics[1]["test_accuracy"]


def test_recipe_killed_resumes_from_the_last_epoch_checkpoint_to_the_same_weights(
        whole, recipe, tmp_path, capsys):
    from cnnkit.cli import main
    killed = _driver(tmp_path, "train", *ARGS, "--output", tmp_path, "--name", "killed",
                     kill_at=CUT_AT)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    run = tmp_path / "killed"
    state = json.loads((run / "checkpoint" / "state.json").read_text())
    assert (state["epoch"], state["step"]) == (1, 0)  # epoch 1's checkpoint; epoch 2 was lost
    assert main(["train", "--resume", str(run)]) == 0
    assert "resuming at epoch 2 (8 of 28 steps done)" in capsys.readouterr().out
    _assert_same_weights(whole, run)
    assert _evaluations(run) == _evaluations(whole)


def test_recipe_resume_refuses_what_would_not_continue_the_same_training(
        whole, recipe, tmp_path, monkeypatch, capsys):
    import shutil

    from cnnkit.cli import main
    assert main(["train", "--resume", str(whole)]) == 2
    assert "already finished recipe 'resume-test'" in capsys.readouterr().err
    assert main(["train", "--resume", str(whole), "--epochs", "9"]) == 2
    assert "decides its own epochs" in capsys.readouterr().err

    run = tmp_path / "changed"
    shutil.copytree(whole, run)
    state = run / "checkpoint" / "state.json"
    meta = json.loads(state.read_text())
    meta["recipe"]["finished"] = False  # pretend it stopped early ...
    state.write_text(json.dumps(meta))
    # ... and that the recipe changed since it started
    monkeypatch.setitem(recipe.RECIPES, "resume-test", recipe.Recipe(**{**RECIPE, "lr": 5.0}))
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert "is not what the run trained with (lr: 4.0 then, 5.0 now)" in err
    assert "resumed" not in (run / "command.txt").read_text()  # refused before touching the run


@pytest.mark.slow
def test_data_parallel_recipe_interrupted_on_one_rank_resumes_to_the_same_weights(tmp_path):
    """Two processes: BatchNorm statistics and the lookahead average differ per rank, so the
    checkpoint keeps every rank's; rank 1 never sees the signal and stops with rank 0."""
    args = ["train", *ARGS, "--output", tmp_path]
    whole = _driver(tmp_path, *args, "--name", "whole", nproc=2)
    assert whole.returncode == 0, whole.stdout + whole.stderr[-3000:]
    cut = _driver(tmp_path, *args, "--name", "cut", nproc=2, kill_at=CUT_AT, kill_signal="SIGINT")
    assert "interrupted at epoch 2, step 5" in cut.stdout, cut.stdout + cut.stderr[-3000:]
    run = tmp_path / "cut"
    state = json.loads((run / "checkpoint" / "state.json").read_text())
    assert (state["epoch"], state["step"], state["world_size"]) == (1, 5, 2)
    resumed = _driver(tmp_path, "train", "--resume", run, nproc=2)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr[-3000:]
    assert "resuming at epoch 2, step 5/8" in resumed.stdout
    _assert_same_weights(tmp_path / "whole", run)
    assert _evaluations(run) == _evaluations(tmp_path / "whole")


def test_recipe_final_evaluation_uses_the_recipes_tta(whole):
    """The final evaluation of a recipe run uses the recipe's TTA, as its validations do (it
    once ran without: a `fast` run's metrics.json said 0.777 where its history said 0.791)."""
    import json
    metrics = json.loads((whole / "metrics.json").read_text())
    assert metrics["tta"] is True and metrics["tta_views"] == ["identity", "hflip"]
