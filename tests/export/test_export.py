import json
import warnings

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from cnnkit.export import ParityError, export, is_exported, load_exported  # noqa: E402
from cnnkit.models.base import Model  # noqa: E402
from cnnkit.models.preprocess import Preprocess  # noqa: E402
from cnnkit.models.registry import create  # noqa: E402
from model_helpers import TINY_CLASS_NAMES as NAMES, tiny_model  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def pixels():
    return np.random.default_rng(1).integers(0, 256, (7, 16, 16, 3), dtype=np.uint8)


@pytest.mark.parametrize("suffix,runtime", [(".onnx", "onnx"), (".pt", "torchscript")])
def test_round_trip_with_dynamic_batch(model, pixels, tmp_path, capsys, suffix, runtime):
    result = export(model, tmp_path / f"m{suffix}")
    out = capsys.readouterr().out
    assert f"parity: max |{runtime} - pytorch|" in out and "over 100 images" in out
    assert result.format == runtime and result.max_abs_diff <= 1e-4 and result.samples == 100
    spec = json.loads(result.spec_path.read_text())
    assert result.spec_path.name == f"m{suffix}.json"
    assert spec["class_names"] == NAMES
    assert spec["input"] == {"name": "images", "dtype": "uint8", "layout": "NHWC",
                             "shape": [None, 16, 16, 3], "note": spec["input"]["note"]}
    assert spec["output"]["shape"] == [None, 4]
    assert spec["preprocess"]["scale"] == pytest.approx(1 / 255)
    assert spec["parity"]["max_abs_diff"] == result.max_abs_diff

    predictor = load_exported(result.path)
    assert predictor.class_names == NAMES and predictor.input_shape == (16, 16, 3)
    expected = model.predict_proba(pixels)
    for batch in (pixels[:1], pixels):  # dynamic batch axis
        np.testing.assert_allclose(predictor.predict(batch), expected[:len(batch)], atol=1e-5)
    assert predictor.predict(pixels[0]).shape == (4,)  # one H×W×C image
    with pytest.raises(ValueError, match="N×16×16×3"):
        predictor.predict(np.zeros((2, 8, 8, 3), np.uint8))


def test_preprocessing_is_inside_the_graph(tmp_path):
    """Resize, channel repeat and mean/std travel into the file: raw 1-channel pixels in."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 10 * 10, 3))
    pre = Preprocess(mean=[0.4, 0.5, 0.6], std=[0.2, 0.25, 0.3], resize=(12, 12), channels=3)
    model = Model(net, input_shape=(20, 20, 1), class_names=["a", "b", "c"], preprocess=pre)
    grey = np.random.default_rng(2).integers(0, 256, (5, 20, 20, 1), dtype=np.uint8)
    result = export(model, tmp_path / "m.onnx", samples=grey, verbose=False)
    assert result.samples == 5 and result.max_abs_diff <= 1e-5
    predictor = load_exported(result.path)
    np.testing.assert_allclose(predictor.predict(grey), model.predict_proba(grey), atol=1e-5)
    np.testing.assert_allclose(predictor.predict(grey[..., 0]), model.predict_proba(grey), atol=1e-5)
    assert json.loads(result.spec_path.read_text())["preprocess"]["resize"] == [12, 12]


def test_plain_module_and_the_file_alone(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.Linear(2 * 6 * 6, 2))
    result = export(net, tmp_path / "plain.onnx", input_shape=(8, 8, 3), verbose=False)
    x = np.random.default_rng(3).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    expected = torch.softmax(net(torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255), 1)
    result.spec_path.unlink()  # the spec also lives in the ONNX metadata
    predictor = load_exported(result.path)
    assert predictor.class_names == ["0", "1"]
    np.testing.assert_allclose(predictor.predict(x), expected.detach().numpy(), atol=1e-5)
    assert is_exported(result.path) and not is_exported(tmp_path)


def test_parity_failure_is_loud(model, tmp_path):
    with pytest.raises(ParityError, match="differs from PyTorch"):
        export(model, tmp_path / "m.pt", atol=-1.0, n_check=4, verbose=False)
    assert (tmp_path / "m.pt").exists() and (tmp_path / "m.pt.json").exists()


def test_model_state_is_restored(model, tmp_path):
    model.train()
    export(model, tmp_path / "m.pt", n_check=2, verbose=False)
    assert model.training
    model.eval()


def test_bad_arguments(model, tmp_path):
    with pytest.raises(ValueError, match="format"):
        export(model, tmp_path / "m.onnx", format="tflite")
    with pytest.raises(ValueError, match="class names"):
        export(model, tmp_path / "m.pt", class_names=["x"], n_check=2)
    with pytest.raises(ValueError, match="no cnnkit export spec"):
        bare = tmp_path / "bare.pt"
        with warnings.catch_warnings():  # TorchScript's deprecation notice
            warnings.simplefilter("ignore", FutureWarning)
            torch.jit.save(torch.jit.script(nn.Identity()), str(bare))
        load_exported(bare)


def _cifar_like(n=100):
    return np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def test_seed003_model_parity_on_100_images(tmp_path):
    """The tutorial's CIFAR-10 CNN (seed 003): ONNX agrees within 1e-4 on 100 images."""
    torch.manual_seed(3)
    model = create("simple-cnn", num_classes=10)
    assert sum(p.numel() for p in model.parameters()) == 167_562
    result = export(model, tmp_path / "simple_cnn.onnx", samples=_cifar_like(), atol=1e-4)
    assert result.samples == 100 and result.max_abs_diff <= 1e-4


@pytest.mark.slow
def test_resnet18_transfer_parity_on_100_images(tmp_path):
    """torchvision ResNet-18 (weights=None) with a new 10-class head, ImageNet preprocessing
    and a 32 -> 224 resize inside the graph: ONNX agrees within 1e-4 on 100 images."""
    torch.manual_seed(18)
    model = create("resnet18", num_classes=10, input_shape=(32, 32, 3))
    model.preprocess = Preprocess(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225],
                                  resize=(224, 224))
    result = export(model, tmp_path / "resnet18.onnx", samples=_cifar_like(), atol=1e-4)
    assert result.samples == 100 and result.max_abs_diff <= 1e-4


class DataDependent(nn.Module):
    """A branch on tensor values: torch.export refuses it, tracing records the branch taken."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3)

    def forward(self, x):
        if x.mean() > -1:  # always true for pixels
            x = self.conv(x)
        return x.mean(dim=(2, 3))


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
def test_falls_back_to_tracing_where_torch_export_fails(tmp_path, suffix):
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="torch.export failed"):
        result = export(DataDependent(), tmp_path / f"dd{suffix}", input_shape=(8, 8, 3),
                        n_check=8, verbose=False)
    assert result.max_abs_diff <= 1e-5
    x = np.random.default_rng(5).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    assert load_exported(result.path).predict(x).shape == (3, 2)
