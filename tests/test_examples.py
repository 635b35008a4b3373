"""The tutorial examples run end to end on the real data (one short epoch each)."""

import subprocess
import sys
from pathlib import Path

import pytest

from cnnkit.perf import fast_bf16_cpu

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.slow
@pytest.mark.parametrize("script, expect", [
    ("seed002_mnist.py", "Test Accuracy:"),
    ("seed001_mnist_two_conv.py", "Test accuracy:"),
    ("seed002_augmentation_early_stopping.py", "Test Accuracy:"),
    ("seed003_cifar10_simple_cnn.py", "Test accuracy:"),
    ("seed001_pytorch_cnn.py", "Accuracy of the network"),
])
def test_example_runs(script, expect, shared_datasets, tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--epochs", "1", "--limit", "512",
         "--data", str(shared_datasets), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=EXAMPLES)
    assert result.returncode == 0, result.stderr[-3000:]
    assert expect in result.stdout
    if script.startswith("seed003"):
        assert (tmp_path / "seed003_accuracy.png").stat().st_size > 1000
        assert (tmp_path / "seed003_sample_prediction.png").stat().st_size > 1000


def _accuracy(stdout: str, label: str) -> float:
    line = next(line for line in stdout.splitlines() if line.startswith(label))
    return float(line.split(":")[1])


@pytest.mark.slow
@pytest.mark.parametrize("script, label, floor", [
    # seed 002's one-conv MNIST net, 10 epochs: the issue asks for >= 98% on held-out digits
    ("seed002_mnist.py", "Test Accuracy:", 0.98),
    # seed 003's workflow, 10 epochs of batch 64. The tutorial's own Keras code on this JPEG
    # copy (benchmarks/seed003_epoch.py --accuracy, 40k/10k split) scored 66.2 / 65.7 / 64.2%
    # over seeds 0-2, and one seed's result moves by ~1.5 points either way, so the floor is
    # Keras's lowest seed; cnnkit's mean there was 67.8% (fp32) and 67.7% (--bf16)
    ("seed003_cifar10_simple_cnn.py", "Test accuracy:", 0.64),
    # bf16 convolutions, float32 Dense layers, compiled pooling (the fastest setting on CPUs
    # with native bf16): no accuracy given up. Without native bf16 (AVX2-only CPUs) bf16
    # matmuls are emulated and this test alone ran over 20 minutes, so it skips there.
    pytest.param("seed003_cifar10_simple_cnn.py --bf16 --jit-compile", "Test accuracy:", 0.64,
                 marks=pytest.mark.skipif(not fast_bf16_cpu(),
                                          reason="this CPU has no native bf16 (AVX512-BF16/AMX)")),
])
def test_tutorial_reaches_its_accuracy(script, label, floor, shared_datasets, tmp_path):
    script, *options = script.split()
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *options, "--data", str(shared_datasets),
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=1800, cwd=EXAMPLES)
    assert result.returncode == 0, result.stderr[-3000:]
    assert _accuracy(result.stdout, label) >= floor, result.stdout[-2000:]


@pytest.mark.slow
def test_keras_docs_mnist_convnet(shared_datasets, tmp_path):
    # the Keras documentation's "Simple MNIST convnet", imports changed: 1 epoch on 2,000 digits
    # already reaches far above chance on the 10,000 held out
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "keras_mnist_convnet.py"), "--epochs", "1", "--limit",
         "2000", "--data", str(shared_datasets), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=EXAMPLES)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "34,826" in result.stdout  # Keras's parameter count for this model
    assert _accuracy(result.stdout, "Test accuracy") >= 0.5, result.stdout[-2000:]


@pytest.mark.slow
def test_keras_docs_image_classification_from_scratch(shared_datasets, tmp_path):
    # the Keras documentation's small Xception (functional API, SeparableConv2D, residual add,
    # plot_model, ModelCheckpoint to .keras), imports changed; one short epoch
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "keras_image_classification_from_scratch.py"), "--epochs",
         "1", "--limit", "256", "--data", str(shared_datasets), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=900, cwd=EXAMPLES)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Using 10000 files for validation." in result.stdout
    assert (tmp_path / "model.png").stat().st_size > 1000
    import cnnkit
    restored = cnnkit.models.load_model(tmp_path / "save_at_1.keras")  # a Keras 3 file
    assert len(restored.layers) > 40
