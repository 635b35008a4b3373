"""The final evaluation is computed once: when the last validation evaluated the weights the
run reports, on the same split and batches, its per-sample outputs are reused, not
recomputed; the numbers are those of the history."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def evaluations(monkeypatch):
    """Counts the final evaluations run.report.finish computes itself."""
    from cnnkit.run import report
    calls = []
    original = report.evaluate

    def counting(*a, **k):
        calls.append(k)
        return original(*a, **k)

    monkeypatch.setattr(report, "evaluate", counting)
    return calls


def _folder(root, side: int = 16):
    """Three classes of 20 small coloured images: no test/ split, so the final evaluation
    runs on the held-out validation images."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    for k, name in enumerate(["red", "green", "blue"]):
        (root / name).mkdir(parents=True)
        for i in range(20):
            img = rng.integers(0, 80, (side, side, 3), dtype=np.uint8)
            img[..., k] += 150
            Image.fromarray(img).save(root / name / f"{i}.png")
    return root


def _train(tmp_path, **kw):
    from cnnkit.config import TrainConfig
    from cnnkit.experiment import train
    kw = {"batch_size": 16, **kw}
    cfg = TrainConfig(data=str(_folder(tmp_path / "images")), model="simple-cnn", val_split=0.25,
                      verbose="0", output=str(tmp_path / "runs"), name="e", device="cpu", **kw)
    return train(cfg, log=lambda *a: None)


def test_the_last_validation_is_the_final_evaluation(tmp_path, evaluations):
    result = _train(tmp_path, epochs=1)  # one epoch: its weights are best and last
    assert evaluations == []
    metrics = json.loads(result.run.metrics.read_text())
    row = result.run.read_history()[-1]
    assert metrics["weights_epoch"] == 1 and metrics["split"] != "test"
    assert metrics["test_accuracy"] == pytest.approx(row["val_accuracy"], abs=1e-6)
    assert metrics["test_loss"] == pytest.approx(row["val_loss"], rel=1e-5)
    cm = metrics["confusion_matrix"]
    assert sum(map(sum, cm)) == int(metrics["evaluated_on"].split("(")[1].split()[0])
    assert (result.run.plots / "top_losses.png").is_file()


def test_other_weights_are_evaluated(tmp_path, evaluations):
    """A batch size above the evaluation's 256 gives other batches: evaluated again."""
    _train(tmp_path, epochs=1, batch_size=300, report=False)
    assert len(evaluations) == 1


def test_a_recipe_runs_final_evaluation_agrees_with_its_last_validation(tmp_path, monkeypatch,
                                                                         evaluations):
    """Same weights, same held-out split, the recipe's own TTA in both: the same accuracy,
    computed once (the recipe's last evaluation is the final one)."""
    from cnnkit import recipes
    from cnnkit.config import TrainConfig
    from cnnkit.experiment import train
    tiny = recipes.Recipe(name="final-eval-test", description="tiny", widths=(4, 8, 8),
                          epochs=2.0, batch_size=16, whiten_images=32, tta="flip",
                          precision="fp32", compile="off")
    monkeypatch.setitem(recipes.RECIPES, tiny.name, tiny)
    cfg = TrainConfig(data=str(_folder(tmp_path / "images", side=24)), recipe=tiny.name, val_split=0.25,
                      verbose="0", output=str(tmp_path / "runs"), name="r", device="cpu")
    result = train(cfg, log=lambda *a: None)
    metrics = json.loads(result.run.metrics.read_text())
    row = result.run.read_history()[-1]
    assert metrics["split"] != "test" and metrics["tta_views"] == ["identity", "hflip"]
    assert metrics["test_accuracy"] == pytest.approx(row["val_accuracy"], abs=1e-6)
    assert evaluations == []  # reused: finish computed no evaluation of its own
    cm = metrics["confusion_matrix"]
    assert sum(map(sum, cm)) == int(metrics["evaluated_on"].split("(")[1].split()[0])
