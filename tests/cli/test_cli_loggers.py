"""``cnnkit train --log tensorboard,mlflow``: the event files and the MLflow file store hold
history.csv's numbers (same keys, same epochs), read back with TensorBoard's
EventAccumulator and ``MlflowClient``; params and artifacts; resume continues the same logs."""

from __future__ import annotations

import csv
import importlib.util
import json

import pytest

from cli_helpers import TINY

HAVE = [name for name in ("tensorboard", "mlflow") if importlib.util.find_spec(name)]
pytestmark = pytest.mark.skipif(not HAVE, reason="neither tensorboard nor mlflow is installed")


def _train(*args) -> int:
    from cnnkit.cli import main
    return main(["train", *TINY, "--device", "cpu", *map(str, args)])


def _history(run) -> list[dict]:
    """history.csv as written (strings -> floats), not through cnnkit's reader."""
    with open(run / "history.csv", newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _tensorboard_scalars(run) -> dict[str, list[tuple[int, float]]]:
    """history key -> [(step, value)] from the run's event files (val_* from validation/)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    found = {}
    for split, prefix in (("train", ""), ("validation", "val_")):
        acc = EventAccumulator(str(run / "tensorboard" / split)).Reload()
        for tag in acc.Tags()["scalars"]:
            assert tag.startswith("epoch_"), tag
            found[prefix + tag[len("epoch_"):]] = [(e.step, e.value) for e in acc.Scalars(tag)]
    return found


def _mlflow_run(run):
    import os
    from mlflow.tracking import MlflowClient
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 reads file stores only so
    saved = json.loads((run / "mlflow.json").read_text())
    client = MlflowClient(tracking_uri=saved["tracking_uri"])
    return client, client.get_run(saved["run_id"])


def _assert_same_as_history(history: list[dict], logged: dict[str, list[tuple[int, float]]]):
    keys = [k for k in history[0] if k != "epoch"]
    assert set(keys) <= set(logged), f"missing {set(keys) - set(logged)}"
    for key in keys:
        steps = [s for s, _ in logged[key]]
        assert steps == [int(r["epoch"]) - 1 for r in history], key  # one point per epoch
        # history.csv keeps 6 significant digits; the logs the float itself
        assert [v for _, v in logged[key]] == pytest.approx([r[key] for r in history],
                                                            rel=1e-5, abs=1e-6), key

def _assert_logs_hold_history(run, history: list[dict]):
    """Each installed logger's store holds exactly history.csv's points; returns MLflow's
    (client, run) when it is installed."""
    if "tensorboard" in HAVE:
        _assert_same_as_history(history, _tensorboard_scalars(run))
    if "mlflow" not in HAVE:
        return None
    client, mlrun = _mlflow_run(run)
    logged = {k: [(m.step, m.value) for m in client.get_metric_history(mlrun.info.run_id, k)]
              for k in history[0] if k != "epoch"}
    _assert_same_as_history(history, logged)
    return client, mlrun



@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("logged")
    assert _train("--epochs", "2", "--log", ",".join(HAVE), "--output", out, "--name", "r",
                  "--no-report") == 0  # (report.html is logged like the others when written)
    return out / "r"


@pytest.mark.skipif("tensorboard" not in HAVE, reason="tensorboard is not installed")
def test_tensorboard_event_files_hold_history_csv(logged_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    history = _history(logged_run)
    assert len(history) == 2
    _assert_same_as_history(history, _tensorboard_scalars(logged_run))
    text = EventAccumulator(str(logged_run / "tensorboard" / "train")).Reload()
    config = text.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "| epochs | 2 |" in config and '| model | "mnist-1conv" |' in config


@pytest.mark.skipif("mlflow" not in HAVE, reason="mlflow is not installed")
def test_mlflow_store_holds_history_csv_params_and_artifacts(logged_run):
    history = _history(logged_run)
    client, mlrun = _mlflow_run(logged_run)
    assert (logged_run / "mlruns").is_dir() and mlrun.info.status == "FINISHED"
    assert mlrun.info.run_name == "r"
    logged = {key: [(m.step, m.value) for m in client.get_metric_history(mlrun.info.run_id, key)]
              for key in history[0] if key != "epoch"}
    _assert_same_as_history(history, logged)
    config = json.loads((logged_run / "config.json").read_text())
    assert mlrun.data.params == {**{k: str(v) for k, v in config.items()},
                                 "fit_epochs": "2", "fit_steps": "9"}  # fit's epochs, steps per epoch
    metrics = json.loads((logged_run / "metrics.json").read_text())
    assert mlrun.data.metrics["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    artifacts = {a.path for a in client.list_artifacts(mlrun.info.run_id)}
    assert {"metrics.json", "history.csv", "config.toml"} <= artifacts


def test_resume_continues_the_same_logs_without_repeating_epochs(tmp_path):
    assert _train("--epochs", "1", "--log", ",".join(HAVE), "--output", tmp_path, "--name", "r",
                  "--no-report") == 0
    run = tmp_path / "r"
    from cnnkit.cli import main
    assert main(["train", "--resume", str(run), "--epochs", "3"]) == 0
    history = _history(run)
    assert [r["epoch"] for r in history] == [1, 2, 3]
    mlflow_store = _assert_logs_hold_history(run, history)
    if mlflow_store:
        client, mlrun = mlflow_store
        assert len(client.search_runs([mlrun.info.experiment_id])) == 1  # the same run, continued
        assert mlrun.info.status == "FINISHED"


@pytest.mark.parametrize("args, says", [
    (["--log", "wandb"], "unknown logger 'wandb'"),
    (["--log", "mlflow", "--mlflow-uri", "http://tracking.example:5000"], "never logs to a server"),
    (["--mlflow-uri", "elsewhere"], "--mlflow-uri is for --log mlflow"),
])
def test_bad_log_options_are_one_line_and_make_no_run(tmp_path, capsys, args, says):
    assert _train("--output", tmp_path, *args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err, err
    assert not any(tmp_path.iterdir())


def test_a_missing_logger_package_names_the_extra(monkeypatch):
    from cnnkit.run import loggers
    real = importlib.util.find_spec
    monkeypatch.setattr(loggers.importlib.util, "find_spec",
                        lambda name, *a: None if name == "mlflow" else real(name, *a))
    assert loggers.log_problem("tensorboard, MLflow") == \
        "--log mlflow needs the mlflow package: pip install 'cnnkit[mlflow]'"
    assert loggers.parse_log("tensorboard, MLflow,tensorboard") == ["tensorboard", "mlflow"]


def test_the_report_says_where_the_logs_are(logged_run):
    from cnnkit.report import render_report
    page = render_report(logged_run)
    if "tensorboard" in HAVE:
        assert f"tensorboard --logdir {logged_run / 'tensorboard'}" in page
    if "mlflow" in HAVE:
        saved = json.loads((logged_run / "mlflow.json").read_text())
        assert f"MLflow: run {saved['run_id']} in {saved['tracking_uri']}" in page


@pytest.mark.slow
def test_a_kill_between_checkpoints_leaves_no_epoch_logged_twice(tmp_path):
    """Checkpoints at epochs 4 and 8; SIGKILL once epoch 6 is in history.csv (so epoch 5 is
    logged: the loggers run before epoch 6 trains) and before epoch 8 ends, so the resumed
    run re-trains epochs 5-8, which the first try had already logged (TensorBoard: purged on
    resume) or kept back (MLflow: no checkpoint held them yet). Two epochs of window for
    the kill, so a fast machine cannot finish before it lands."""
    import signal
    import subprocess
    import sys
    import time

    from cli_helpers import cnnkit_env, run_cli
    run = tmp_path / "k"
    proc = subprocess.Popen([sys.executable, "-m", "cnnkit", "train", *TINY, "--epochs", "8",
                             "--checkpoint-every", "4", "--log", ",".join(HAVE), "--no-report",
                             "--output", str(tmp_path), "--name", "k"],
                            env=cnnkit_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if (run / "history.csv").is_file() and len(_history(run)) >= 6:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    run_cli("train", "--resume", run)
    history = _history(run)
    assert [r["epoch"] for r in history] == [1, 2, 3, 4, 5, 6, 7, 8]
    _assert_logs_hold_history(run, history)
