"""ModelCheckpoint's file names and formats, BackupAndRestore, TensorBoard, ProgbarLogger and
the callbacks' state_dict / load_state_dict."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import cnnkit
from cnnkit import callbacks, layers

GOLDEN = json.loads((Path(__file__).parents[1] / "golden/keras/train/callbacks.json").read_text())
X, Y = np.array(GOLDEN["x"], np.float32), np.array(GOLDEN["y"])
XV, YV = np.array(GOLDEN["xv"], np.float32), np.array(GOLDEN["yv"])
HAS_KERAS_IO = importlib.util.find_spec("cnnkit.models.keras_io") is not None


def model():
    m = cnnkit.Sequential([layers.Input((4,)), layers.Dense(3, activation="softmax")])
    dense = [mod for mod in m.modules() if isinstance(mod, torch.nn.Linear)][0]
    with torch.no_grad():
        dense.weight.copy_(torch.tensor(GOLDEN["kernel"]).T)
        dense.bias.zero_()
    m.compile(optimizer=cnnkit.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
    return m


class Recording:
    """Stands in for the model's save calls: which path went to which writer."""

    def __init__(self, m):
        self.calls = []
        m.save = lambda path, overwrite=True: self.calls.append(("save", path))
        m.save_weights = lambda path: self.calls.append(("save_weights", path))


def test_checkpoint_formats_the_file_name_as_keras(tmp_path):
    m = model()
    rec = Recording(m)
    ckpt = callbacks.ModelCheckpoint(str(tmp_path / "ckpt_{epoch:02d}_{val_loss:.2f}.keras"))
    h = m.fit(X, Y, batch_size=4, epochs=2, validation_data=(XV, YV), shuffle=False, verbose=0,
              callbacks=[ckpt])
    names = [Path(p).name for _, p in rec.calls]
    assert names == [f"ckpt_{e + 1:02d}_{v:.2f}.keras" for e, v in enumerate(h.history["val_loss"])]
    assert {kind for kind, _ in rec.calls} == {"save"}


def test_checkpoint_weights_only_best_only_and_batch_frequency(tmp_path):
    m = model()
    rec = Recording(m)
    best = callbacks.ModelCheckpoint(str(tmp_path / "best.weights.h5"), save_weights_only=True,
                                     save_best_only=True, monitor="loss", verbose=1)
    every = callbacks.ModelCheckpoint(str(tmp_path / "b{epoch}-{batch}.keras"), save_freq=2)
    m.fit(X, Y, batch_size=4, epochs=3, shuffle=False, verbose=0, callbacks=[best, every])
    weights = [Path(p).name for kind, p in rec.calls if kind == "save_weights"]
    assert weights == ["best.weights.h5"] * 3  # the loss falls every epoch here
    # every 2 batches of 3 per epoch: batches 2, 4 (epoch 2, batch 1), 6 (epoch 2, batch 3), ...
    assert [Path(p).name for kind, p in rec.calls if kind == "save"] == \
        ["b1-2.keras", "b2-1.keras", "b2-3.keras", "b3-2.keras"]
    assert best.state_dict() == {"best": best.best}


def test_checkpoint_refuses_a_suffix_that_contradicts_save_weights_only(tmp_path):
    with pytest.raises(ValueError, match="ends in .keras"):
        callbacks.ModelCheckpoint(str(tmp_path / "m.keras"), save_weights_only=True)
    with pytest.raises(ValueError, match="save_weights_only=True"):
        callbacks.ModelCheckpoint(str(tmp_path / "m.weights.h5"))
    with pytest.raises(KeyError, match="val_acc"):
        callbacks.ModelCheckpoint(str(tmp_path / "{val_acc}.keras")).file_path(0, {"loss": 1.0})


@pytest.mark.skipif(not HAS_KERAS_IO, reason="cnnkit.models.keras_io (the .keras / .weights.h5 writer, "
                    "keras-files' branch) is not on this branch yet")
def test_checkpoint_writes_loadable_keras_and_h5_files(tmp_path):
    m = model()
    m.fit(X, Y, batch_size=4, epochs=1, verbose=0, validation_data=(XV, YV), callbacks=[
        callbacks.ModelCheckpoint(str(tmp_path / "m_{epoch:02d}.keras")),
        callbacks.ModelCheckpoint(str(tmp_path / "w.weights.h5"), save_weights_only=True)])
    import h5py
    assert h5py.is_hdf5(tmp_path / "w.weights.h5")
    again = cnnkit.load_model(tmp_path / "m_01.keras")
    np.testing.assert_allclose(again.predict(XV), m.predict(XV), rtol=1e-6)


def test_state_dict_round_trip_survives_train_begin():
    early = callbacks.EarlyStopping(monitor="loss", patience=3, restore_best_weights=True)
    early.set_model(model())
    early.on_train_begin({})
    early.on_epoch_end(0, {"loss": 1.0})
    early.on_epoch_end(1, {"loss": 2.0})
    state = early.state_dict()
    assert state["wait"] == 1 and state["best"] == 1.0 and len(state["best_weights"]) == 2
    fresh = callbacks.EarlyStopping(monitor="loss", patience=3, restore_best_weights=True)
    fresh.load_state_dict(state)
    fresh.on_train_begin({})  # a resumed fit begins: the loaded state stays
    assert fresh.wait == 1 and fresh.best == 1.0
    fresh.on_train_begin({})  # a later, new fit starts over
    assert fresh.wait == 0 and fresh.best is None
    plateau = callbacks.ReduceLROnPlateau(monitor="loss")
    assert set(plateau.state_dict()) == {"wait", "cooldown_counter", "best"}
    with pytest.raises(KeyError, match="unknown keys"):
        plateau.load_state_dict({"patience": 3})


class Interrupt(callbacks.Callback):
    def __init__(self, at_epoch):
        super().__init__()
        self.at_epoch = at_epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise KeyboardInterrupt


def test_backup_and_restore_resumes_an_interrupted_fit_exactly(tmp_path, capsys):
    straight = model()
    h_full = straight.fit(X, Y, batch_size=4, epochs=4, shuffle=False, verbose=0,
                          callbacks=[callbacks.EarlyStopping(monitor="loss", patience=5)])
    m = model()
    backup = callbacks.BackupAndRestore(tmp_path / "backup")
    early = callbacks.EarlyStopping(monitor="loss", patience=5)
    with pytest.raises(KeyboardInterrupt):
        m.fit(X, Y, batch_size=4, epochs=4, shuffle=False, verbose=0, callbacks=[early, backup, Interrupt(2)])
    assert (tmp_path / "backup/checkpoint/state.json").is_file()
    m2 = model()  # a new process would build the model again
    early2 = callbacks.EarlyStopping(monitor="loss", patience=5)
    h = m2.fit(X, Y, batch_size=4, epochs=4, shuffle=False, verbose=0,
               callbacks=[early2, callbacks.BackupAndRestore(tmp_path / "backup")])
    assert "resuming from" in capsys.readouterr().out
    assert h.epoch == [2, 3]
    np.testing.assert_allclose(h.history["loss"], h_full.history["loss"][2:], rtol=1e-5)
    assert early2.best == pytest.approx(min(h_full.history["loss"]), rel=1e-5)
    assert m2.optimizer.iterations == straight.optimizer.iterations
    assert not (tmp_path / "backup/checkpoint").exists()  # finished: the backup is deleted


def test_tensorboard_writes_event_files_tensorboard_reads(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard package is an optional extra")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    m = model()
    h = m.fit(X, Y, batch_size=4, epochs=2, validation_data=(XV, YV), shuffle=False, verbose=0,
              callbacks=[callbacks.TensorBoard(tmp_path / "logs", histogram_freq=1, update_freq=2)])
    train = EventAccumulator(str(tmp_path / "logs/train"), size_guidance={"histograms": 0}).Reload()
    val = EventAccumulator(str(tmp_path / "logs/validation")).Reload()
    tags = train.Tags()
    assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate", "batch_loss"} <= set(tags["scalars"])
    assert [e.value for e in train.Scalars("epoch_loss")] == pytest.approx(h.history["loss"], rel=1e-5)
    assert [e.step for e in val.Scalars("epoch_loss")] == [0, 1]
    assert [e.value for e in val.Scalars("epoch_accuracy")] == pytest.approx(h.history["val_accuracy"])
    assert [e.step for e in train.Scalars("batch_loss")] == [2, 4, 6]
    assert tags["histograms"] and tags["graph"]


def test_progbar_logger_prints_keras_lines_and_silences_the_builtin_bar(capsys):
    m = model()
    m.fit(X, Y, batch_size=4, epochs=2, verbose=2, shuffle=False, callbacks=[callbacks.ProgbarLogger()])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Epoch 1/2" and out[2] == "Epoch 2/2"
    assert out[1].startswith("3/3 ") and "ms/step - loss: " in out[1] and "accuracy: " in out[1]
    assert len(out) == 4  # cnnkit's own per-epoch line is not printed as well
    m.evaluate(XV, YV, batch_size=4, verbose=2, callbacks=[callbacks.ProgbarLogger()])
    assert capsys.readouterr().out.startswith("2/2 ")


def test_callback_states_round_trip_for_a_checkpoint_writer():
    from cnnkit.train.backup_restore import callback_states, restore_callback_states
    early = callbacks.EarlyStopping(monitor="loss", restore_best_weights=True)
    early.set_model(model())
    early.on_train_begin({})
    early.on_epoch_end(0, {"loss": 0.5})
    plateau = callbacks.ReduceLROnPlateau(monitor="loss")
    plateau.on_train_begin({})
    states, tensors = callback_states([early, callbacks.CSVLogger("x.csv"), plateau])
    json.dumps(states)  # the JSON side is JSON
    assert [s["class"] for s in states] == ["EarlyStopping", "ReduceLROnPlateau"]
    assert sorted(tensors) == ["callback0.best_weights.0", "callback0.best_weights.1"]
    fresh = [callbacks.EarlyStopping(monitor="loss", restore_best_weights=True), callbacks.CSVLogger("x.csv"),
             callbacks.ReduceLROnPlateau(monitor="loss")]
    restore_callback_states(fresh, states, tensors)
    assert fresh[0].best == 0.5 and len(fresh[0].best_weights) == 2
