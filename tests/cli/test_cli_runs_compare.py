"""``cnnkit runs`` lists run directories; ``cnnkit compare`` writes one self-contained page
with the curves overlaid and the settings that differ. Bad input gets one line."""

from __future__ import annotations

import base64
import io
import json
import re

import pytest

from cnnkit.cli import main
from cnnkit.config import TrainConfig
from cnnkit.run.directory import new_run_dir


def _fake_run(root, name, *, lr, accs, finished=True, model="simple-cnn", source="cifar10"):
    """A run directory as a run leaves it (config, env, history, metrics), without training."""
    run = new_run_dir(root, name)
    cfg = TrainConfig(data="cifar10", model=model, lr=lr, epochs=len(accs) + (0 if finished else 2))
    run.write_json(run.config_json, cfg.to_dict())
    run.write_json(run.env, {"time": f"2026-01-0{len(list(root.iterdir()))}T10:00:00+0000",
                             "data": f"{source}: 900 training, 100 validation, 0 test images of "
                                     "32x32x3, 10 classes", "model": model})
    run.write_history([{"epoch": i + 1, "loss": 2.0 - a, "accuracy": a, "val_loss": 2.1 - a,
                        "val_accuracy": a - 0.05, "lr": lr, "epoch_s": 3.0, "seconds": 3.0 * (i + 1)}
                       for i, a in enumerate(accs)])
    if finished:
        best = max(range(len(accs)), key=lambda i: accs[i])
        run.write_json(run.metrics, {"test_accuracy": accs[-1] - 0.1, "train_seconds": 9.0,
                                     "evaluate_seconds": 0.5, "report_seconds": 0.5,
                                     "best": {"monitor": "val_accuracy", "value": accs[best] - 0.05,
                                              "epoch": best + 1, "written": True}})
    return run.path


@pytest.fixture
def two_runs(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    a = _fake_run(root, "slow-lr", lr=0.001, accs=[0.3, 0.5, 0.6])
    b = _fake_run(root, "fast-lr", lr=0.01, accs=[0.4, 0.7], finished=False, model="resnet-cifar",
                  source="/data/sets/cifar10-jpeg/train")
    return root, a, b


def test_runs_lists_data_model_epochs_best_final_and_time(two_runs, capsys):
    root, a, b = two_runs
    assert main(["runs", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["run", "data", "model", "epochs", "best", "final", "val_acc",
                                "test_acc", "time", "status"]
    assert lines[1].split() == ["slow-lr", "cifar10", "simple-cnn", "3/3", "val_acc", "0.5500",
                                "@3", "0.5500", "0.5000", "10.0s", "finished"]
    assert lines[2].split() == ["fast-lr", "…/cifar10-jpeg/train", "resnet-cifar", "2/4", "val_acc", "0.6500",
                                "@2", "0.6500", "-", "6.0s", "running", "or", "killed"]
    assert main(["runs", str(root), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in listed] == ["slow-lr", "fast-lr"]
    assert listed[0]["best"] == {"monitor": "val_accuracy", "value": pytest.approx(0.55),
                                 "epoch": 3}


def test_runs_lists_a_real_run(tiny_run, capsys):
    assert main(["runs", str(tiny_run.parent)]) == 0
    out = capsys.readouterr().out.splitlines()
    row = next(line for line in out if line.startswith("tiny "))
    assert "bundled" in row and "mnist-1conv" in row and "2/2" in row and row.endswith("finished")


def _pngs(page: str) -> dict[str, bytes]:
    return {m.group(1): base64.b64decode(m.group(2)) for m in re.finditer(
        r"data-curve='(\w+)' src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)}


def test_compare_writes_one_self_contained_page(two_runs, tmp_path, capsys):
    from PIL import Image
    root, a, b = two_runs
    out = tmp_path / "cmp.html"
    assert main(["compare", str(a), str(b), "--output", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"compare: {out}"
    page = out.read_text()
    assert not re.search(r"""(src|href)=['"](?!data:)""", page)  # nothing fetched
    curves = _pngs(page)
    assert list(curves) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    for png in curves.values():
        assert Image.open(io.BytesIO(png)).size[0] >= 600
    # the settings that differ, one column per run, and nothing that is the same
    table = page[page.index("id='config'"):]
    rows = dict(re.findall(r"<tr><td>(\w+)</td>(.*?)</tr>", table))
    assert set(rows) == {"model", "lr", "epochs"}
    assert rows["lr"] == "<td>0.001</td><td>0.01</td>"
    assert "slow-lr" in page and "fast-lr" in page and "running or killed" in page


def test_a_curve_line_per_run_in_its_own_colour(two_runs):
    from cnnkit.report.compare import _curve_png, colour
    from cnnkit.run.listing import summarize
    from PIL import Image
    import numpy as np
    runs = [summarize(p) for p in two_runs[1:]]
    png = base64.b64decode(_curve_png(runs, "accuracy").split(",", 1)[1])
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)
    for i in range(2):
        rgb = np.array([int(colour(i)[k:k + 2], 16) for k in (1, 3, 5)])
        assert (np.abs(pixels - rgb).sum(1) < 30).sum() > 200, f"no line in {colour(i)}"


def test_compare_takes_a_folder_of_runs(two_runs, tmp_path):
    out = tmp_path / "all.html"
    assert main(["compare", str(two_runs[0]), "--output", str(out)]) == 0
    assert out.read_text().count("class='swatch'") == 2


@pytest.mark.parametrize("args, says", [
    (["compare", "{a}", "{tmp}"], "not a run directory (no config.json)"),
    (["compare", "{a}", "{tmp}/missing"], "no such run directory"),
    (["compare", "{a}"], "compare needs two or more runs, got 1"),
    (["runs", "{tmp}/missing"], "no such folder"),
    (["runs", "{tmp}/empty"], "holds no run directories"),
])
def test_bad_input_is_one_line(two_runs, tmp_path, capsys, args, says):
    (tmp_path / "empty").mkdir()
    args = [x.format(a=two_runs[1], tmp=tmp_path) for x in args]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err, err

