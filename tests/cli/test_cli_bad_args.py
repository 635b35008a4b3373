"""Every command answers a bad argument with one line on stderr and a non-zero exit, never a
traceback and never exit 0 (issue 13 item 16)."""

from __future__ import annotations

import io
import shutil
import sys
import tarfile

import numpy as np
import pytest
from PIL import Image

from cli_helpers import run_cli
from cnnkit.cli import main


def answer(argv, capsys) -> tuple[int, list[str]]:
    """(exit status, the non-empty lines on stderr) of ``cnnkit ARGV`` run in-process."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as done:  # argparse's own exit
        code = done.code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return code, err


def assert_one_line(code, err, *needles, command=None):
    assert code not in (0, None), err
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    if command:
        assert err[0].startswith(f"cnnkit {command}: "), err
    for needle in needles:
        assert needle in err[0], err


@pytest.fixture
def files(tmp_path):
    """A plain file, a digit image, and files named .pt / .onnx that are neither."""
    (tmp_path / "afile").write_text("x")
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "digit.png")
    (tmp_path / "bad.pt").write_bytes(b"not torchscript")
    (tmp_path / "bad.onnx").write_bytes(b"not onnx at all")
    return tmp_path


# ------------------------------------------------------------------------ parse-time checks

@pytest.mark.parametrize("argv,needles", [
    (["train", "--batch-size", "0"], ["batch_size", "must be >= 1"]),
    (["train", "--device", "cuda:7"], ["device", "cuda:7"]),
    (["train", "--device", "gpu"], ["not a device name"]),
    (["evaluate", "RUN", "--batch-size", "0"], ["--batch-size", "must be 1 or more"]),
    (["evaluate", "RUN", "--device", "cuda:7"], ["--device", "'cuda:7'"]),
    (["predict", "RUN", "x.png", "--top-k", "0"], ["--top-k", "must be 1 or more"]),
    (["predict", "RUN", "x.png", "--batch-size", "0"], ["--batch-size"]),
    (["predict", "RUN", "x.png", "--device", "cuda:7"], ["--device", "'cuda:7'"]),
    (["summary", "mnist-1conv", "--input-shape", "a,b"], ["'a,b' is not an image shape", "H,W,C"]),
    (["summary", "mnist-1conv", "--input-shape", "0,0,3"], ["not an image shape"]),
    (["summary", "mnist-1conv", "--num-classes", "0"], ["--num-classes"]),
    (["serve", "RUN", "--port", "99999"], ["99999 is not a TCP port", "1-65535"]),
    (["serve", "RUN", "--port", "http"], ["'http' is not a whole number"]),
    (["explain", "RUN", "x.png", "--class-index", "-1"], ["--class-index", "0 or more"]),
    (["export", "RUN", "model.xyz"], ["unknown export file type .xyz", ".onnx", ".pt"]),
    (["export", "RUN", "model"], ["unknown export file type (no suffix)"]),
    (["train", "--epoch", "3"], ["unknown option", "did you mean --epochs"]),
    (["predict", "RUN"], ["required", "IMAGE"]),
])
def test_bad_argument_gets_one_line_and_exit_2(argv, needles, capsys):
    code, err = answer(argv, capsys)
    assert code == 2
    assert_one_line(code, err, *needles, command=argv[0])


@pytest.mark.parametrize("command", [
    ["train", "--output", "{f}/afile"],
    ["train", "--output", "{f}/afile/runs"],
    ["evaluate", "RUN", "--output", "{f}/afile/metrics.json"],
    ["evaluate", "RUN", "--output", "{f}"],
    ["export", "RUN", "{f}/afile/model.onnx"],
    ["explain", "RUN", "x.png", "--out", "{f}/afile"],
    ["check", "{f}", "--bad-files", "{f}/afile/bad.tsv"],
])
def test_output_paths_that_cannot_be_written(command, files, capsys):
    code, err = answer([a.format(f=files) for a in command], capsys)
    assert code == 2
    assert_one_line(code, err, "afile" if "afile" in " ".join(command) else "is a folder",
                    command=command[0])


# ------------------------------------------------------------------------ checks after loading

def test_class_index_out_of_range_names_the_classes(tiny_run, files, capsys):
    code, err = answer(["explain", tiny_run, files / "digit.png", "--class-index", "99",
                        "--out", files / "ex"], capsys)
    assert_one_line(code, err, "--class-index 99: the model has 10 classes (0..9", command="explain")
    assert code == 2 and not (files / "ex").exists()


def test_export_format_that_contradicts_the_suffix(tiny_run, tmp_path, capsys):
    code, err = answer(["export", tiny_run, tmp_path / "m.onnx", "--format", "torchscript"], capsys)
    assert_one_line(code, err, "--format torchscript does not match", command="export")


@pytest.mark.parametrize("name,kind", [("bad.pt", "TorchScript"), ("bad.onnx", "ONNX")])
def test_predict_on_an_export_that_is_not_one(name, kind, files, capsys):
    if kind == "ONNX":
        pytest.importorskip("onnxruntime")
    code, err = answer(["predict", files / name, files / "digit.png"], capsys)
    assert code == 2
    assert_one_line(code, err, f"not a readable {kind} file", "export the model again",
                    command="predict")


def test_resume_from_a_corrupt_state_json(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "checkpoint" / "state.json").write_text("{not json")
    code, err = answer(["train", "--resume", run], capsys)
    assert code == 2
    assert_one_line(code, err, "state.json", command="train")


@pytest.mark.parametrize("archive", ["garbage", "truncated"])
def test_bad_archive_in_the_dataset_cache(archive, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CNNKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CNNKIT_OFFLINE", "1")
    where = tmp_path / "cache" / "datasets" / "cifar10"
    where.mkdir(parents=True)
    if archive == "garbage":
        data = np.random.default_rng(0).bytes(2000)
    else:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
            payload = np.random.default_rng(0).bytes(50_000)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        data = buf.getvalue()[:-40]
    (where / "cifar-10-python.tar.gz").write_bytes(data)
    code, err = answer(["train", "--data", "cifar10", "--output", tmp_path / "runs"], capsys)
    assert code == 2
    assert_one_line(code, err, "cifar-10-python.tar.gz: corrupt or incomplete archive",
                    "delete it", command="train")


def test_unexpected_errors_are_one_line_too(monkeypatch, capsys):
    from cnnkit import cli

    def boom(args):
        raise RuntimeError("something inside\nbroke")
    monkeypatch.setattr(cli, "cmd_models", boom)
    monkeypatch.delenv("CNNKIT_DEBUG", raising=False)
    code, err = answer(["models"], capsys)
    assert code == 1
    assert_one_line(code, err, "unexpected RuntimeError: something inside broke", "CNNKIT_DEBUG=1",
                    command="models")
    monkeypatch.setenv("CNNKIT_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["models"])


def test_python_m_cnnkit_answers_in_one_line():
    """The real entry point, in a subprocess: no traceback, exit 2."""
    proc = run_cli("serve", "somewhere", "--port", "99999", check=False, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert lines == ["cnnkit serve: argument --port: 99999 is not a TCP port: give 1-65535 "
                     "(e.g. 8000); see `cnnkit serve --help`"]


def test_a_cuda_index_this_machine_lacks(monkeypatch, capsys):
    """On a one-GPU machine cuda:7 is named as missing (CUDA faked: CI has no GPU)."""
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    code, err = answer(["predict", "RUN", "x.png", "--device", "cuda:7"], capsys)
    assert_one_line(code, err, "'cuda:7': this machine has 1 CUDA device (cuda:0)", command="predict")
    from cnnkit.utils import device_problem
    assert device_problem("cuda:0") is None and device_problem("cuda") is None


def test_train_refuses_one_class_before_writing_a_run(tmp_path, capsys):
    """Refused data leaves nothing behind: no half-made run directory."""
    folder = tmp_path / "photos" / "only"
    folder.mkdir(parents=True)
    for i in range(6):
        Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(folder / f"{i}.png")
    runs = tmp_path / "runs"
    code, err = answer(["train", "--data", str(tmp_path / "photos"), "--epochs", "1",
                        "--output", str(runs)], capsys)
    assert code == 2 and "two classes" in err[-1]
    assert not runs.exists() or not any(runs.iterdir())


@pytest.mark.parametrize("command, blocked, extra", [
    ("export", "onnx", "export"), ("serve", "uvicorn", "serve")])
def test_a_missing_optional_extra_names_the_install(tiny_run, tmp_path, monkeypatch, capsys,
                                                    command, blocked, extra):
    """cnnkit's own modules always import; only an optional extra's package can be missing,
    and then one line names the ``pip install 'cnnkit[extra]'`` that brings it."""
    for name in [m for m in sys.modules if m == blocked or m.startswith(blocked + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, blocked, None)  # importing it raises ImportError
    argv = [command, tiny_run, tmp_path / "m.onnx"] if command == "export" else \
        [command, tiny_run, "--port", "65431"]
    code, err = answer(argv, capsys)
    assert_one_line(code, err, f"pip install 'cnnkit[{extra}]'", blocked, command=command)
