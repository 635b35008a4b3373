"""Keras's optimizers and schedules, step by step against values recorded from Keras 3
(scripts/keras_golden/record_optimizers.py -> tests/golden/keras/train/optimizers.json)."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cnnkit
from cnnkit import optimizers
from cnnkit.optimizers import schedules

GOLDEN = json.loads((Path(__file__).parents[1] / "golden/keras/train/optimizers.json").read_text())
X = torch.tensor(GOLDEN["x"])
Y = torch.tensor(GOLDEN["y"])


def dense():
    layer = torch.nn.Linear(4, 3)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(GOLDEN["kernel"]).T)  # Keras kernels are (in, out)
        layer.bias.copy_(torch.tensor(GOLDEN["bias"]))
    return layer


def run(spec, record, set_lr=None):
    layer = dense()
    opt = spec.build(layer.parameters())
    step = cnnkit.train.optim.step_function(opt)
    for i, expected in enumerate(record["steps"]):
        if set_lr is not None and i == set_lr[0]:
            opt.learning_rate = set_lr[1]
        loss = F.cross_entropy(layer(X), Y)
        assert float(loss.detach()) == pytest.approx(record["losses"][i], rel=1e-5)
        for p in layer.parameters():
            p.grad = None
        loss.backward()
        step()
        np.testing.assert_allclose(layer.weight.detach().T.numpy(), expected["kernel"], rtol=2e-5, atol=2e-6,
                                   err_msg=f"step {i}")
        np.testing.assert_allclose(layer.bias.detach().numpy(), expected["bias"], rtol=2e-5, atol=2e-6)
    assert opt.iterations == record["iterations"]
    assert float(opt.learning_rate) == pytest.approx(record["final_learning_rate"], rel=1e-6)
    return opt


@pytest.mark.parametrize("name", sorted(GOLDEN["optimizers"]))
def test_optimizer_steps_match_keras(name):
    record = GOLDEN["optimizers"][name]
    run(getattr(optimizers, record["class"])(**record["kwargs"]), record)


@pytest.mark.parametrize("name", sorted(GOLDEN["schedules"]))
def test_schedule_values_match_keras(name):
    record = GOLDEN["schedules"][name]
    sched = getattr(schedules, record["class"])(**record["kwargs"])
    np.testing.assert_allclose([sched(s) for s in range(12)], record["values"], rtol=1e-5, atol=1e-7)
    again = schedules.deserialize(schedules.serialize(sched))
    assert [again(s) for s in range(12)] == [sched(s) for s in range(12)]


@pytest.mark.parametrize("name", sorted(GOLDEN["scheduled"]))
def test_schedule_drives_each_step(name):
    record = GOLDEN["scheduled"][name]
    cls, kw = GOLDEN["schedules"][record["schedule"]]["class"], GOLDEN["schedules"][record["schedule"]]["kwargs"]
    run(getattr(optimizers, record["class"])(learning_rate=getattr(schedules, cls)(**kw), **record["kwargs"]),
        record)


@pytest.mark.parametrize("key", ["set_learning_rate", "set_learning_rate_sgd"])
def test_setting_learning_rate_changes_the_next_step(key):
    record = GOLDEN[key]
    run(getattr(optimizers, record["class"])(**record["kwargs"]), record,
        set_lr=(record["set_at"], record["value"]))


def test_learning_rate_of_a_schedule_is_not_settable():
    opt = optimizers.SGD(learning_rate=schedules.ExponentialDecay(0.1, 2, 0.5)).build(dense().parameters())
    with pytest.raises(TypeError, match="not settable"):
        opt.learning_rate = 0.2
    assert GOLDEN["set_schedule_error"].startswith("TypeError")


def test_model_optimizer_learning_rate_reads_and_sets(tiny_images):
    x, y = tiny_images
    model = cnnkit.Sequential([cnnkit.layers.Input((8, 8, 3)), cnnkit.layers.Flatten(),
                               cnnkit.layers.Dense(4, activation="softmax")])
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01), loss="sparse_categorical_crossentropy")
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    model.optimizer.learning_rate = 0.0  # takes effect at the next step: nothing moves
    before = [w.copy() for w in model.get_weights()]
    model.fit(x, y, epochs=1, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    model.optimizer.learning_rate.assign(0.05)
    assert model.learning_rate == pytest.approx(0.05)
    assert model.optimizer.learning_rate.numpy() == np.float32(0.05)
    model.fit(x, y, epochs=1, verbose=0)
    assert not all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert model.optimizer.iterations == 4  # 2 epochs x 2 batches of 32


def test_optimizer_state_round_trips_through_state_dict():
    layer = dense()
    opt = optimizers.Nadam(learning_rate=0.05).build(layer.parameters())
    F.cross_entropy(layer(X), Y).backward()
    opt.step()
    clone = dense()
    clone.load_state_dict(layer.state_dict())
    opt2 = optimizers.Nadam(learning_rate=0.05).build(clone.parameters())
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))  # torch shares tensors otherwise
    assert opt2.iterations == 1
    for model, o in ((layer, opt), (clone, opt2)):
        model.zero_grad()
        F.cross_entropy(model(X), Y).backward()
        o.step()
    torch.testing.assert_close(layer.weight, clone.weight)


def test_unsupported_and_conflicting_settings_say_so():
    with pytest.raises(NotImplementedError, match="use_ema"):
        optimizers.Adam(use_ema=True)
    with pytest.raises(ValueError, match="only one of"):
        optimizers.SGD(clipnorm=1.0, clipvalue=1.0).build(dense().parameters())
    with pytest.raises(TypeError, match="learning_rate must be"):
        optimizers.SGD(learning_rate="fast")


def test_the_optimizer_object_passed_to_compile_stays_live(tiny_images):
    x, y = tiny_images
    opt = optimizers.SGD(learning_rate=0.1)
    model = cnnkit.Sequential([cnnkit.layers.Input((8, 8, 3)), cnnkit.layers.Flatten(),
                               cnnkit.layers.Dense(4, activation="softmax")])
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
    opt.learning_rate = 0.02  # as Keras users do with the object they made
    assert float(model.optimizer.learning_rate) == pytest.approx(0.02)
    model.fit(x, y, epochs=1, verbose=0)
    assert opt.iterations == 2 and float(opt.learning_rate) == pytest.approx(0.02)


def test_a_plain_callable_learning_rate_is_called_without_arguments():
    current = [0.5]
    layer = dense()
    opt = optimizers.SGD(learning_rate=lambda: current[0]).build(layer.parameters())
    current[0] = 0.25  # read at each step
    before = layer.bias.detach().clone()
    F.cross_entropy(layer(X), Y).backward()
    grad = layer.bias.grad.clone()
    opt.step()
    torch.testing.assert_close(layer.bias.detach(), before - 0.25 * grad)
    assert float(opt.learning_rate) == 0.25
    with pytest.raises(TypeError, match="not settable"):
        opt.learning_rate = 0.1


def test_param_groups_keep_their_ratio_to_the_first_groups_rate():
    layer = dense()
    opt = optimizers.Adam().build([{"params": [layer.weight], "lr": 1e-4},
                                   {"params": [layer.bias], "lr": 1e-3}])
    assert float(opt.learning_rate) == pytest.approx(1e-4)
    opt.learning_rate = 5e-5
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([5e-5, 5e-4])


def test_adam_after_load_state_dict_steps_on_the_loaded_moments():
    layer, clone = dense(), dense()
    opt = optimizers.Adam(0.05).build(layer.parameters())
    opt2 = optimizers.Adam(0.05).build(clone.parameters())
    for model, o in ((layer, opt), (clone, opt2)):  # both have stepped (cached their moments)
        F.cross_entropy(model(X), Y).backward()
        o.step()
        model.zero_grad()
    F.cross_entropy(layer(X), Y).backward()
    opt.step()
    clone.load_state_dict(layer.state_dict())
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    for model, o in ((layer, opt), (clone, opt2)):
        model.zero_grad()
        F.cross_entropy(model(X), Y).backward()
        o.step()
    torch.testing.assert_close(layer.weight, clone.weight)
    assert copy.deepcopy(opt).clipnorm is None and copy.deepcopy(opt).iterations == 3
