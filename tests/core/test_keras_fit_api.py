"""fit / evaluate / predict arguments, the single-batch calls and the callback events, against
what Keras 3 does on the same weights and data (scripts/keras_golden/record_callbacks.py ->
tests/golden/keras/train/callbacks.json)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import cnnkit
from cnnkit import callbacks, layers

GOLDEN = json.loads((Path(__file__).parents[1] / "golden/keras/train/callbacks.json").read_text())
X, Y = np.array(GOLDEN["x"], np.float32), np.array(GOLDEN["y"])
XV, YV = np.array(GOLDEN["xv"], np.float32), np.array(GOLDEN["yv"])
HOOKS = ["on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_train_batch_begin",
         "on_train_batch_end", "on_test_begin", "on_test_end", "on_test_batch_begin",
         "on_test_batch_end", "on_predict_begin", "on_predict_end", "on_predict_batch_begin",
         "on_predict_batch_end"]


def plain(logs):
    out = {}
    for k, v in logs.items():
        out[k] = {"array_shape": list(v.shape)} if hasattr(v, "shape") and v.ndim else float(v)
    return out


class Recorder(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.events = []
        for name in HOOKS:
            takes_index = name.endswith(("batch_begin", "batch_end")) or "epoch" in name
            setattr(self, name, self._hook(name, takes_index))

    def _hook(self, name, takes_index):
        if takes_index:
            return lambda index, logs: self.events.append([name, index, plain(logs)])
        return lambda logs: self.events.append([name, None, plain(logs)])


def model(metrics=("accuracy",)):
    m = cnnkit.Sequential([layers.Input((4,)), layers.Dense(3, activation="softmax")])
    dense = [mod for mod in m.modules() if isinstance(mod, torch.nn.Linear)][0]
    with torch.no_grad():
        dense.weight.copy_(torch.tensor(GOLDEN["kernel"]).T)
        dense.bias.copy_(torch.tensor(GOLDEN["bias"]))
    m.compile(optimizer=cnnkit.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy",
              metrics=list(metrics))
    return m, dense


def assert_events(got, expected):
    assert [e[:2] for e in got] == [e[:2] for e in expected]
    for g, e in zip(got, expected):
        assert sorted(g[2]) == sorted(e[2]), g[0]
        for key, value in e[2].items():
            if isinstance(value, dict):
                assert g[2][key] == value
            else:
                assert g[2][key] == pytest.approx(value, rel=1e-5, abs=1e-6, nan_ok=True), (g[0], g[1], key)


def assert_history(got, expected):
    assert sorted(got) == sorted(expected)
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-6)


def test_fit_events_arguments_and_logs_match_keras():
    m, _ = model()
    rec = Recorder()
    h = m.fit(X, Y, batch_size=4, epochs=2, validation_data=(XV, YV), shuffle=False, callbacks=[rec],
              verbose=0)
    assert_events(rec.events, GOLDEN["fit"]["events"])
    assert_history(h.history, GOLDEN["fit"]["history"])
    assert {k: h.params[k] for k in ("epochs", "steps")} == {"epochs": 2, "steps": 3}


def test_evaluate_callbacks_steps_sample_weight_return_dict():
    m, _ = model()
    m.fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    rec = Recorder()
    expected = GOLDEN["evaluate"]
    result = m.evaluate(XV, YV, batch_size=4, callbacks=[rec], verbose=0)
    assert_events(rec.events, expected["events"])
    assert result == pytest.approx(expected["result"], rel=1e-5)
    for key, kwargs in (("return_dict", {}), ("steps_1", {"steps": 1}),
                        ("sample_weight", {"sample_weight": np.linspace(0.1, 2, 8)})):
        got = m.evaluate(XV, YV, batch_size=4, verbose=0, return_dict=True, **kwargs)
        assert got == pytest.approx(expected[key], rel=1e-5), key
    # steps counts Keras's batches (32 by default) even without batch_size
    assert m.evaluate(XV, YV, steps=1, verbose=0) == pytest.approx(result, rel=1e-5)


def test_predict_callbacks_and_steps():
    m, _ = model()
    m.fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    rec = Recorder()
    out = m.predict(XV, batch_size=4, callbacks=[rec])
    assert_events(rec.events, GOLDEN["predict"]["events"])
    np.testing.assert_allclose(out, GOLDEN["predict"]["outputs"], rtol=1e-5, atol=1e-6)
    assert list(m.predict(XV, batch_size=4, steps=1).shape) == GOLDEN["predict"]["steps_1_shape"]


def test_train_test_predict_on_batch():
    m, dense = model()
    g = GOLDEN["train_on_batch"]
    assert m.train_on_batch(X[:4], Y[:4]) == pytest.approx(g["result"], rel=1e-5)
    assert m.train_on_batch(X[4:8], Y[4:8], return_dict=True) == pytest.approx(g["return_dict"], rel=1e-5)
    assert m.test_on_batch(XV, YV) == pytest.approx(g["test_on_batch"], rel=1e-5)
    assert m.test_on_batch(XV, YV, return_dict=True) == pytest.approx(g["test_return_dict"], rel=1e-5)
    np.testing.assert_allclose(m.predict_on_batch(XV[:2]), g["predict_on_batch"], rtol=1e-5)
    weighted = m.train_on_batch(X[:4], Y[:4], sample_weight=np.array([1, 2, 0, 1.0]), return_dict=True)
    assert weighted == pytest.approx(g["weighted"], rel=1e-5)
    np.testing.assert_allclose(dense.weight.detach().T.numpy(), g["kernel_after"], rtol=1e-5, atol=1e-6)


def test_history_keys_are_the_names_given_and_validation_freq():
    m, _ = model(metrics=["acc"])
    h = m.fit(X, Y, batch_size=4, epochs=4, validation_data=(XV, YV), validation_freq=2, shuffle=False,
              verbose=0)
    assert_history(h.history, GOLDEN["acc_validation_freq"]["history"])
    assert h.epoch == GOLDEN["acc_validation_freq"]["epoch"]


def test_steps_per_epoch_draws_one_stream_across_epochs():
    m, dense = model()
    rec = Recorder()
    with pytest.warns(UserWarning, match="ran out of data"):
        h = m.fit(X, Y, batch_size=4, epochs=2, steps_per_epoch=2, shuffle=False, callbacks=[rec], verbose=0)
    g = GOLDEN["steps_per_epoch"]
    assert_history(h.history, g["history"])
    assert [e[1] for e in rec.events if e[0] == "on_train_batch_end"] == g["batches"]
    assert h.params["steps"] == 2
    np.testing.assert_allclose(dense.weight.detach().T.numpy(), g["kernel_after"], rtol=1e-5, atol=1e-6)


def test_validation_steps_and_validation_batch_size():
    m, _ = model()
    rec = Recorder()
    h = m.fit(X, Y, batch_size=4, epochs=1, validation_data=(XV, YV), validation_steps=1,
              validation_batch_size=2, shuffle=False, callbacks=[rec], verbose=0)
    assert_history(h.history, GOLDEN["validation_steps"]["history"])
    assert [e[1] for e in rec.events if e[0] == "on_test_batch_end"] == GOLDEN["validation_steps"]["test_batches"]


def test_terminate_on_nan_records_the_nan_epoch_as_keras(capsys):
    m, _ = model()
    xn = X.copy()
    xn[5, 0] = np.nan
    rec = Recorder()
    h = m.fit(xn, Y, batch_size=4, epochs=3, validation_data=(XV, YV), shuffle=False,
              callbacks=[callbacks.TerminateOnNaN(), rec], verbose=0)
    g = GOLDEN["terminate_on_nan"]
    assert h.epoch == g["epoch"]
    assert [e[:2] for e in rec.events] == g["events"]
    assert math.isnan(h.history["loss"][0]) and math.isnan(h.history["val_loss"][0])
    assert h.history["accuracy"] == pytest.approx(g["history"]["accuracy"])
    assert "Batch 1: Invalid loss, terminating training" in capsys.readouterr().out


def test_terminate_on_nan_can_restore_the_last_good_weights(capsys):
    m, dense = model()
    m.fit(X, Y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    good = dense.weight.detach().clone()
    xn = X.copy()
    xn[5, 0] = np.nan
    m.fit(xn, Y, batch_size=4, epochs=2, shuffle=False, verbose=0,
          callbacks=[callbacks.TerminateOnNaN(restore_last_good=True)])
    torch.testing.assert_close(dense.weight.detach(), good)
    assert "restored the weights from before training" in capsys.readouterr().out


def test_lambda_callback_takes_keras_signatures():
    seen = []
    lam = callbacks.LambdaCallback(
        on_train_begin=lambda logs: seen.append(["train_begin", sorted(logs or {})]),
        on_epoch_begin=lambda epoch, logs: seen.append(["epoch_begin", epoch]),
        on_train_batch_begin=lambda batch, logs: seen.append(["batch_begin", batch]),
        on_epoch_end=lambda epoch, logs: seen.append(["epoch_end", epoch, sorted(logs)]),
        on_train_end=lambda logs: seen.append(["train_end", sorted(logs or {})]))
    model()[0].fit(X, Y, batch_size=6, epochs=1, callbacks=[lam], verbose=0, shuffle=False)
    assert seen == GOLDEN["lambda"]
    with pytest.raises(ValueError, match="on_epoch_ends"):
        callbacks.LambdaCallback(on_epoch_ends=print)


def test_bad_steps_arguments_are_named():
    m, _ = model()
    with pytest.raises(ValueError, match="steps_per_epoch must be a positive"):
        m.fit(X, Y, steps_per_epoch=0, verbose=0)
    with pytest.raises(ValueError, match="validation_freq"):
        m.fit(X, Y, validation_freq="2", verbose=0)
    with pytest.raises(ValueError, match="steps must be"):
        m.evaluate(XV, YV, steps=-1, verbose=0)


def test_validation_data_with_sample_weights_weighs_val_loss():
    m, _ = model()
    w = np.linspace(0.1, 2, 8)
    h = m.fit(X, Y, batch_size=4, epochs=1, validation_data=(XV, YV, w), shuffle=False, verbose=0)
    assert h.history["val_loss"][0] == pytest.approx(
        m.evaluate(XV, YV, sample_weight=w, verbose=0, return_dict=True)["loss"], rel=1e-6)
    assert h.history["val_loss"][0] != pytest.approx(m.evaluate(XV, YV, verbose=0)[0], rel=1e-3)
    with pytest.raises(ValueError, match="validation_data must be"):
        m.fit(X, Y, validation_data=(XV,), verbose=0)


def test_gradient_events_and_fit_state():
    seen = []

    class Grads(callbacks.Callback):
        def on_after_backward(self, batch, logs=None):
            dense = [p for p in self.model.parameters()][0]
            seen.append(("grad", batch, dense.grad is not None, self.model.fit_state.global_step))

        def on_before_optimizer_step(self, batch, logs=None):
            seen.append(("step", batch, self.model.fit_state.epoch))

    m, _ = model()
    m.fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=[Grads()])
    assert seen[:2] == [("grad", 0, True, 0), ("step", 0, 0)]
    assert seen[-2:] == [("grad", 2, True, 5), ("step", 2, 1)]
    assert m.fit_state.global_step == 6
    assert isinstance(m.fit_state.aug_generator, torch.Generator)


def test_loss_scale_factor_leaves_the_steps_unchanged():
    runs = []
    for factor in (None, 256.0):
        m, dense = model()
        m.compile(optimizer=cnnkit.optimizers.Adam(0.05, loss_scale_factor=factor),
                  loss="sparse_categorical_crossentropy")
        m.fit(X, Y, batch_size=4, epochs=1, shuffle=False, verbose=0)
        runs.append(dense.weight.detach().clone())
    torch.testing.assert_close(runs[0], runs[1], rtol=1e-5, atol=1e-6)


def test_batch_logs_are_built_only_for_callbacks_that_use_them(tmp_path):
    from cnnkit.train.callbacks import CallbackList
    m, _ = model()
    quiet = [callbacks.ModelCheckpoint(str(tmp_path / "m.keras")), callbacks.EarlyStopping(),
             callbacks.BackupAndRestore(tmp_path / "b"), callbacks.CSVLogger(str(tmp_path / "l.csv"))]
    assert not CallbackList(quiet, m, {}).wants("on_train_batch_end")
    for listening in (callbacks.ModelCheckpoint(str(tmp_path / "m.keras"), save_freq=5),
                      callbacks.TerminateOnNaN(), callbacks.LambdaCallback(on_batch_end=lambda b, logs: 0)):
        assert CallbackList([listening], m, {}).wants("on_train_batch_end")


def test_monitoring_callbacks_skip_epochs_without_validation():
    m, _ = model()
    early = callbacks.EarlyStopping(patience=0)
    plateau = callbacks.ReduceLROnPlateau(patience=1)
    h = m.fit(X, Y, batch_size=4, epochs=4, validation_data=(XV, YV), validation_freq=2, shuffle=False,
              verbose=0, callbacks=[early, plateau])
    assert h.epoch == [0, 1, 2, 3] and len(h.history["val_loss"]) == 2
    assert len(h.history["learning_rate"]) == 4
    with pytest.raises(KeyError, match="val_loss"):  # no validation at all: the mistake is named
        model()[0].fit(X, Y, epochs=1, verbose=0, callbacks=[callbacks.EarlyStopping()])


def test_batch_logs_kept_and_read_later_still_hold_their_batch():
    kept = []
    m, _ = model()
    m.fit(X, Y, batch_size=4, epochs=2, validation_data=(XV, YV), shuffle=False, verbose=0,
          callbacks=[callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: kept.append(logs))])
    expected = [e[2] for e in GOLDEN["fit"]["events"] if e[0] == "on_train_batch_end"]
    assert [dict(logs) for logs in kept] == [pytest.approx(e, rel=1e-5) for e in expected]
