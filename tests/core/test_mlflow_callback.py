"""cnnkit.callbacks.MLflowLogger in a plain ``fit``: the epoch logs land in a local MLflow
file store (read back with MlflowClient), and nothing but a local folder is accepted."""

import numpy as np
import pytest

from cnnkit import callbacks
from cnnkit.train.mlflow_logger import local_store_uri

import model_helpers


@pytest.mark.filterwarnings("ignore::cnnkit.DataWarning")  # a few random validation images
def test_fit_logs_each_epoch_to_a_local_store(tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="mlflow-skinny is an optional extra (cnnkit[mlflow])")
    from mlflow.tracking import MlflowClient
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 reads file stores only so
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (24, 16, 16, 3), dtype=np.uint8)
    y = rng.integers(0, 4, 24)
    model = model_helpers.tiny_model().train()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    logger = callbacks.MLflowLogger(tmp_path / "mlruns", experiment_name="tiny", run_name="a",
                                    params={"note": "hello"})
    h = model.fit(x, y, batch_size=8, epochs=3, validation_data=(x[:8], y[:8]), verbose=0,
                  callbacks=[logger])
    client = MlflowClient(tracking_uri=logger.tracking_uri)
    run = client.get_run(logger.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "a"
    assert run.data.params == {"note": "hello", "fit_epochs": "3", "fit_steps": "3"}
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        points = client.get_metric_history(logger.run_id, key)
        assert [m.step for m in points] == [0, 1, 2]
        assert [m.value for m in points] == pytest.approx(h.history[key], rel=1e-6)
    assert client.get_experiment_by_name("tiny").experiment_id == run.info.experiment_id


@pytest.mark.parametrize("uri", ["http://127.0.0.1:5000", "databricks://x", "https://a/b"])
def test_servers_are_refused(uri):
    with pytest.raises(ValueError, match="never logs to a server"):
        local_store_uri(uri)


def test_local_folders_and_file_uris_are_file_uris(tmp_path):
    assert local_store_uri(tmp_path / "m") == (tmp_path / "m").resolve().as_uri()
    assert local_store_uri((tmp_path / "m").as_uri()) == (tmp_path / "m").resolve().as_uri()
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        local_store_uri(tmp_path / "f")
