"""INT8 quantization of ONNX exports (cnnkit.export_int8): the file, the check, the numbers."""

import json

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from cnnkit.export import ParityError, export, load_exported  # noqa: E402
from cnnkit.export_int8 import calibration_sample, int8_path, quantize_int8  # noqa: E402
from cnnkit.models.base import Model  # noqa: E402
from model_helpers import TINY_CLASS_NAMES as NAMES, tiny_model  # noqa: E402

FAST = dict(rounds=2, min_round_s=0.05, threads=1, verbose=False)


@pytest.fixture(scope="module")
def float_file(tmp_path_factory):
    return export(tiny_model(), tmp_path_factory.mktemp("int8") / "model.onnx", verbose=False).path


@pytest.fixture(scope="module")
def pixels():
    return np.random.default_rng(1).integers(0, 256, (160, 16, 16, 3), dtype=np.uint8)


def test_int8_file_is_qdq_with_int8_weights_and_measured(float_file, pixels, capsys):
    labels = load_exported(float_file).predict(pixels[100:]).argmax(1)  # float32's answers
    result = quantize_int8(float_file, pixels[:100], held_out=(pixels[100:], labels),
                           **{**FAST, "verbose": True})
    assert result.path == float_file.with_name("model.int8.onnx")
    assert "accuracy float32 1.0000, int8" in capsys.readouterr().out

    graph = onnx.load(str(result.path)).graph
    ops = [n.op_type for n in graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops and "Softmax" in ops
    int8_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8
                    and len(t.dims) == 4]  # conv kernels stored as int8
    assert int8_weights
    per_channel = [n for n in graph.node if n.op_type == "DequantizeLinear"
                   and any(a.name == "axis" for a in n.attribute)]
    assert per_channel  # per-output-channel scales
    assert result.path.stat().st_size < float_file.stat().st_size

    # the held-out labels are float32's own predictions: its accuracy is 1, int8's the agreement
    assert result.float_accuracy == 1.0 and result.held_out_images == 60
    assert 0.5 <= result.int8_accuracy <= 1.0
    assert result.accuracy_delta == pytest.approx(result.int8_accuracy - 1.0)
    assert result.calibration_images == 100 and result.agreement >= 0.95
    assert result.float_images_per_s > 0 and result.int8_images_per_s > 0 and result.threads == 1

    spec = json.loads(result.spec_path.read_text())
    assert result.spec_path.name == "model.int8.onnx.json" and spec["file"] == "model.int8.onnx"
    assert spec["int8"]["speedup"] == pytest.approx(result.speedup)
    assert spec["int8"]["float_accuracy"] == 1.0 and spec["int8"]["calibration_images"] == 100
    assert spec["class_names"] == NAMES and "parity" not in spec

    result.spec_path.unlink()  # the file alone is enough: the spec is in its metadata too
    quantized = load_exported(result.path)
    probs = quantized.predict(pixels[:5])
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)  # Softmax kept in float
    np.testing.assert_allclose(probs, load_exported(float_file).predict(pixels[:5]), atol=0.1)
    assert quantized.spec["int8"]["agreement"] == result.agreement


def test_int8_disagreeing_with_float_raises_parity_error(tmp_path, pixels):
    """Classes that differ by far less than one int8 step: the int8 top-1 is near chance."""
    torch.manual_seed(0)
    dense = nn.Linear(16 * 16 * 3, 10)
    with torch.no_grad():
        common = torch.randn(1, 16 * 16 * 3)
        dense.weight.copy_(common + 1e-4 * torch.randn(10, 16 * 16 * 3))
        dense.bias.zero_()
    model = Model(nn.Sequential(nn.Flatten(), dense), input_shape=(16, 16, 3)).eval()
    float_file = export(model, tmp_path / "tied.onnx", verbose=False).path
    with pytest.raises(ParityError, match=r"agrees with float32's on only .* calibration images"):
        quantize_int8(float_file, pixels[:64], **FAST)
    assert (tmp_path / "tied.int8.onnx").is_file()  # kept for inspection


def test_bad_inputs_are_one_clear_line(float_file, pixels, tmp_path):
    with pytest.raises(ValueError, match=r"uint8 N×16×16×3 raw pixels"):
        quantize_int8(float_file, pixels[:8, :8], **FAST)
    with pytest.raises(ValueError, match=r"uint8 N×16×16×3"):
        quantize_int8(float_file, pixels[:8].astype(np.float32), **FAST)
    with pytest.raises(ValueError, match="takes an ONNX export"):
        quantize_int8(tmp_path / "model.pt", pixels[:8], **FAST)
    with pytest.raises(ValueError, match=r"held_out must be .* got \(4, 16, 16, 3\) images and 3 labels"):
        quantize_int8(float_file, pixels[:8], held_out=(pixels[:4], [0, 1, 2]), **FAST)
    with pytest.raises(ValueError, match="min_agreement must be in 0..1"):
        quantize_int8(float_file, pixels[:8], min_agreement=95, **FAST)


def test_calibration_sample_is_seeded_and_takes_engine_layout():
    nchw = torch.arange(20 * 3 * 4 * 4, dtype=torch.int32).reshape(20, 3, 4, 4).to(torch.uint8)
    a, b = calibration_sample(nchw, 5, seed=3), calibration_sample(nchw, 5, seed=3)
    assert a.shape == (5, 4, 4, 3) and np.array_equal(a, b)
    assert not np.array_equal(a, calibration_sample(nchw, 5, seed=4))
    assert int8_path("out/model.onnx").as_posix() == "out/model.int8.onnx"


def test_weights_take_7_bits_only_on_x86_cpus_without_vnni(float_file, pixels):
    from cnnkit.export_int8 import int8_reduce_range

    zen3 = {"fpu", "sse2", "avx", "avx2", "fma"}
    zen4 = {"fpu", "avx2", "avx512f", "avx512_vnni", "avx512_bf16"}
    alder_lake = {"fpu", "avx2", "avx_vnni"}
    assert int8_reduce_range(zen3) is True
    assert int8_reduce_range(zen4) is False and int8_reduce_range(alder_lake) is False
    assert int8_reduce_range(frozenset()) is False  # no flags known (no /proc/cpuinfo)

    out = float_file.with_name("forced.int8.onnx")
    result = quantize_int8(float_file, pixels[:40], out, reduce_range=True, **FAST)
    spec = json.loads(result.spec_path.read_text())["int8"]
    assert spec["reduce_range"] is True and "7 bits" in spec["format"]
    default = quantize_int8(float_file, pixels[:40], float_file.with_name("auto.int8.onnx"), **FAST)
    assert json.loads(default.spec_path.read_text())["int8"]["reduce_range"] is int8_reduce_range()
