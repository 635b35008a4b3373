"""`cnnkit export RUN --int8`: the run's images calibrate and measure the int8 model."""

import json

import numpy as np
import pytest
from PIL import Image

from cnnkit.cli import main

pytest.importorskip("onnxruntime")


def test_export_int8_writes_the_file_and_its_numbers(tiny_run, capsys, monkeypatch):
    monkeypatch.setenv("CNNKIT_THREADS", "1")
    assert main(["export", str(tiny_run), "--int8", "--calibration", "64"]) == 0
    out = capsys.readouterr().out
    assert "parity: max |onnx - pytorch|" in out  # the float export and its check come first
    assert "int8: accuracy float32" in out and "images/s" in out
    spec = json.loads((tiny_run / "model.int8.onnx.json").read_text())["int8"]
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert spec["calibration_images"] == 64 and spec["threads"] == 1
    assert spec["float_path"] == "model.onnx" and (tiny_run / "model.onnx").is_file()
    assert "test images" in spec["held_out_from"]  # the bundled digits have a test split
    held = metrics.get("test_images") or metrics.get("images") or spec["held_out_images"]
    assert spec["held_out_images"] == held > 0
    # the float model's held-out accuracy is the run's own final number
    assert spec["float_accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    assert spec["int8_accuracy"] == pytest.approx(spec["float_accuracy"] + spec["accuracy_delta"])
    # the int8 file is an export like the others: cnnkit predict opens it
    Image.fromarray(np.full((28, 28), 255, np.uint8)).save(tiny_run.parent / "digit.png")
    assert main(["predict", str(tiny_run / "model.int8.onnx"), str(tiny_run.parent / "digit.png"),
                 "--json"]) == 0
    top = json.loads(capsys.readouterr().out)["results"][0]["predictions"]
    assert len(top) >= 1 and 0 <= top[0]["probability"] <= 1
    report = (tiny_run / "report.html").read_text()  # written again, with the exports
    assert "<h2 id='exports'>Exports</h2>" in report and "model.int8.onnx" in report
    assert f"int8 {spec['int8_accuracy']:.4f} (delta {spec['accuracy_delta']:+.4f})" in report


@pytest.mark.parametrize("extra,message", [
    (["--format", "torchscript"], "--int8 quantizes an ONNX export"),
    (["--calibration", "0"], "--calibration"),
])
def test_export_int8_bad_options_are_one_line(tiny_run, tmp_path, capsys, extra, message):
    name = "m.pt" if "torchscript" in extra else "m.onnx"
    try:
        code = main(["export", str(tiny_run), str(tmp_path / name), "--int8", *extra])
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_export_int8_of_a_model_folder_needs_data(tiny_run, tmp_path, capsys):
    code = main(["export", str(tiny_run / "best"), str(tmp_path / "m.onnx"), "--int8"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "not a run directory" in err and "--data" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "m.onnx").exists()
    assert main(["export", str(tiny_run / "best"), str(tmp_path / "m.onnx"), "--data",
                 "bundled"]) == 2
    assert "add --int8" in capsys.readouterr().err

    assert main(["export", str(tiny_run / "best"), str(tmp_path / "m.onnx"), "--int8",
                 "--data", "bundled", "--calibration", "32"]) == 0
    spec = json.loads((tmp_path / "m.int8.onnx.json").read_text())["int8"]
    assert spec["calibration_images"] == 32 and "test images of bundled" in spec["held_out_from"]
