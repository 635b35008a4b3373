"""A multi-label run end to end on tiny separable data (quadrants lit up): `cnnkit train
--data labels.csv` takes the multi-label path, reaches a high mAP, records the per-label
table and thresholds, and predict / export / serve give the labels above the thresholds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnnkit.cli import main
from multilabel_builders import QUADRANTS, quadrant_images, write_csv_dataset


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished 4-epoch run on 200 quadrant images (150 train / 50 validation), evaluated
    on 60 more (--test-data)."""
    root = tmp_path_factory.mktemp("quadrants")
    csv = write_csv_dataset(root, n=200)
    held_out = write_csv_dataset(root / "held_out", n=60, seed=1)
    rc = main(["train", "--data", str(csv), "--test-data", str(held_out), "--epochs", "4",
               "--val-split", "0.25",
               "--output", str(root / "runs"), "--name", "ml", "--device", "cpu",
               "--verbose", "0"])
    assert rc == 0
    return root / "runs" / "ml"


@pytest.fixture(scope="module")
def model(run):
    from cnnkit.models.saving import load_model
    return load_model(run / "best")


@pytest.mark.slow  # one shared 4-epoch run with its report: seconds
def test_csv_run_trains_sigmoid_bce_to_a_high_map_and_records_it(run):
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["multi_label"] is True and metrics["map"] >= 0.95
    assert metrics["split"] == "test" and metrics["evaluated_on"].startswith("test split (60")
    assert metrics["thresholds_tuned_on"] == "validation split (50 images)"
    assert sorted(metrics["per_label"]) == sorted(QUADRANTS)
    assert metrics["best"]["monitor"] == "val_map"
    assert "val_map" in (run / "history.csv").read_text().splitlines()[0]
    assert metrics["macro_f1"] >= metrics["macro_f1_at_0.5"]  # tuned thresholds help F1
    saved = json.loads((run / "best" / "config.json").read_text())
    assert saved["multi_label"] is True and saved["thresholds"] == metrics["thresholds"]
    assert saved["compile"]["loss"] == "binary_crossentropy"
    report = (run / "report.html").read_text()
    assert "Metrics per label" in report and "Confusion matrix" not in report
    assert 'data-plot="samples"' in report and (run / "plots" / "samples.narrow.png").is_file()
    for name in QUADRANTS:
        assert f"<td>{name}</td>" in report


@pytest.mark.slow  # one shared 4-epoch run with its report: seconds
def test_model_predict_labels_gives_every_label_at_or_above_its_threshold(model):
    x, _ = quadrant_images(8, seed=5)
    probs = model.predict_proba(x)
    assert probs.shape == (8, 4) and not np.allclose(probs.sum(1), 1)  # sigmoids, not softmax
    t = np.array(model.thresholds)
    for p, labels in zip(probs, model.predict_labels(x)):
        assert {q["class"] for q in labels} == {model.class_names[j]
                                                for j in np.nonzero(p >= t)[0]}


@pytest.mark.slow  # one shared 4-epoch run with its report: seconds
def test_predict_cli_lists_the_labels_above_their_thresholds(run, model, tmp_path, capsys):
    from PIL import Image
    x, y = quadrant_images(3, seed=9)
    files = []
    for i, img in enumerate(x):
        Image.fromarray(img).save(tmp_path / f"{i}.png")
        files.append(str(tmp_path / f"{i}.png"))
    assert main(["predict", str(run), *files, "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    probs = model.predict_proba(x)
    for r, p in zip(results, probs):
        want = {model.class_names[j] for j in np.nonzero(p >= np.array(model.thresholds))[0]}
        assert {q["class"] for q in r["labels"]} == want
    assert main(["predict", str(run), files[0], "--threshold", "0"]) == 0  # every label
    line = capsys.readouterr().out.splitlines()[1]
    assert all(name in line for name in QUADRANTS)


@pytest.mark.slow  # one shared 4-epoch run with its report: seconds
def test_export_writes_sigmoid_probabilities_and_the_thresholds(model, tmp_path):
    pytest.importorskip("onnxruntime")
    from cnnkit.export import export, load_exported
    result = export(model, tmp_path / "m.onnx", verbose=False)
    spec = json.loads(result.spec_path.read_text())
    assert spec["multi_label"] is True and spec["thresholds"] == model.thresholds
    exported = load_exported(tmp_path / "m.onnx")
    x, _ = quadrant_images(6, seed=2)
    np.testing.assert_allclose(exported.predict(x), model.predict_proba(x), atol=1e-5)
    assert exported.multi_label and exported.thresholds == model.thresholds


@pytest.mark.slow  # one shared 4-epoch run with its report: seconds
def test_serve_gives_every_label_above_its_threshold(model):
    pytest.importorskip("fastapi")
    httpx = pytest.importorskip("httpx")
    import io

    from PIL import Image

    from cnnkit.serve import create_app, running
    x, _ = quadrant_images(2, seed=7)
    files = []
    for i, img in enumerate(x):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        files.append(("file", (f"{i}.png", buf.getvalue(), "image/png")))
    probs, t = model.predict_proba(x), np.array(model.thresholds)
    with running(create_app(model)) as url, httpx.Client(base_url=url, timeout=20) as c:
        info = c.get("/model").json()
        assert info["multi_label"] is True and info["thresholds"] == model.thresholds
        got = c.post("/predict", files=files).json()["predictions"]
        cam = c.post("/explain", files=files[:1]).json()
    for g, p in zip(got, probs):
        assert {q["class"] for q in g["labels"]} == {model.class_names[j]
                                                     for j in np.nonzero(p >= t)[0]}
    assert [q["class"] for q in cam["labels"]] == [q["class"] for q in got[0]["labels"]]


@pytest.mark.slow  # a one-epoch run on 60 images: seconds
def test_folder_per_label_from_python_with_multi_label(tmp_path):
    """``cnnkit.experiment.train`` with ``multi_label=True`` and a folder per label (copies merged)."""
    import shutil

    from PIL import Image

    from cnnkit.config import TrainConfig
    from cnnkit.experiment import train
    x, y = quadrant_images(60, seed=1)
    for i, (img, row) in enumerate(zip(x, y)):
        first = None
        for q in np.nonzero(row)[0]:
            folder = tmp_path / "data" / QUADRANTS[q]
            folder.mkdir(parents=True, exist_ok=True)
            if first is None:
                first = folder / f"{i}.png"
                Image.fromarray(img).save(first)
            else:
                shutil.copy(first, folder / f"{i}.png")
    result = train(TrainConfig(data=str(tmp_path / "data"), multi_label=True, epochs=1,
                               output=str(tmp_path / "runs"), report=False, verbose="0",
                               device="cpu"))
    with_labels = int((y.sum(1) > 0).sum())
    assert len(result.data.train[0]) + len(result.data.val[0]) == with_labels
    assert result.data.train[1].shape[1] == 4 and "map" in result.metrics


@pytest.mark.parametrize("args, says", [
    (["--data", "bundled", "--multi-label"], "single-label dataset"),
    (["--data", "labels.csv", "--recipe", "fast"], "recipes train single-label classifiers"),
    (["--data", "missing.csv"], "no such labels CSV"),
])
def test_what_cannot_train_multi_label_is_one_line_exit_2(tmp_path, capsys, args, says):
    write_csv_dataset(tmp_path, n=4)
    args = [str(tmp_path / a) if a.endswith(".csv") else a for a in args]
    assert main(["train", *args, "--output", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and "\n" not in err
