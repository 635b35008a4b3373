"""The learning-rate finder (fastai's lr_find): the sweep, its smoothing and suggestions, and
that it leaves the model, optimizer and random state exactly as they were."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import cnnkit
from cnnkit import layers
from cnnkit.train.lr_finder import LRFinderError, smooth_losses, suggest


def _toy(n=512, seed=0):
    """Two linearly separable classes of 16 features."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 16)).astype("float32")
    y = (x @ rng.normal(size=16) > 0).astype("int64")
    return x, y


def _linear(optimizer="sgd", dropout=0.0, batchnorm=False):
    torch.manual_seed(0)
    stack = [layers.Input((16,)), layers.Dense(32, activation="relu")]
    stack += [layers.BatchNormalization()] if batchnorm else []
    stack += [layers.Dropout(dropout)] if dropout else []
    model = cnnkit.Sequential(stack + [layers.Dense(2)])
    model.compile(optimizer=optimizer, metrics=["accuracy"],
                  loss=cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


@pytest.mark.slow
def test_the_sweep_is_exponential_stops_on_divergence_and_suggests_the_good_region():
    x, y = _toy()
    result = _linear("adam").lr_find(x, y, batch_size=32)
    # fastai's SchedExp: step i at start * (end / start) ** (i / num_it)
    expected = [1e-7 * (10 / 1e-7) ** (i / 100) for i in range(len(result.lrs))]
    assert np.allclose(result.lrs, expected, rtol=1e-12)
    assert "4x its minimum" in result.stopped and len(result.lrs) < 100
    assert result.losses[-1] > 4 * min(result.losses)
    # on this problem Adam learns from ~1e-3; from ~1 on it diverges
    for name in ("valley", "minimum"):
        assert 1e-3 <= result.suggestions[name] <= 0.3, result.suggestions
    trained = _linear("adam")
    trained.learning_rate = result.suggestion("valley")
    trained.fit(x, y, epochs=3, batch_size=32, verbose=0)
    assert trained.evaluate(x, y, verbose=0, return_dict=True)["accuracy"] > 0.9


def test_weights_optimizer_state_and_random_state_come_back_bit_for_bit():
    x, y = _toy()
    model = _linear("adam", dropout=0.3, batchnorm=True)
    model.fit(x[:64], y[:64], epochs=1, batch_size=32, verbose=0)  # Adam has moments now
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    opt = model.optimizer.state_dict()
    moments = {i: {k: v.clone() for k, v in s.items() if torch.is_tensor(v)}
               for i, s in opt["state"].items()}
    lr_before = model.learning_rate
    rng = torch.get_rng_state()
    model.lr_find(x, y, batch_size=32, num_it=30)
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    after = model.optimizer.state_dict()
    assert after["state"].keys() == opt["state"].keys()
    for i, state in moments.items():
        for k, v in state.items():
            assert torch.equal(after["state"][i][k], v), (i, k)
    assert model.learning_rate == lr_before
    assert torch.equal(torch.get_rng_state(), rng)


def test_a_sweep_before_fit_does_not_change_the_training_that_follows():
    x, y = _toy()
    plain, swept = _linear("adam", dropout=0.3), _linear("adam", dropout=0.3)
    torch.manual_seed(5)
    plain.fit(x, y, epochs=1, batch_size=64, verbose=0, seed=1)
    torch.manual_seed(5)
    swept.lr_find(x, y, batch_size=64, num_it=20)
    swept.fit(x, y, epochs=1, batch_size=64, verbose=0, seed=1)
    for a, b in zip(plain.state_dict().values(), swept.state_dict().values()):
        assert torch.equal(a, b)


def test_the_loss_is_smoothed_as_fastai_smooths_it():
    # debiased EMA: a constant stays itself; [1, 3] -> [1, (0.98*0.02 + 0.02*3) / (1 - 0.98**2)]
    assert smooth_losses([2.0, 2.0, 2.0]) == pytest.approx([2.0, 2.0, 2.0])
    assert smooth_losses([1.0, 3.0]) == pytest.approx([1.0, (0.98 * 0.02 + 0.06) / (1 - 0.98 ** 2)])


def test_suggestions_follow_fastais_rules_on_a_known_curve():
    num_it = 40
    lrs = [1e-6 * 10 ** (i / 5) for i in range(num_it)]
    # falls to its minimum at index 20, then rises; the steepest drop is between 12 and 13
    losses = [3.0 - 0.05 * i for i in range(13)]
    losses += [2.4 - 0.3 - 0.01 * (i - 13) for i in range(13, 21)]
    losses += [losses[-1] + 0.2 * (i - 20) for i in range(21, num_it)]
    out, points = suggest(lrs, losses, num_it)
    lrs_t, losses_t = lrs[4:-5], losses[4:-5]          # fastai: [num_it // 10 : -5]
    m = int(np.argmin(losses_t))                        # the falling run is 0..m: length m + 1
    sections = (m + 1) / 3                              # fastai's max_start is m - (m + 1) = -1
    assert out["valley"] == lrs_t[-1 + int(sections) + int(sections / 2)]
    slopes = np.diff(losses_t) / np.diff(np.log(lrs_t))
    assert out["steepest"] == lrs_t[int(np.argmin(slopes))] == lrs[12]
    assert out["minimum"] == pytest.approx(lrs[20] / 10)
    assert points["minimum"] == (lrs[20], losses[20])


def test_result_plots_and_serialises(tmp_path):
    x, y = _toy()
    result = _linear().lr_find(x, y, batch_size=32, num_it=30, end_lr=1.0, stop_div=False)
    assert len(result.lrs) == 30 and result.stopped == ""
    path = result.plot(tmp_path / "lr.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = result.to_dict()
    assert record["suggestions"] == result.suggestions and len(record["lrs"]) == len(result.lrs)
    assert all(v is None or math.isfinite(v) for v in record["losses"])


@pytest.mark.parametrize("kwargs, needle", [
    ({"start_lr": 0}, "start_lr must be a positive number"),
    ({"end_lr": 1e-8}, "end_lr must be larger than start_lr"),
    ({"num_it": 5}, "num_it must be a whole number >= 10"),
    ({"beta": 1.0}, "beta must be in [0, 1)"),
])
def test_bad_settings_are_one_clear_error(kwargs, needle):
    x, y = _toy(64)
    with pytest.raises(LRFinderError) as err:
        _linear().lr_find(x, y, **kwargs)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_an_uncompiled_model_is_refused():
    model = cnnkit.Sequential([layers.Input((16,)), layers.Dense(2)])
    with pytest.raises(RuntimeError, match="must be compiled"):
        model.lr_find(*_toy(64))


def test_a_sweep_whose_loss_never_falls_warns_that_its_suggestions_are_noise():
    from cnnkit.train.lr_finder import flat_warning
    assert "suggestions are noise" in flat_warning([2.30, 2.31, 2.29, 2.30, 2.40], 100)
    assert flat_warning([2.30, 2.10, 1.90, 2.50], 100) == ""    # fell ~17% before it rose
    # blank images: every logit starts at 0, every batch loss at ln 2, and rates up to 1e-6
    # hardly move it: a model that cannot learn during the sweep
    x, y = np.zeros((128, 16), "float32"), np.arange(128) % 2
    with pytest.warns(UserWarning, match="suggestions are noise"):
        result = _linear().lr_find(x, y, end_lr=1e-6, num_it=20)
    assert result.warning and result.to_dict()["warning"] == result.warning
