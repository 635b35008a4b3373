"""Each callback's behaviour, driven by scripted logs and by real training."""

import csv

import numpy as np
import pytest
import torch

import cnnkit
from cnnkit import callbacks, layers


class FakeModel:
    """Just what callbacks touch: stop flag, weights, learning rate, save."""

    def __init__(self):
        self.stop_training = False
        self.weights = [np.zeros(1)]
        self.learning_rate = 0.1
        self.saved = []

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, w):
        self.weights = [x.copy() for x in w]

    def save(self, path, overwrite=True):
        self.saved.append(path)


def drive(cb, values, key="val_loss", on_epoch=None):
    """Run epochs with the given monitored values; returns the epoch where training stopped."""
    model = FakeModel()
    cb.set_model(model)
    cb.on_train_begin()
    stopped = None
    for epoch, value in enumerate(values):
        model.weights = [np.array([float(epoch)])]  # weights "are" the epoch number
        cb.on_epoch_begin(epoch)
        cb.on_epoch_end(epoch, {key: value, "loss": 1.0})
        if on_epoch:
            on_epoch(epoch, model)
        if model.stop_training:
            stopped = epoch
            break
    cb.on_train_end()
    return stopped, model


def test_early_stopping_stops_after_patience():
    # best at epoch 1 (0.5); epochs 2, 3 do not improve; patience 2 -> stop at epoch 3
    stopped, _ = drive(callbacks.EarlyStopping(patience=2), [1.0, 0.5, 0.6, 0.55, 0.1])
    assert stopped == 3


def test_early_stopping_min_delta_and_mode_max():
    # improvements smaller than min_delta do not count
    stopped, _ = drive(callbacks.EarlyStopping(monitor="val_accuracy", patience=2, min_delta=0.05),
                       [0.5, 0.52, 0.53, 0.9], key="val_accuracy")
    assert stopped == 2


def test_early_stopping_restores_best_weights():
    stopped, model = drive(callbacks.EarlyStopping(patience=1, restore_best_weights=True),
                           [1.0, 0.2, 0.4, 0.5])
    assert stopped == 2
    assert model.weights[0][0] == 1.0  # weights of epoch 1, the best


def test_early_stopping_names_missing_key():
    with pytest.raises(KeyError, match="val_loss.*validation data"):
        drive(callbacks.EarlyStopping(), [1.0], key="loss_only")


def test_reduce_lr_on_plateau():
    lrs = []
    drive(callbacks.ReduceLROnPlateau(factor=0.5, patience=1, min_lr=0.02),
          [1.0, 1.0, 1.0, 1.0, 1.0], on_epoch=lambda e, m: lrs.append(m.learning_rate))
    assert lrs == pytest.approx([0.1, 0.05, 0.025, 0.02, 0.02])


def test_learning_rate_scheduler_one_and_two_args():
    seen = []
    drive(callbacks.LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1)), [1, 1, 1],
          on_epoch=lambda e, m: seen.append(m.learning_rate))
    assert seen == pytest.approx([0.1, 0.05, 0.1 / 3])
    seen.clear()
    drive(callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5), [1, 1],
          on_epoch=lambda e, m: seen.append(m.learning_rate))
    assert seen == pytest.approx([0.05, 0.025])


def test_model_checkpoint_save_best_only(tmp_path):
    cb = callbacks.ModelCheckpoint(str(tmp_path / "ep{epoch:02d}"), save_best_only=True)
    _, model = drive(cb, [1.0, 0.5, 0.7, 0.4])
    assert [p.split("/")[-1] for p in model.saved] == ["ep01", "ep02", "ep04"]


def test_csv_logger(tmp_path):
    path = tmp_path / "log.csv"
    drive(callbacks.CSVLogger(str(path)), [0.3, 0.2])
    rows = list(csv.reader(open(path)))
    assert rows[0] == ["epoch", "loss", "val_loss"]
    assert rows[1] == ["0", "1.0", "0.3"] and rows[2] == ["1", "1.0", "0.2"]


def test_terminate_on_nan():
    model = FakeModel()
    cb = callbacks.TerminateOnNaN()
    cb.set_model(model)
    cb.on_train_batch_end(0, {"loss": 1.0})
    assert not model.stop_training
    cb.on_train_batch_end(1, {"loss": float("nan")})
    assert model.stop_training


def _tiny_model():
    return cnnkit.Sequential([layers.Input((8, 8, 3)), layers.Flatten(), layers.Dense(4, activation="softmax")])


def test_early_stopping_in_real_training(tiny_images):
    x, y = tiny_images
    cnnkit.utils.set_random_seed(0)
    model = _tiny_model()
    # learning rate 0: val_loss never improves after the first epoch
    model.compile(optimizer=cnnkit.optimizers.SGD(learning_rate=0.0), loss="sparse_categorical_crossentropy")
    hist = model.fit(x, y, epochs=10, validation_split=0.25, verbose=0,
                     callbacks=[callbacks.EarlyStopping(patience=2)])
    assert hist.epoch == [0, 1, 2]


def test_restore_best_weights_in_real_training(tiny_images):
    x, y = tiny_images
    cnnkit.utils.set_random_seed(0)
    model = _tiny_model()
    model.compile(optimizer="adam", learning_rate=0.05, loss="sparse_categorical_crossentropy")
    snapshots = []
    record = callbacks.LambdaCallback(on_epoch_end=lambda e, logs: snapshots.append(
        (logs["val_loss"], [w.copy() for w in model.get_weights()])))
    es = callbacks.EarlyStopping(patience=100, restore_best_weights=True)
    model.fit(x, y, epochs=6, validation_split=0.25, verbose=0, callbacks=[record, es])
    best_loss, best_weights = min(snapshots, key=lambda s: s[0])
    for got, want in zip(model.get_weights(), best_weights):
        np.testing.assert_array_equal(got, want)


def test_scheduler_and_plateau_change_the_real_optimizer(tiny_images):
    x, y = tiny_images
    model = _tiny_model()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    hist = model.fit(x, y, epochs=3, verbose=0,
                     callbacks=[callbacks.LearningRateScheduler(lambda e: 0.1 * 0.5 ** e)])
    assert model.optimizer.param_groups[0]["lr"] == pytest.approx(0.025)
    assert hist.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.025])
