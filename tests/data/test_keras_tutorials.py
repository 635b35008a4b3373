"""The Keras documentation's image-classification tutorials with their data loading
(image_dataset_from_directory, flow_from_directory), imports changed, on the shared CIFAR-10
JPEGs (examples/keras_*.py). Slow: each trains a few epochs."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(script, shared_datasets, tmp_path, *options):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *options, "--data", str(shared_datasets),
         "--out", str(tmp_path)], capture_output=True, text=True, timeout=900, cwd=EXAMPLES)
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("Validation accuracy:"))
    return float(line.split(":")[1]), result.stdout


@pytest.mark.slow
def test_tf_image_classification_tutorial(shared_datasets, tmp_path):
    # 4 classes, 560 held-out images, 4 epochs: cnnkit reached 0.743 without and 0.730 with
    # augmentation; the same script under Keras 3.15.1 0.720 / 0.600 (one run each)
    acc, out = _run("keras_image_classification.py", shared_datasets, tmp_path,
                    "--epochs", "4", "--limit", "700", "--seed", "0")
    assert acc >= 0.55 and "[32, 32, 32, 3]" in out  # the tutorial prints a batch's shape


@pytest.mark.slow
def test_flow_from_directory_tutorial(shared_datasets, tmp_path):
    # cat vs dog, 400 held-out images, 5 epochs: cnnkit 0.615, Keras 3.15.1 0.643 (one run each).
    # Seeded: unseeded runs here spread from 0.50 (stuck at chance) to 0.63 (7 runs); seed 0: 0.62
    acc, _ = _run("keras_flow_from_directory.py", shared_datasets, tmp_path,
                  "--epochs", "5", "--limit", "1000", "--seed", "0")
    assert acc >= 0.55
