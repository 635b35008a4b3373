"""A model file never chooses code to run (issue 13 item 1).

Every entry point that reads a model folder (load_model, the CLI's evaluate / predict /
export / summary / explain / serve, the service, ``cnnkit train --model`` and ``--resume``)
goes through ``load_model``; each is tried with a config naming a module of ours that leaves
a mark when imported, and must refuse it with one line, without importing it.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import save_file
from torch import nn

import cnnkit
from cnnkit import cli, layers
from cnnkit.models.saving import ModelFileError

SENTINEL = "cnnkit_test_sentinel_module"


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8 * 8 * 3, 2)

    def forward(self, x):
        return self.fc(x.flatten(1))


@pytest.fixture
def sentinel(tmp_path, monkeypatch):
    """An importable module that writes a file when imported; yields that file's path."""
    mark = tmp_path / "imported.txt"
    code = tmp_path / "pkg"
    code.mkdir()
    (code / f"{SENTINEL}.py").write_text(
        f"open({str(mark)!r}, 'w').write('ran')\n"
        "class Evil:\n    def __init__(self):\n        open(__file__ + '.called', 'w')\n")
    monkeypatch.syspath_prepend(str(code))
    monkeypatch.delitem(sys.modules, SENTINEL, raising=False)
    yield mark
    sys.modules.pop(SENTINEL, None)


def _never_ran(mark):
    assert not mark.exists(), "the module named by the file was imported"
    assert SENTINEL not in sys.modules


@pytest.fixture
def hostile(tmp_path, sentinel):
    """A saved plain-module model whose config names the sentinel's class."""
    model = cnnkit.Model(TinyNet(), input_shape=(8, 8, 3), class_names=["a", "b"])
    path = model.save(tmp_path / "hostile")
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["architecture"]["kind"] == "module"
    cfg["architecture"]["class"] = f"{SENTINEL}:Evil"
    (path / "config.json").write_text(json.dumps(cfg))
    return path


def test_load_model_refuses_a_module_named_by_the_file(hostile, sentinel):
    with pytest.raises(ModelFileError, match=r"load_model\(path, module=MyNet\(\)\)") as err:
        cnnkit.load_model(hostile)
    assert "\n" not in str(err.value) and "never imports" in str(err.value)
    _never_ran(sentinel)


def test_the_caller_passes_the_module(hostile, sentinel):
    model = cnnkit.load_model(hostile, module=TinyNet())
    assert isinstance(model.module, TinyNet) and model.class_names == ["a", "b"]
    assert model.predict(np.zeros((1, 8, 8, 3), np.uint8)).shape == (1, 2)
    _never_ran(sentinel)


@pytest.mark.parametrize("arch", [
    {"kind": "python", "class": f"{SENTINEL}:Evil"},
    {"kind": "zoo", "name": f"{SENTINEL}.Evil", "kwargs": {}},
    {"kind": "sequential", "config": {"layers": [{"class_name": "Augment", "config": {}}]}},
    {"kind": "sequential", "config": {"layers": [{"class_name": f"{SENTINEL}.Evil", "config": {}}]}},
    "module",
])
def test_other_architectures_a_file_names_are_refused(hostile, sentinel, arch):
    cfg = json.loads((hostile / "config.json").read_text())
    cfg["architecture"] = arch
    (hostile / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError) as err:
        cnnkit.load_model(hostile)
    assert "\n" not in str(err.value)
    _never_ran(sentinel)


def test_a_zoo_record_never_chooses_weights_to_fetch(tmp_path, monkeypatch):
    from cnnkit.models import registry, weights
    monkeypatch.setattr(weights, "fetch", lambda *a, **k: pytest.fail("a download was attempted"))
    model = registry.create("simple-cnn", num_classes=2, input_shape=(16, 16, 3))
    path = model.save(tmp_path / "zoo")
    cfg = json.loads((path / "config.json").read_text())
    cfg["architecture"]["kwargs"]["weights"] = "imagenet"
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError, match="weights='imagenet'.*model.safetensors"):
        cnnkit.load_model(path)
    # the same record inside a Sequential (a zoo backbone as a layer)
    seq = cnnkit.Sequential([layers.Input((16, 16, 3)), model, layers.Dense(2)])
    path = seq.save(tmp_path / "seq")
    cfg = json.loads((path / "config.json").read_text())
    cfg["architecture"]["config"]["layers"][0]["config"]["kwargs"]["pretrained"] = True
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError, match="pretrained=True"):
        cnnkit.load_model(path)


def test_bad_compile_settings_are_a_model_file_error(tmp_path):
    model = cnnkit.Sequential([layers.Input((8, 8, 3)), layers.Flatten(), layers.Dense(2)])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    path = model.save(tmp_path / "m")
    cfg = json.loads((path / "config.json").read_text())
    cfg["compile"]["loss"] = "os.system"
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError, match="compile=False"):
        cnnkit.load_model(path)
    assert cnnkit.load_model(path, compile=False).predict(np.zeros((1, 8, 8, 3))).shape == (1, 2)


def _one_line_refusal(capsys, argv):
    code = cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "module=MyNet()" in err
    return err


@pytest.mark.parametrize("command", ["evaluate", "predict", "export", "summary", "explain", "serve"])
def test_every_cli_command_refuses_it_in_one_line(hostile, sentinel, tmp_path, capsys, command):
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    argv = {"evaluate": ["evaluate", str(hostile), "--data", str(tmp_path)],
            "predict": ["predict", str(hostile), str(image)],
            "export": ["export", str(hostile), str(tmp_path / "m.onnx")],
            "summary": ["summary", str(hostile)],
            "explain": ["explain", str(hostile), str(image), "--out", str(tmp_path / "cam")],
            "serve": ["serve", str(hostile), "--port", "8765"]}[command]
    if command in ("export", "serve", "explain"):
        pytest.importorskip({"export": "onnx", "serve": "fastapi", "explain": "matplotlib"}[command])
    _one_line_refusal(capsys, argv)
    _never_ran(sentinel)


def test_the_service_refuses_it(hostile, sentinel):
    pytest.importorskip("fastapi")
    from cnnkit.serve import create_app
    with pytest.raises(ModelFileError, match="module=MyNet"):
        create_app(str(hostile))
    _never_ran(sentinel)


def test_train_model_and_resume_refuse_it(hostile, sentinel, tmp_path, capsys):
    """``cnnkit train --model FOLDER`` and ``--resume RUN`` of a run trained from that folder."""
    _one_line_refusal(capsys, ["train", "--model", str(hostile), "--limit", "64", "--epochs", "1",
                               "--output", str(tmp_path / "runs")])
    _never_ran(sentinel)
    from cnnkit.config import TrainConfig
    from cnnkit.runs import CHECKPOINT_FORMAT, CHECKPOINT_VERSION
    run = tmp_path / "runs" / "old"
    (run / "checkpoint").mkdir(parents=True)
    cfg = TrainConfig(model=str(hostile), limit=64, epochs=2, output=str(tmp_path / "runs"))
    (run / "config.json").write_text(json.dumps(cfg.to_dict()))
    save_file({}, str(run / "checkpoint" / "state-a.safetensors"))
    (run / "checkpoint" / "state.json").write_text(json.dumps(
        {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "epoch": 1, "step": 0,
         "tensors": "state-a.safetensors", "optimizer": {}, "rng": {}}))
    _one_line_refusal(capsys, ["train", "--resume", str(run)])
    _never_ran(sentinel)


class _Payload:
    """Unpickling this would create the file named in it."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pth_whose_pickle_names_code_is_refused_in_one_line(tmp_path):
    from cnnkit.models import registry
    from cnnkit.models.weights import WeightsError
    mark = tmp_path / "ran.txt"
    torch = pytest.importorskip("torch")
    torch.save({"w": _Payload(mark)}, tmp_path / "evil.pth")
    with pytest.raises(WeightsError, match="names code to run, which was not run") as err:
        registry.create("simple-cnn", weights=str(tmp_path / "evil.pth"))
    assert "\n" not in str(err.value) and not mark.exists()
