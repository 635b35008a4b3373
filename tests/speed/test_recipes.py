"""Recipes: valid configs, a couple of training steps on tiny data, budgets, saving."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import cnnkit
from cnnkit import recipes
from cnnkit.recipes import Recipe

TINY = dict(widths=(8, 8, 8), batch_size=16, whiten_images=64, eval_batch_size=32)


def tiny_rgb(n=64, size=32, seed=0):
    """Learnable: the label is which quadrant is brightest."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 60, size=(n, size, size, 3), dtype=np.uint8)
    y = np.arange(n) % 4
    half = size // 2
    for i, label in enumerate(y):
        r, c = divmod(int(label), 2)
        x[i, r * half:(r + 1) * half, c * half:(c + 1) * half] += 180
    return x, y.astype(np.int64)


def measured(bf16_speedup: float):
    """A CPU measurement whose bf16 runs ``bf16_speedup`` times fp32 (matmul and conv)."""
    from cnnkit.speed import measure
    return measure.Measurement(cpu="test CPU", torch=torch.__version__, threads=1,
                               fp32_matmul_gflops=100.0, bf16_matmul_gflops=100.0 * bf16_speedup,
                               fp32_conv_gflops=100.0, bf16_conv_gflops=100.0 * bf16_speedup)


AMX, AVX512_BF16, EMULATED = measured(4.05), measured(2.58), measured(0.04)


@pytest.mark.parametrize("name", recipes.names())
@pytest.mark.parametrize("device, cpu", [("cpu", AMX), ("cpu", AVX512_BF16), ("cpu", EMULATED),
                                         ("cuda", None)], ids=["amx", "avx512bf16", "avx2", "cuda"])
def test_every_recipe_resolves_to_a_valid_config(name, device, cpu):
    base = recipes.get(name)
    r = base.resolve(device, measurement=cpu)
    assert r.cpu == {} and r.cuda == {} and r.cpu_amx == {}
    assert r.precision in ("fp32", "bf16", "fp16") and r.compile in ("on", "off")
    assert r.epochs > 0 and r.batch_size >= 1 and len(r.widths) == 3
    assert r.description
    expected = dict(base.cpu) if device == "cpu" else dict(base.cuda)
    if cpu is AMX:
        expected.update(base.cpu_amx)
    for key, value in expected.items():
        assert getattr(r, key) == value
    # a per-device override of the length must not leave a phase that never starts
    if r.lookahead:
        assert r.lookahead[0] < r.epochs, "lookahead starts after the last epoch"
    if r.whiten:
        assert r.whiten_bias_epochs < r.epochs
    text = recipes.describe(name, device)
    assert f"recipe {name} on {device}" in text and "widths" in text
    assert r.to_dict()["name"] == name


def test_cpu_amx_fields_apply_only_where_bf16_runs_on_matrix_units():
    long = recipes.get("fast-long")
    assert long.resolve("cpu", measurement=AMX).widths == (64, 256, 256)
    assert long.resolve("cpu", measurement=AMX).precision == "bf16"
    for cpu in (AVX512_BF16, EMULATED):  # vector bf16 or none: the narrower CPU net
        assert long.resolve("cpu", measurement=cpu).widths == long.cpu["widths"]
    assert long.resolve("cpu", measurement=EMULATED).precision == "fp32"
    assert long.resolve("cuda").widths == (64, 256, 256) and long.resolve("cuda").epochs == 16
    with pytest.raises(ValueError, match="cpu_amx overrides unknown fields: widht"):
        Recipe(name="x", description="x", cpu_amx={"widht": (1, 2, 3)})


def test_mnist_long_trains_relu_only_where_amx_makes_gelu_a_large_share():
    long = recipes.get("mnist-long")
    acts = {}
    for label, cpu in (("amx", AMX), ("avx512bf16", AVX512_BF16), ("avx2", EMULATED)):
        r = long.resolve("cpu", measurement=cpu)
        net = recipes.build_model(r, (28, 28, 1), 10).module
        acts[label] = {type(m).__name__ for m in net.modules()} & {"ReLU", "GELU"}
    assert acts == {"amx": {"ReLU"}, "avx512bf16": {"GELU"}, "avx2": {"GELU"}}
    assert recipes.get("mnist-fast").resolve("cpu", measurement=AMX).activation == "gelu"


def test_cpu_recipes_are_smaller_than_gpu_ones():
    fast = [recipes.get("fast").resolve(d, measurement=AMX) for d in ("cpu", "cuda")]
    assert sum(fast[0].widths) < sum(fast[1].widths)
    long_cpu, long_gpu = (recipes.get("fast-long").resolve(d, measurement=cpu)
                          for d, cpu in (("cpu", AVX512_BF16), ("cuda", None)))
    assert sum(long_cpu.widths) < sum(long_gpu.widths)
    amx = recipes.get("fast-long").resolve("cpu", measurement=AMX)
    assert amx.epochs < long_gpu.epochs  # airbench94's net on both, trained less on a CPU
    for gpu in (fast[1], long_gpu):
        assert gpu.precision == "bf16" and gpu.compile == "on"


def test_bad_fields_are_refused():
    with pytest.raises(ValueError, match="tta"):
        recipes.get("fast").replace(tta="mirror")
    with pytest.raises(ValueError, match="momentum"):
        recipes.get("fast").replace(momentum=1.0)
    with pytest.raises(ValueError, match="unknown fields"):
        Recipe(name="x", description="x", cpu={"widht": (1, 2, 3)})
    with pytest.raises(ValueError, match="unknown recipe"):
        recipes.get("fastest")
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipes.get("fast").epochs = 3
    with pytest.raises(ValueError, match="whiten_width"):
        recipes.get("fast").replace(whiten_width=0)
    with pytest.raises(ValueError, match="rotate must be >= 0"):
        recipes.get("mnist-long").replace(rotate=-5.0)
    with pytest.raises(ValueError, match="zoom in"):
        recipes.get("mnist-long").replace(zoom=1.5)


def test_rotate_and_zoom_reach_the_augmentation(monkeypatch):
    from cnnkit.data.augment import Augment
    seen = []
    original = Augment.__call__

    def spy(self, x, generator=None):
        seen.append((self.rotate, self.zoom, self.crop))
        return original(self, x, generator)

    monkeypatch.setattr(Augment, "__call__", spy)
    x, y = tiny_rgb(size=28)
    gray = x.mean(axis=-1).astype(np.uint8)
    recipes.run_recipe("mnist-fast", train=(gray, y), epochs=0.25, verbose=0, precision="fp32",
                       rotate=10.0, zoom=0.1, translate=0, **TINY)
    assert seen and seen[0] == (10.0, 0.1, 0)  # rotation alone turns the augmentation on


def test_whiten_width_sets_the_number_of_whitening_filters():
    x, y = tiny_rgb()
    run = recipes.run_recipe("fast", train=(x, y), epochs=0.25, verbose=0, precision="fp32",
                             whiten_width=6, **TINY)
    net = run.model.module
    assert net.whiten.out_channels == 6 and net.features[2].conv1.in_channels == 6


def test_triangle_schedule():
    f = recipes.triangle(100, 0.2, 0.25, 0.1)
    assert f(0) == pytest.approx(0.2)
    assert f(25) == pytest.approx(1.0)
    assert f(100) == pytest.approx(0.1)
    assert f(10) < f(20) < f(25) > f(60) > f(100)
    assert f(1000) == pytest.approx(0.1)  # past the end: stays at the end value


def test_fast_recipe_trains_a_few_steps_on_tiny_data():
    x, y = tiny_rgb()
    run = recipes.run_recipe("fast", train=(x, y), val=(x[:32], y[:32]), epochs=2, verbose=0,
                             eval_every=1,
                             precision="fp32", **TINY)
    assert [row["epoch"] for row in run.history] == [1, 2]
    assert run.history[-1]["step"] == 2 * (64 // 16)
    assert all(0 <= row["val_accuracy"] <= 1 for row in run.history)
    assert run.history[0]["seconds"] <= run.history[1]["seconds"] <= run.history[1]["wall_seconds"]
    assert run.seconds == run.history[-1]["seconds"] and run.accuracy is not None
    assert run.recipe.widths == (8, 8, 8) and run.recipe.epochs == 2
    probs = run.model.predict_proba(x[:3])
    assert probs.shape == (3, 4) and np.allclose(probs.sum(1), 1, atol=1e-4)
    # channels_last, whitening frozen, BatchNorm scale frozen
    net = run.model.module
    assert run.model.memory_format == torch.channels_last
    assert not net.whiten.weight.requires_grad
    bn = net.features[2].norm1
    assert torch.equal(bn.weight, torch.ones_like(bn.weight))


def test_a_recipe_keeps_the_thread_count_the_user_chose(monkeypatch):
    # OMP_NUM_THREADS=1 (two jobs sharing a machine, or a test worker): a recipe once reset the
    # threads to every physical core, oversubscribing the cores beside the other job
    from cnnkit.speed import perf
    monkeypatch.setattr(perf, "_CONFIGURED", {})
    monkeypatch.setattr(perf, "physical_cores", lambda: 2)
    monkeypatch.delenv("CNNKIT_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x, y = tiny_rgb(n=32)
        recipes.run_recipe("fast", train=(x, y), epochs=0.5, verbose=0, precision="fp32", **TINY)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_fractional_epochs_stop_part_way_and_eval_every_fraction():
    x, y = tiny_rgb()
    run = recipes.run_recipe("fast", train=(x, y), val=(x[:16], y[:16]), epochs=1.5,
                             eval_every=0.5, verbose=0, precision="fp32", **TINY)
    steps = [row["step"] for row in run.history]
    assert steps == [2, 4, 6]  # 4 steps per epoch, evaluated every 2, stopped after 6
    assert run.history[-1]["step"] == 6


def test_eval_every_zero_evaluates_only_the_last_epoch(monkeypatch):
    from cnnkit.recipes import airbench
    calls = []
    real = airbench.evaluate
    monkeypatch.setattr(airbench, "evaluate", lambda *a, **k: calls.append(k) or real(*a, **k))
    x, y = tiny_rgb()
    run = recipes.run_recipe("fast", train=(x, y), val=(x[:16], y[:16]), epochs=3,
                             eval_every=0, verbose=0, precision="fp32", **TINY)
    assert [row["epoch"] for row in run.history] == [1, 2, 3]
    assert ["val_accuracy" in row for row in run.history] == [False, False, True]
    assert len(calls) == 1 and run.accuracy is not None
    with pytest.raises(ValueError, match="eval_every"):
        Recipe(name="x", description="", eval_every=2.0)


def test_target_accuracy_and_time_budget_stop_early():
    x, y = tiny_rgb()
    run = recipes.run_recipe("fast", train=(x, y), val=(x[:16], y[:16]), epochs=5,
                             target_acc=0.0, verbose=0, precision="fp32", **TINY)
    assert len(run.history) == 1 and run.time_to(0.0) == run.history[0]["seconds"]
    run = recipes.run_recipe("fast", train=(x, y), epochs=50, time_budget_s=0.0, verbose=0,
                             precision="fp32", **TINY)
    assert run.history[-1]["step"] < 50 * 4
    assert run.accuracy is None and run.time_to(0.5) is None


def test_whitening_bias_freezes_after_its_epochs():
    x, y = tiny_rgb()
    run = recipes.run_recipe("fast", train=(x, y), epochs=3, whiten_bias_epochs=1, verbose=0,
                             precision="fp32", lookahead=None, **TINY)
    opt = run.model.optimizer
    assert opt.param_groups[0]["params"] == [run.model.module.whiten.bias]
    assert opt.param_groups[0]["lr"] == 0.0 and opt.param_groups[2]["lr"] > 0


def test_frozen_whitening_bias_gets_no_gradient_and_the_same_weights(monkeypatch):
    """After the freeze the backward pass stops at the first conv group (no gradient for the
    whitening output is computed); the trained weights equal those of the LR-0 route."""
    from cnnkit.recipes import airbench
    x, y = tiny_rgb()
    kw = dict(train=(x, y), epochs=3, whiten_bias_epochs=1, verbose=0, precision="fp32",
              lookahead=None, **TINY)
    seen = []

    class Probe(cnnkit.callbacks.Callback):  # the bias's gradient after each step
        def on_train_batch_end(self, batch, logs=None):
            seen.append(self.model.module.whiten.bias.grad is None)

    real_build = airbench.build

    def build_with_probe(*a, **k):
        parts, steps = real_build(*a, **k)
        parts["callbacks"].append(Probe())
        return parts, steps
    monkeypatch.setattr(airbench, "build", build_with_probe)
    monkeypatch.setattr(recipes, "build", build_with_probe)
    frozen = recipes.run_recipe("fast", **kw)
    per_epoch = len(seen) // 3
    assert seen[:per_epoch] == [False] * per_epoch and all(seen[per_epoch:])
    assert frozen.model.module.whiten.bias.requires_grad  # restored when training ended

    monkeypatch.setattr(airbench.FreezeWhitenBias, "on_train_batch_begin", lambda *a, **k: None)
    seen.clear()
    lr_zero = recipes.run_recipe("fast", **kw)
    assert not any(seen)  # without the freeze every step computes the bias's gradient
    for (name, a), b in zip(frozen.model.module.state_dict().items(),
                            lr_zero.model.module.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_lookahead_runs():
    x, y = tiny_rgb()
    run = recipes.run_recipe("fast", train=(x, y), epochs=3, lookahead=(1.0, 0.9, 3.0, 2),
                             verbose=0, precision="fp32", **TINY)
    assert np.isfinite(run.history[-1]["loss"])


def test_mnist_recipe_on_grayscale_digits_and_bf16():
    x, y = tiny_rgb(size=28)
    gray = x.mean(axis=-1).astype(np.uint8)  # N×H×W
    run = recipes.run_recipe("mnist-fast", train=(gray, y), val=(gray[:16], y[:16]), epochs=1,
                             verbose=0, precision="bf16", **TINY)
    assert run.model.input_shape == (28, 28, 1)
    assert run.model.module.whiten.weight.shape == (8, 1, 2, 2)
    assert run.history[-1]["step"] == 4


def test_recipe_model_saves_and_loads(tmp_path):
    x, y = tiny_rgb()
    run = recipes.run_recipe("fast", train=(x, y), epochs=1, verbose=0, precision="fp32",
                             **TINY)
    path = run.model.save(tmp_path / "fast.cnnkit")
    loaded = cnnkit.load_model(path)
    np.testing.assert_allclose(loaded.predict(x[:4]), run.model.predict(x[:4]), atol=1e-5)
    assert loaded.preprocess.config() == run.model.preprocess.config()


def test_data_errors_are_clear():
    with pytest.raises(ValueError, match="pair"):
        recipes.run_recipe("fast", train=np.zeros((4, 32, 32, 3), np.uint8))


def test_a_checkpoint_from_before_a_field_existed_counts_it_at_its_default():
    from cnnkit.recipes import _settings_changed
    now = recipes.get("fast").resolve("cpu", measurement=AVX512_BF16).to_dict()  # no rotation
    older = {k: v for k, v in now.items() if k not in ("rotate", "zoom", "cpu_amx")}
    assert _settings_changed(older, now) == []
    rotated = {**now, "rotate": 10.0}
    assert _settings_changed(older, rotated) == ["rotate: 0.0 then, 10.0 now"]
