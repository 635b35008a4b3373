"""Weight averages as callbacks: EMA (compile(ema=...)) and SWA (cnnkit.callbacks.SWA)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import cnnkit
from cnnkit import layers
from cnnkit.callbacks import EMA, SWA, Callback
from cnnkit.train.averaging import ema_decay


def _toy(n=192, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype("float32")
    y = (x @ rng.normal(size=8) > 0).astype("int64")
    return x, y


def _model(ema=None, warmup=True, batchnorm=False):
    torch.manual_seed(0)
    stack = [layers.Input((8,)), layers.Dense(16, activation="relu")]
    stack += [layers.BatchNormalization()] if batchnorm else []
    model = cnnkit.Sequential(stack + [layers.Dense(2)])
    model.compile(optimizer="adam", metrics=["accuracy"], ema=ema, ema_warmup=warmup,
                  loss=cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


class _AfterEachStep(Callback):
    """Records the trained weights after every step (runs after EMA's update)."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append(_params(self.model))


@pytest.mark.parametrize("warmup", [False, True])
def test_ema_is_the_hand_computed_average_of_every_step(warmup):
    x, y = _toy()
    model = _model(ema=0.9, warmup=warmup)
    start = _params(model)
    steps = _AfterEachStep()
    model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[steps])
    assert len(steps.seen) == 12
    average = start
    for n, weights in enumerate(steps.seen, start=1):
        d = ema_decay(0.9, n, warmup)
        average = [d * a + (1 - d) * w for a, w in zip(average, weights)]
    # after fit the model holds the average; the trained weights are kept aside
    for mine, hand in zip(_params(model), average):
        assert torch.allclose(mine, hand, atol=1e-6)
    for kept, trained in zip(model.ema.shadow, steps.seen[-1]):
        assert torch.equal(kept, trained)
    assert model.ema.holding


def test_warm_up_follows_timm_model_ema_v3():
    assert ema_decay(0.999, 1, True) == 0.0                # the first update copies the weights
    assert ema_decay(0.999, 2, True) == pytest.approx(1 - 2 ** (-2 / 3))
    assert ema_decay(0.999, 10 ** 6, True) == 0.999       # capped at the decay
    assert ema_decay(0.999, 1, False) == 0.999


def test_validation_and_the_history_are_of_the_ema_weights():
    x, y = _toy()
    model = _model(ema=0.9)
    history = model.fit(x[:128], y[:128], epochs=1, batch_size=32, verbose=0,
                        validation_data=(x[128:], y[128:]))
    assert history.history["ema_decay"] == [pytest.approx(ema_decay(0.9, 4, True))]
    held = model.evaluate(x[128:], y[128:], verbose=0, return_dict=True)   # the average
    assert held["loss"] == pytest.approx(history.history["val_loss"][0], rel=1e-6)
    model.ema.hold_trained()
    trained = model.evaluate(x[128:], y[128:], verbose=0, return_dict=True)
    assert trained["loss"] != pytest.approx(held["loss"], rel=1e-6)


def test_fit_continues_from_the_trained_weights_not_the_average():
    x, y = _toy()
    once, twice = _model(ema=0.9), _model(ema=0.9)
    once.fit(x, y, epochs=2, batch_size=32, verbose=0, shuffle=False)
    twice.fit(x, y, epochs=1, batch_size=32, verbose=0, shuffle=False)
    twice.fit(x, y, epochs=1, batch_size=32, verbose=0, shuffle=False)
    for a, b in zip(_params(once), _params(twice)):
        assert torch.equal(a, b)
    for a, b in zip(once.ema.shadow, twice.ema.shadow):
        assert torch.equal(a, b)


def test_ema_state_round_trips_through_a_checkpoint_dict():
    x, y = _toy()
    model = _model(ema=0.9)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    state = model.ema.state_dict()
    again = EMA(0.5)
    again.set_model(model)
    again.load_state_dict(state)
    assert (again.decay, again.updates, again.holding) == (0.9, 6, True)
    for a, b in zip(again.shadow, model.ema.shadow):
        assert torch.equal(a, b)


@pytest.mark.parametrize("decay", [0, 1, 1.5, -0.1, "0.9"])
def test_bad_decay_is_one_clear_error(decay):
    with pytest.raises(ValueError, match=r"EMA decay must be in \(0, 1\)"):
        _model(ema=decay) if decay else EMA(decay)


class _AtEpochEnd(Callback):
    def __init__(self):
        super().__init__()
        self.weights, self.lrs = [], []

    def on_train_batch_begin(self, batch, logs=None):
        self.lrs.append(self.model.optimizer.param_groups[0]["lr"])

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(_params(self.model))


def test_swa_is_the_mean_of_the_averaged_epochs_weights():
    x, y = _toy()
    model = _model()
    seen = _AtEpochEnd()
    model.fit(x, y, epochs=4, batch_size=32, verbose=0, callbacks=[seen, SWA(start_epoch=1)])
    mean = [torch.stack(ws).mean(0) for ws in zip(*seen.weights[1:])]  # epochs 2, 3, 4
    for mine, hand in zip(_params(model), mean):
        assert torch.allclose(mine, hand, atol=1e-6)


def test_swa_lr_anneals_to_its_rate_and_batchnorm_statistics_are_recomputed():
    x, y = _toy()
    model = _model(batchnorm=True)
    seen = _AtEpochEnd()
    swa = SWA(start_epoch=1, lr=0.05, bn_data=x)
    model.fit(x, y, epochs=3, batch_size=32, verbose=0, callbacks=[seen, swa])
    per_epoch = [seen.lrs[i * 6:(i + 1) * 6] for i in range(3)]
    assert per_epoch[0] == pytest.approx([0.001] * 6)     # before SWA: the optimizer's rate
    assert per_epoch[2] == pytest.approx([0.05] * 6)      # after the 1-epoch anneal: SWA's
    # update_bn over bn_data (one batch of 192): the statistics of the averaged weights' features
    with torch.no_grad():
        features = model.layers[0](torch.from_numpy(x))
    bn = model.layers[1].bn  # the torch BatchNorm inside cnnkit's layer
    assert torch.allclose(bn.running_mean, features.mean(0), atol=1e-5)
    assert torch.allclose(bn.running_var, features.var(0, unbiased=False), atol=1e-5)  # Keras's


def test_swa_recomputes_batchnorm_on_the_training_batches_by_default():
    x, y = _toy()
    model = _model(batchnorm=True)
    model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[SWA(start_epoch=1)])
    with torch.no_grad():
        features = model.layers[0](torch.from_numpy(x))
    # six batches of 32: the mean of their means is the mean over all images
    assert torch.allclose(model.layers[1].bn.running_mean, features.mean(0), atol=1e-5)


def test_swa_state_resumes_the_average():
    x, y = _toy()
    model = _model()
    swa = SWA(start_epoch=0)
    model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[swa])
    state = swa.state_dict()
    again = SWA(start_epoch=0)
    again.set_model(model)
    again.load_state_dict(state)
    assert again.n_averaged == 2 and again.finished
    for a, b in zip(again.average, swa.average):
        assert torch.equal(a, b)


@pytest.mark.parametrize("kwargs, needle", [
    ({"start_epoch": -1}, "start_epoch must be an epoch count"),
    ({"start_epoch": 1, "lr": 0}, "lr must be a positive number"),
    ({"start_epoch": 1, "anneal_strategy": "step"}, "anneal_strategy must be"),
])
def test_bad_swa_settings_are_one_clear_error(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        SWA(**kwargs)
