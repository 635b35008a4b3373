"""The real thing, on the shared CIFAR-10 JPEG folder: `cnnkit train --data FOLDER --model
simple-cnn` writes every file of a run directory and a report that opens in Chromium.

Slow (decodes 50,000 JPEGs once, then trains on 10,000 of them for 2 epochs); skips where
../shared/datasets is absent. The full 10-epoch run is the same command without --limit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from report_browser import check_report_page

CIFAR = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "cifar10-jpeg" / "train"
RUN_FILES = ["config.json", "config.toml", "command.txt", "env.json", "summary.txt", "history.csv",
             "metrics.json", "best/config.json", "best/model.safetensors", "last/config.json",
             "last/model.safetensors", "checkpoint/state.json", "report.html",
             "plots/accuracy.png", "plots/loss.png", "plots/confusion_matrix.png",
             "plots/samples.png", "plots/top_losses.png", "plots/timing.png"]
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cifar_run(tmp_path_factory):
    if not CIFAR.is_dir():
        pytest.skip(f"the shared CIFAR-10 folder is not at {CIFAR}")
    out = tmp_path_factory.mktemp("cifar-runs")
    env = dict(os.environ, CNNKIT_OFFLINE="1", PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, "-m", "cnnkit", "train", "--data", str(CIFAR),
                           "--model", "simple-cnn", "--epochs", "2", "--limit", "10000",
                           "--output", str(out)], env=env, capture_output=True, text=True,
                          timeout=3600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out / "cifar10-jpeg-simple-cnn", proc.stdout


def test_cifar_folder_run_writes_every_file(cifar_run):
    run, stdout = cifar_run
    missing = [f for f in RUN_FILES if not (run / f).is_file()]
    assert not missing, missing
    assert f"report: {run / 'report.html'}" in stdout
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["class_names"] == CLASSES
    # --limit 10000 of 45,000 training images also keeps the same share of the 5,000 held out
    assert metrics["evaluated_on"].startswith("validation split (1110 images") and metrics["split"] == "validation"
    assert metrics["test_accuracy"] > 0.3          # 10 classes: chance is 0.1
    assert [len(r) for r in metrics["confusion_matrix"]] == [10] * 10
    assert sum(map(sum, metrics["confusion_matrix"])) == 1110


@pytest.mark.browser
def test_cifar_report_opens_in_chromium(cifar_run, tmp_path):
    run, _ = cifar_run
    check_report_page(run / "report.html", tmp_path / "report_cifar.png")
