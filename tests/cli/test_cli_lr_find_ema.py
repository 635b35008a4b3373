"""``cnnkit train --lr-find / --lr-find-only / --ema / --swa``: what the run directory and the
report hold, that a sweep does not change the training, that an EMA run resumes after a
crash to the identical average, and one line for bad values."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from cli_helpers import TINY
from cnnkit.cli import main
from cnnkit.config import TrainConfig


def _train(out, name, *flags):
    assert main(["train", *TINY, "--epochs", "1", "--device", "cpu", "--output", str(out),
                 "--name", name, *map(str, flags)]) == 0
    return out / name


def _history(run):
    from cnnkit.runs import RunDir
    return RunDir(run).read_history()


def _weights(run, folder="last"):
    return load_file(str(run / folder / "model.safetensors"))


@pytest.mark.slow
def test_lr_find_trains_with_the_valley_suggestion_exactly_as_with_that_lr(tmp_path, capsys):
    swept = _train(tmp_path, "swept", "--lr-find", "--lr-find-steps", "30", "--no-report")
    record = json.loads((swept / "lr_find.json").read_text())
    chosen = record["chosen"]
    assert chosen["suggestion"] == "valley" and chosen["lr"] == record["suggestions"]["valley"]
    assert set(record["suggestions"]) == {"valley", "steepest", "minimum"}
    assert len(record["lrs"]) == len(record["losses"]) == record["settings"]["steps_run"]
    assert record["settings"]["num_it"] == 30
    assert (swept / "lr_find.png").read_bytes()[:4] == b"\x89PNG"
    assert (swept / "lr_find.narrow.png").read_bytes()[:4] == b"\x89PNG"  # for phones
    assert "lr finder: valley" in capsys.readouterr().out
    assert _history(swept)[0]["lr"] == pytest.approx(chosen["lr"], rel=1e-4)  # csv's digits
    from cnnkit.report import write_report
    html = write_report(swept).read_text()  # the page alone (the plots were not drawn)
    assert "id='lr-find'" in html and 'data-plot="lr_find"' in html
    assert "trained with this rate" in html
    notes = json.loads((swept / "metrics.json").read_text())["notes"]
    assert any("--lr-find: trained with the valley suggestion" in n for n in notes)
    # the sweep put everything back and drew from its own generator: the same training
    plain = _train(tmp_path, "plain", "--lr", repr(chosen["lr"]), "--no-report")
    a, b = _history(swept)[0], _history(plain)[0]
    for key in ("loss", "val_loss", "val_accuracy"):
        assert a[key] == b[key], key
    wa, wb = _weights(swept), _weights(plain)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_lr_find_only_sweeps_and_does_not_train(tmp_path):
    run = _train(tmp_path, "only", "--lr-find-only", "--lr-find-suggestion", "steepest",
                 "--lr-find-steps", "20", "--no-report")
    record = json.loads((run / "lr_find.json").read_text())
    assert record["chosen"] is None and (run / "lr_find.png").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs_run"] == 0 and _history(run) == []
    assert any("--lr-find-only" in n and "not trained" in n for n in metrics["notes"])


def test_ema_run_records_and_saves_the_average(tmp_path):
    run = _train(tmp_path, "ema", "--ema", "0.9", "--no-report")
    row = _history(run)[0]
    assert 0 < row["ema_decay"] <= 0.9
    metrics = json.loads((run / "metrics.json").read_text())
    assert any(n.startswith("EMA weights:") for n in metrics["notes"])
    from cnnkit.report import write_report
    assert "EMA weights:" in write_report(run).read_text()
    assert json.loads((run / "config.json").read_text())["ema"] == 0.9
    # last/ holds the average: the trained weights are what the checkpoint's EMA state keeps
    from cnnkit.runs import RunDir, load_checkpoint
    ckpt = load_checkpoint(RunDir(run))
    last = _weights(run)
    shadow = ckpt.group("callbacks.0")
    assert ckpt.meta["callbacks"]["0"]["holding"] is True
    assert any(not torch.equal(last[k], shadow[f"shadow.{k}"])
               for k in last if f"shadow.{k}" in shadow)
    assert all(torch.equal(last[k], ckpt.tensors[f"model.{k}"]) for k in last)


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after the last checkpoint is written."""


@pytest.mark.slow
@pytest.mark.parametrize("average", [{"ema": 0.9}, {"swa": 1, "swa_lr": 0.01}], ids=["ema", "swa"])
def test_an_averaged_run_resumes_after_a_crash_to_the_identical_average(average, tmp_path,
                                                                        monkeypatch):
    from cnnkit import experiment

    def cfg(name):
        return TrainConfig(limit=256, model="mnist-1conv", batch_size=32, epochs=3, report=False,
                           verbose="0", output=str(tmp_path), name=name, device="cpu", **average)

    whole = experiment.train(cfg("whole"), log=lambda *a: None)
    original = experiment.RunLoader.__iter__
    seen = {"n": 0}

    def crash_in_epoch_three(self):
        for batch in original(self):
            seen["n"] += 1
            if seen["n"] == 2 * len(self) + 3:
                raise _Killed
            yield batch

    monkeypatch.setattr(experiment.RunLoader, "__iter__", crash_in_epoch_three)
    with pytest.raises(_Killed):
        experiment.train(cfg("crashed"), log=lambda *a: None)
    monkeypatch.setattr(experiment.RunLoader, "__iter__", original)
    done = experiment.train(resume=tmp_path / "crashed", log=lambda *a: None)
    wa, wb = _weights(whole.run.path), _weights(done.run.path)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert [r["val_loss"] for r in _history(done.run.path)] == \
        [r["val_loss"] for r in _history(whole.run.path)]


def test_swa_run_keeps_the_average_in_best_and_last(tmp_path):
    run = _train(tmp_path, "swa", "--swa", "1", "--epochs", "2", "--swa-lr", "0.01", "--no-report")
    history = _history(run)
    assert history[1]["lr"] == pytest.approx(0.001)   # epoch 2: SWALR's first epoch keeps it
    assert history[1]["swa_epochs"] == 1
    best, last = _weights(run, "best"), _weights(run, "last")
    assert all(torch.equal(best[k], last[k]) for k in best)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["weights"] == "last" and any(n.startswith("SWA:") for n in metrics["notes"])


def answer(argv, capsys):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as done:
        code = done.code
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


@pytest.mark.parametrize("flags, needle", [
    (["--ema", "1.5"], "ema: the decay must be in [0, 1)"),
    (["--lr-find", "--lr-find-steps", "3"], "lr_find_steps: must be >= 10"),
    (["--lr-find", "--lr", "0.01"], "--lr-find picks the learning rate"),
    (["--swa", "5", "--epochs", "2"], "swa: must be an epoch count in [0, epochs=2)"),
    (["--ema", "0.9", "--swa", "1", "--epochs", "2"], "use one weight average"),
    (["--swa-lr", "0.1"], "swa_lr: only applies with --swa"),
    (["--recipe", "fast", "--ema", "0.99"], "ema: not available with --recipe"),
])
def test_bad_values_are_one_line_and_exit_2(flags, needle, tmp_path, capsys):
    code, err = answer(["train", "--output", tmp_path, *flags], capsys)
    assert code == 2 and len(err) == 1, err
    assert needle in err[0] and "Traceback" not in err[0]


def test_a_bad_suggestion_name_is_refused_by_the_option(tmp_path, capsys):
    code, err = answer(["train", "--output", tmp_path, "--lr-find-suggestion", "best"], capsys)
    assert code == 2 and "invalid choice: 'best'" in " ".join(err)


@pytest.mark.slow
def test_an_ema_run_killed_with_sigkill_resumes_to_the_identical_average(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from cli_helpers import cnnkit_env, run_cli
    args = [*TINY, "--batch-size", "16", "--epochs", "6", "--no-report", "--device", "cpu",
            "--ema", "0.95", "--output", str(tmp_path)]
    run_cli("train", *args, "--name", "whole")
    proc = subprocess.Popen([sys.executable, "-m", "cnnkit", "train", *args, "--name", "killed"],
                            env=cnnkit_env(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    state = tmp_path / "killed" / "checkpoint" / "state.json"
    deadline = time.monotonic() + 240
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    if proc.returncode != -signal.SIGKILL:
        pytest.skip("the run finished before it could be killed (a very fast machine)")
    run_cli("train", "--resume", tmp_path / "killed")
    whole, resumed = _weights(tmp_path / "whole"), _weights(tmp_path / "killed")
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    assert [r["val_loss"] for r in _history(tmp_path / "killed")] == \
        [r["val_loss"] for r in _history(tmp_path / "whole")]
