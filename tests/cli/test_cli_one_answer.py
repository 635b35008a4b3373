"""One answer per run (issue 13 items 13-15) and folder/export defaults (issue 19 items 4, 7):
the final line, metrics.json, the report and ``cnnkit evaluate RUN`` agree and say which
weights; ``--limit`` bounds validation too; a run killed after its last checkpoint is
completed by ``--resume``; mixed photo sizes get a square size; ``cnnkit export RUN`` writes
beside the run."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _folder(root: Path, sizes, per_class: int = 12, seed: int = 0) -> Path:
    """root/<a|b>/*.png: class a dark, class b bright (learnable), image sizes cycling ``sizes``."""
    rng = np.random.default_rng(seed)
    for c, (name, base) in enumerate((("a", 40), ("b", 200))):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            h, w = sizes[(i + c) % len(sizes)]
            pixels = np.clip(base + rng.normal(0, 30, (h, w, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """A finished 3-epoch run on a folder without test/: its final evaluation is on the same
    held-out images as the per-epoch validation. Label smoothing makes the compiled loss
    differ from a plain -log(p)."""
    from cnnkit.cli import main
    tmp = tmp_path_factory.mktemp("one-answer")
    data = _folder(tmp / "photos", [(16, 16)])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["train", "--data", str(data), "--model", "simple-cnn", "--epochs", "3",
                     "--batch-size", "8", "--val-split", "0.25", "--label-smoothing", "0.1",
                     "--device", "cpu", "--verbose", "0", "--output", str(tmp / "runs"),
                     "--name", "run"]) == 0
    return tmp / "runs" / "run", out.getvalue().splitlines()


def test_final_line_metrics_history_and_evaluate_agree_and_name_the_weights(folder_run, capsys):
    from cnnkit.cli import main
    from cnnkit.runs import RunDir
    run, lines = folder_run
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["weights"] in ("best", "last") and metrics["weights_epoch"] >= 1
    # the final line names the weights and gives metrics.json's numbers
    final = [line for line in lines if line.startswith("held-out accuracy")][-1]
    assert f"({metrics['weights']} weights, epoch {metrics['weights_epoch']})" in final
    assert f"{metrics['test_accuracy']:.4f} (loss {metrics['test_loss']:.4f})" in final
    # history.csv's validation of that epoch is the same evaluation of the same weights
    row = [r for r in RunDir(run).read_history() if r["epoch"] == metrics["weights_epoch"]][0]
    assert row["val_accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-9)
    assert row["val_loss"] == pytest.approx(metrics["test_loss"], rel=1e-5)  # csv keeps 6 digits
    # cnnkit evaluate RUN with its defaults: the same weights, the same numbers
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json", "--device", "cpu"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["weights"] == metrics["weights"]
    assert ev["accuracy"] == metrics["test_accuracy"]
    assert ev["loss"] == pytest.approx(metrics["test_loss"], rel=1e-6)
    # the report shows metrics.json's accuracy
    report = (run / "report.html").read_text()
    assert f"{metrics['test_accuracy']:.4f}"[:5] in report or \
        f"{100 * metrics['test_accuracy']:.1f}" in report


def test_weights_are_serialised_once_per_epoch(tmp_path, monkeypatch):
    """Per epoch the checkpoint's model file holds the weights (its other file the optimizer
    and RNG state); best/ and last/ are links to it, not further writes."""
    import safetensors.torch as st

    from cnnkit import experiment
    from cnnkit.config import TrainConfig
    from cnnkit.run import checkpoint
    from cnnkit.models import saving
    weights, others = [], []
    real = st.save_file

    def counting(tensors, filename, metadata=None):
        model_file = (metadata or {}).get("format") == saving.FORMAT
        (weights if model_file else others).append(filename)
        return real(tensors, filename, metadata=metadata)
    for mod in (st, checkpoint, saving):
        monkeypatch.setattr(mod, "save_file", counting)
    epochs = 4
    result = experiment.train(TrainConfig(limit=128, model="mnist-1conv", batch_size=32,
                                          epochs=epochs, report=False, verbose="0",
                                          output=str(tmp_path), device="cpu"),
                              log=lambda *a: None)
    assert not result.interrupted
    assert len(weights) == epochs, weights  # one per epoch, the checkpoint's model file
    assert len(others) == epochs, others    # the checkpoint's state file
    assert (result.run.best / "model.safetensors").is_file()


def test_limit_bounds_the_validation_images_too():
    from cnnkit.config import TrainConfig
    from cnnkit.experiment import load_data
    full = load_data(TrainConfig().validate())
    small = load_data(TrainConfig(limit=100).validate())
    share = len(small.train[0]) / len(full.train[0])
    assert len(small.train[0]) == pytest.approx(100, abs=10)
    assert len(small.val[0]) == pytest.approx(share * len(full.val[0]), abs=10)
    assert len(small.val[0]) < len(full.val[0]) / 2
    assert set(small.val[1].tolist()) == set(full.val[1].tolist())  # every class still there


def test_resume_completes_a_run_killed_before_its_metrics_and_cleans_temporaries(folder_run,
                                                                                  tmp_path):
    from cnnkit.cli import main
    run = tmp_path / "killed-late"
    shutil.copytree(folder_run[0], run)
    before = json.loads((run / "metrics.json").read_text())
    for name in ("metrics.json", "report.html"):
        (run / name).unlink()
    shutil.rmtree(run / "plots")
    # what saves killed part-way leave behind
    (run / ".history.csv.tmp").write_text("half")
    (run / "checkpoint" / ".state-e0003.safetensors.tmp").write_bytes(b"\0" * 10)
    (run / ".last.abc123").mkdir()
    assert main(["train", "--resume", str(run)]) == 0
    after = json.loads((run / "metrics.json").read_text())
    assert (after["test_accuracy"], after["weights"]) == (before["test_accuracy"], before["weights"])
    assert after["test_loss"] == pytest.approx(before["test_loss"], rel=1e-6)
    assert (run / "report.html").is_file()
    leftovers = [p.name for p in run.rglob(".*") if p.name.endswith(".tmp") or
                 p.name.startswith(".last.")]
    assert leftovers == []
    # and a complete run is still refused
    assert main(["train", "--resume", str(run)]) == 2


def test_mixed_photo_sizes_get_a_square_size_that_suits_the_model(tmp_path):
    from cnnkit.config import TrainConfig
    from cnnkit.experiment import load_data
    folder = _folder(tmp_path / "photos", [(40, 30), (30, 40)], per_class=6)  # a portrait tie
    zoo = load_data(TrainConfig(data=str(folder), model="simple-cnn").validate())
    assert zoo.input_shape[:2] == (32, 32)  # simple-cnn's native size
    plain = load_data(TrainConfig(data=str(folder)).validate())
    h, w, _ = plain.input_shape
    assert h == w and 64 <= h <= 224
    note = " ".join(plain.notes)
    assert "--image-size H,W" in note and "image_size=" not in note


def test_one_size_folders_keep_their_size(tmp_path):
    from cnnkit.config import TrainConfig
    from cnnkit.experiment import load_data
    folder = _folder(tmp_path / "photos", [(20, 24)], per_class=4)
    data = load_data(TrainConfig(data=str(folder), val_split=0.25).validate())
    assert data.input_shape[:2] == (20, 24) and not any("--image-size" in n for n in data.notes)


def test_export_without_a_file_name_writes_beside_the_run(tiny_run, capsys):
    from cnnkit.cli import main
    assert main(["export", str(tiny_run), "--format", "torchscript", "--no-check"]) == 0
    assert (tiny_run / "model.pt").is_file()
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    assert main(["export", str(tiny_run), "--no-check"]) == 0
    assert (tiny_run / "model.onnx").is_file()


def test_a_recipe_run_and_evaluate_agree(tmp_path, capsys):
    """A recipe keeps its final weights (best/ = last/) and evaluates them with its own loss
    and precision; ``cnnkit evaluate RUN`` does the same."""
    from cnnkit.cli import main
    assert main(["train", "--recipe", "mnist-fast", "--limit", "600", "--output", str(tmp_path),
                 "--device", "cpu", "--verbose", "0", "--no-report", "--name", "r"]) == 0
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["weights"] == "last"
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "r"), "--json", "--device", "cpu"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["weights"] == "last" and ev["accuracy"] == metrics["test_accuracy"]
    assert ev["loss"] == pytest.approx(metrics["test_loss"], rel=1e-6)
