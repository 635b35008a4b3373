"""The cnnkit command line: each subcommand, its help, its answers to bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cnnkit.cli import build_parser, main

from cli_helpers import TINY

SUBCOMMANDS = ["train", "evaluate", "predict", "summary", "models", "check", "report",
               "explain", "export", "serve", "runs", "compare"]

RUN_FILES = ["config.json", "config.toml", "command.txt", "env.json", "summary.txt", "history.csv",
             "metrics.json", "best/config.json", "best/model.safetensors", "last/config.json",
             "last/model.safetensors", "checkpoint/state.json", "report.html",
             "plots/accuracy.png", "plots/loss.png", "plots/confusion_matrix.png",
             "plots/samples.png", "plots/top_losses.png", "plots/timing.png"]


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_has_help_with_an_example(name, capsys):
    with pytest.raises(SystemExit) as done:
        main([name, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"cnnkit {name}" in out.split("examples:")[1]


def test_top_level_help_lists_subcommands(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    assert all(name in out for name in SUBCOMMANDS)


def test_unknown_option_lists_valid_ones(capsys):
    with pytest.raises(SystemExit) as done:
        main(["train", "--epoch", "3"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "unknown option" in err and "did you mean --epochs" in err and "--batch-size" in err


def test_unknown_dataset_lists_names(tmp_path, capsys):
    assert main(["train", "--data", "cifar-1O", "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a dataset name" in err and "cifar10" in err and "mnist" in err
    assert not any(tmp_path.iterdir())  # nothing written for a run that never started


def test_missing_data_path_says_so(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nope"), "--output", str(tmp_path)]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_folder_without_images_says_so(tmp_path, capsys):
    (tmp_path / "data" / "cat").mkdir(parents=True)
    (tmp_path / "data" / "dog").mkdir()
    (tmp_path / "data" / "cat" / "notes.txt").write_text("hello")
    assert main(["train", "--data", str(tmp_path / "data"), "--output", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "--data" in err and ("image" in err or "no files" in err), err


def test_unknown_model_lists_valid_ones(tmp_path, capsys):
    assert main(["train", "--model", "resnet-9000", *TINY[:2], "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "resnet-9000" in err and "simple-cnn" in err and "mnist-1conv" in err


def test_train_writes_every_file(tiny_run):
    missing = [f for f in RUN_FILES if not (tiny_run / f).is_file()]
    assert not missing, f"missing from the run directory: {missing}"
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert 0 <= metrics["test_accuracy"] <= 1 and metrics["test_loss"] > 0
    assert len(metrics["confusion_matrix"]) == 10 and set(metrics["per_class"]) == set("0123456789")
    assert {"precision", "recall", "f1", "support"} <= set(metrics["per_class"]["3"])
    header = (tiny_run / "history.csv").read_text().splitlines()[0].split(",")
    assert {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "data_wait_s",
            "compute_s"} <= set(header)
    env = json.loads((tiny_run / "env.json").read_text())
    assert env["seed"] == 0 and "torch" in env and env["device"] == "cpu"
    command = (tiny_run / "command.txt").read_text()
    assert "cnnkit train --limit 256" in command and "--config" in command


def test_config_toml_repeats_the_run_settings(tiny_run):
    from cnnkit.config import TrainConfig, load_config_file
    cfg = TrainConfig.from_dict(load_config_file(tiny_run / "config.toml"))
    assert cfg == TrainConfig.from_dict(json.loads((tiny_run / "config.json").read_text()))
    assert (cfg.limit, cfg.model, cfg.epochs) == (256, "mnist-1conv", 2)


def test_existing_run_folder_is_never_overwritten(tiny_run, tmp_path):
    before = (tiny_run / "metrics.json").read_bytes()
    assert main(["train", *TINY, "--epochs", "1", "--output", str(tiny_run.parent), "--name", "tiny",
                 "--no-report", "--device", "cpu"]) == 0
    assert (tiny_run.parent / "tiny-2" / "metrics.json").is_file()
    assert (tiny_run / "metrics.json").read_bytes() == before


def test_evaluate_a_run(tiny_run, capsys):
    assert main(["evaluate", str(tiny_run), "--json", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["images"] == 1000 and 0 <= out["accuracy"] <= 1 and "per_class" in out


def _digit_png(path, value=255):
    img = np.zeros((28, 28), np.uint8)
    img[6:22, 12:16] = value  # a stroke, roughly a "1"
    Image.fromarray(img).save(path)


def test_predict_skips_a_non_image_and_goes_on(tiny_run, tmp_path, capsys):
    _digit_png(tmp_path / "one.png")
    (tmp_path / "notes.png").write_text("this is not an image")
    sub = tmp_path / "more"
    sub.mkdir()
    _digit_png(sub / "two.png", 200)
    rc = main(["predict", str(tiny_run), str(tmp_path / "one.png"), str(tmp_path / "notes.png"),
               str(sub), str(tmp_path / "missing.png"), "--json", "--top-k", "2", "--device", "cpu"])
    captured = capsys.readouterr()
    assert rc == 0
    out = json.loads(captured.out)
    assert [r["file"].rsplit("/", 1)[-1] for r in out["results"]] == ["one.png", "two.png"]
    assert len(out["results"][0]["predictions"]) == 2
    probs = [p["probability"] for p in out["results"][0]["predictions"]]
    assert probs == sorted(probs, reverse=True)
    assert "notes.png" in captured.err and "not an image" in captured.err
    assert "missing.png" in captured.err


def test_predict_table_and_glob(tiny_run, tmp_path, capsys):
    for i in range(3):
        _digit_png(tmp_path / f"d{i}.png")
    assert main(["predict", str(tiny_run), str(tmp_path / "d*.png")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("file") and len(lines) == 4


def test_predict_nothing_readable_fails(tiny_run, tmp_path, capsys):
    (tmp_path / "x.jpg").write_bytes(b"\x00" * 10)
    assert main(["predict", str(tiny_run), str(tmp_path / "x.jpg")]) == 1
    assert "no image could be read" in capsys.readouterr().err


def test_corrupt_or_foreign_model_is_refused(tiny_run, tmp_path, capsys):
    import shutil
    bad = tmp_path / "bad"
    shutil.copytree(tiny_run / "best", bad)
    (bad / "model.safetensors").write_bytes(b"not safetensors")
    assert main(["summary", str(bad)]) == 2
    assert "corrupt" in capsys.readouterr().err.lower()
    future = tmp_path / "future"
    shutil.copytree(tiny_run / "best", future)
    cfg = json.loads((future / "config.json").read_text())
    cfg["version"] = 99
    (future / "config.json").write_text(json.dumps(cfg))
    assert main(["predict", str(future), str(tmp_path)]) == 2
    assert "version 99" in capsys.readouterr().err


def test_summary_of_run_and_zoo_name(tiny_run, capsys):
    assert main(["summary", str(tiny_run)]) == 0
    assert "Total params: 54,410" in capsys.readouterr().out
    assert main(["summary", "simple-cnn"]) == 0
    assert "167,562" in capsys.readouterr().out
    assert main(["summary", "no-such-net"]) == 2
    assert "simple-cnn" in capsys.readouterr().err


def test_models_lists_the_zoo(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "simple-cnn" in out and "mnist-2conv" in out
    assert main(["models", "mnist*", "--json"]) == 0
    names = [m["name"] for m in json.loads(capsys.readouterr().out)]
    assert names and all(n.startswith("mnist") for n in names)


def test_check_a_folder(tmp_path, capsys):
    for cls in ("a", "b"):
        (tmp_path / "d" / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8, 3), 40 * i + (cls == "b") * 100, np.uint8)).save(
                tmp_path / "d" / cls / f"{i}.png")
    (tmp_path / "d" / "a" / "broken.png").write_bytes(b"nope")
    rc = main(["check", str(tmp_path / "d"), "--bad-files", str(tmp_path / "bad.tsv")])
    assert rc == 1
    assert "broken.png" in (tmp_path / "bad.tsv").read_text()
    assert main(["check", str(tmp_path / "none")]) == 2


def test_report_rebuilds(tiny_run, capsys):
    (tiny_run / "report.html").unlink()
    assert main(["report", str(tiny_run)]) == 0
    assert (tiny_run / "report.html").is_file()


def test_resume_refuses_other_options(tiny_run, capsys):
    assert main(["train", "--resume", str(tiny_run), "--lr", "0.1"]) == 2
    assert "only --epochs" in capsys.readouterr().err


def test_resume_of_a_finished_run_asks_for_more_epochs(tiny_run, capsys):
    assert main(["train", "--resume", str(tiny_run)]) == 2
    assert "--epochs" in capsys.readouterr().err


def test_parser_builds_without_optional_modules():
    assert build_parser().prog == "cnnkit"


def _shapes_folder(root, n=12, size=16):
    """Two classes a CNN tells apart at once: a bright square top-left vs bottom-right."""
    rng = np.random.default_rng(0)
    for cls, (r, c) in (("top", (0, 0)), ("bottom", (1, 1))):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            h = size // 2
            img[r * h:(r + 1) * h, c * h:(c + 1) * h] += 180
            Image.fromarray(img).save(root / cls / f"{i}.png")
    return root


def test_train_on_an_image_folder_with_a_config_file(tmp_path, capsys):
    data = _shapes_folder(tmp_path / "shapes")
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'[train]\ndata = "{data}"\nmodel = "simple-cnn"\nepochs = 3\nbatch_size = 8\n'
                   'val_split = 0.25\nverbose = "2"\nno_such = 1\n')
    assert main(["train", "--config", str(cfg)]) == 2
    assert "unknown setting 'no_such'" in capsys.readouterr().err
    cfg.write_text(cfg.read_text().replace("no_such = 1\n", ""))
    assert main(["train", "--config", str(cfg), "--epochs", "2", "--output", str(tmp_path / "runs"),
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    run = tmp_path / "runs" / "shapes-simple-cnn"
    assert f"report: {run / 'report.html'}" in out
    assert "validation images held out" in out             # no test/ split: says what it evaluates
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["class_names"] == ["bottom", "top"] and metrics["epochs_run"] == 2
    assert sum(v["support"] for v in metrics["per_class"].values()) == 6  # 25% of 2 x 12, per class
    assert json.loads((run / "config.json").read_text())["epochs"] == 2  # the command line won

    # evaluate the run's model on the whole folder, and fine-tune it as --model PATH
    assert main(["evaluate", str(run), "--data", str(data), "--device", "cpu"]) == 0
    assert "on 24 images (all of" in capsys.readouterr().out
    assert main(["train", "--data", str(data), "--model", str(run / "best"), "--epochs", "1",
                 "--output", str(tmp_path / "runs"), "--name", "tuned", "--no-report",
                 "--device", "cpu"]) == 0
    assert (tmp_path / "runs" / "tuned" / "last" / "model.safetensors").is_file()


def test_model_folder_of_the_wrong_shape_is_refused(tiny_run, tmp_path, capsys):
    data = _shapes_folder(tmp_path / "shapes", n=3)
    assert main(["train", "--data", str(data), "--model", str(tiny_run / "best"),
                 "--output", str(tmp_path / "runs")]) == 2
    assert "takes input (28, 28, 1)" in capsys.readouterr().err


def test_recipe_run_writes_a_run_directory(tmp_path, capsys):
    pytest.importorskip("cnnkit.recipes")
    assert main(["train", "--recipe", "mnist-fast", "--limit", "600", "--output", str(tmp_path),
                 "--device", "cpu", "--verbose", "0"]) == 0
    run = tmp_path / "bundled-mnist-fast"
    for f in ("recipe.txt", "history.csv", "metrics.json", "last/model.safetensors", "report.html"):
        assert (run / f).is_file(), f
    assert "recipe mnist-fast" in (run / "recipe.txt").read_text()
    assert json.loads((run / "config.json").read_text())["recipe"] == "mnist-fast"


def test_recipe_refuses_settings_it_decides_and_unknown_names(tmp_path, capsys):
    pytest.importorskip("cnnkit.recipes")
    assert main(["train", "--recipe", "mnist-fast", "--epochs", "3", "--output", str(tmp_path)]) == 2
    assert "decides epochs itself" in capsys.readouterr().err
    assert main(["train", "--recipe", "quick", "--output", str(tmp_path)]) == 2
    assert "mnist-fast" in capsys.readouterr().err
    assert main(["train", "--nproc", "0", "--output", str(tmp_path)]) == 2
    assert "--nproc 0: give a number of processes >= 1" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_predict_accepts_an_exported_onnx_file(tiny_run, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    for i in range(2):
        _digit_png(tmp_path / f"d{i}.png")
    onnx_path = tmp_path / "model.onnx"
    assert main(["export", str(tiny_run), str(onnx_path), "--format", "onnx"]) == 0
    capsys.readouterr()
    assert main(["predict", str(onnx_path), str(tmp_path / "d*.png"), "--json"]) == 0
    from_onnx = json.loads(capsys.readouterr().out)
    assert main(["predict", str(tiny_run), str(tmp_path / "d*.png"), "--json"]) == 0
    from_torch = json.loads(capsys.readouterr().out)
    for a, b in zip(from_onnx["results"], from_torch["results"]):
        assert a["predictions"][0]["class"] == b["predictions"][0]["class"]
        assert a["predictions"][0]["probability"] == pytest.approx(b["predictions"][0]["probability"], abs=1e-4)
