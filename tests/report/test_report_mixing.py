"""A run with mixing, balanced class weights and TTA on an imbalanced folder: what the run
directory and report.html say, and the warning at train start."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def imbalanced_run(tmp_path_factory):
    from cnnkit.config import TrainConfig
    from cnnkit.experiment import train
    root = tmp_path_factory.mktemp("imbalanced")
    rng = np.random.default_rng(0)
    for cls, n in (("common", 30), ("usual", 30), ("rare", 4)):
        (root / "data" / cls).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
                root / "data" / cls / f"{i}.png")
    lines = []
    result = train(TrainConfig(data=str(root / "data"), epochs=1, batch_size=16, val_split=0.25,
                               augment="flip,mixup=0.2,cutmix=1.0", class_weight="balanced",
                               tta="flip", label_smoothing=0.1, verbose="0", device="cpu",
                               output=str(root / "runs"), name="imb", report=False),
                   log=lines.append)
    from cnnkit.report.html import write_report
    write_report(result.run.path)   # the page alone: the plots are other tests' concern
    return result, lines


@pytest.mark.slow
def test_metrics_and_report_record_tta_mixing_and_imbalance(imbalanced_run, capsys):
    result, _ = imbalanced_run
    run = result.run.path
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["tta"] is True and metrics["tta_views"] == ["identity", "hflip"]
    assert metrics["warnings"][0].startswith("under-represented classes in training: rare (3)")
    assert "class weights (balanced" in " ".join(metrics["notes"])
    assert json.loads((run / "config.json").read_text())["class_weight"] == "balanced"
    page = (run / "report.html").read_text()
    assert "Test-time augmentation: probabilities averaged over identity, hflip" in page
    assert "Training targets: mixed batches (flip,mixup=0.2,cutmix=1.0)" in page
    assert "label smoothing 0.1" in page
    assert "<p class='note warning'>warning: under-represented classes" in page
    assert "support" in page   # per-class support next to the metrics


@pytest.mark.slow
def test_cli_evaluate_tta_writes_it(imbalanced_run, capsys):
    from cnnkit.cli import main
    result, _ = imbalanced_run
    assert main(["evaluate", str(result.run.path), "--tta", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tta"] is True and out["tta_views"] == ["identity", "hflip"]
    # by default a run is evaluated as it was (its --tta flip), so metrics.json agrees
    assert main(["evaluate", str(result.run.path), "--json"]) == 0
    default = json.loads(capsys.readouterr().out)
    metrics = json.loads((result.run.path / "metrics.json").read_text())
    assert default["tta"] is True and default["accuracy"] == metrics["test_accuracy"]
    assert main(["evaluate", str(result.run.path), "--tta", "none", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tta"] is False
