"""``run_layer_test``: the checks every cnnkit layer passes, in the spirit of Keras's
``run_layer_test`` (also usable on your own layers).

Shapes and arrays are in Keras's terms (channels-last, no batch axis in shapes).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

__all__ = ["run_layer_test"]


def _to_torch(x: np.ndarray) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x, dtype=np.float32))
    return t.permute(0, 3, 1, 2).contiguous() if t.ndim == 4 else t


def _to_keras(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    return (t.permute(0, 2, 3, 1) if t.ndim == 4 else t).numpy()


def run_layer_test(layer_cls, kwargs: dict, input_shape, expected_output_shape, golden=None, *,
                   expected_num_weights: int | None = None, input_data=None, atol: float = 1e-5,
                   training_step: bool = True, check_save: bool = True) -> np.ndarray:
    """Build ``layer_cls(**kwargs)`` on ``input_shape`` inside a Sequential and check it.

    - its output shape is ``expected_output_shape``, and ``compute_output_shape`` agrees with
      what a forward pass produces;
    - ``golden`` (optional dict from real Keras): ``weights`` (Keras layouts) load with
      ``set_weights`` and ``get_weights`` gives them back, ``weight_names`` are Keras's,
      ``y`` is matched to ``atol`` on input ``x`` (``keep_init``: the layer's own initial
      weights are compared to ``weights`` instead of being replaced);
    - ``get_weights`` has Keras's count (``expected_num_weights``), its sizes add up to
      ``count_params()``, and it round-trips;
    - a training step: every trainable weight gets a finite gradient, and an SGD step moves it;
    - the layer's config rebuilds an equal layer, and ``model.save`` / ``load_model`` gives
      identical outputs.

    Returns the layer's output (Keras layout) on the test input.
    """
    import cnnkit
    from cnnkit import layers

    golden = golden or {}
    layer = layer_cls(**kwargs)
    model = cnnkit.Sequential([layers.Input(tuple(input_shape)), layer])
    model.eval()
    expected = tuple(int(s) for s in expected_output_shape)
    from cnnkit.layers._layout import keras_shape_of
    declared = keras_shape_of(model.output_shapes[-1])
    assert declared == expected, f"{layer_cls.__name__}: output shape {declared}, expected {expected}"

    has_weights = hasattr(layer, "get_weights")
    if has_weights and "weights" in golden:
        if golden.get("keep_init"):
            for got, want in zip(layer.get_weights(), golden["weights"], strict=True):
                np.testing.assert_allclose(got, want, atol=atol, err_msg="initial weights")
        else:
            layer.set_weights(golden["weights"])
    if has_weights:
        weights = layer.get_weights()
        if expected_num_weights is not None:
            assert len(weights) == expected_num_weights, \
                f"{layer_cls.__name__}: {len(weights)} weights, Keras has {expected_num_weights}"
        if "weight_names" in golden:
            names = [w.name for w in layer.keras_weights()]
            assert names == list(golden["weight_names"]), f"weight names {names}"
        if "weights" in golden:
            for got, want in zip(weights, golden["weights"], strict=True):
                assert got.shape == np.shape(want), f"weight shape {got.shape} vs Keras {np.shape(want)}"
                np.testing.assert_array_equal(got, want)
        if hasattr(layer, "count_params"):  # what summary() prints: Keras's count
            assert layer.count_params() == sum(w.size for w in weights), \
                f"count_params {layer.count_params()} vs {sum(w.size for w in weights)} in get_weights"
        layer.set_weights(weights)  # round trip, no change
        for got, want in zip(layer.get_weights(), weights):
            np.testing.assert_array_equal(got, want)

    x_keras = golden.get("x", input_data)
    if x_keras is None:
        x_keras = np.random.default_rng(0).standard_normal((2, *input_shape)).astype(np.float32)
    x = _to_torch(x_keras)
    with torch.no_grad():
        out = model.call(x)
    assert tuple(out.shape[1:]) == tuple(model.output_shapes[-1]), \
        f"forward gives {tuple(out.shape[1:])}, compute_output_shape {model.output_shapes[-1]}"
    y = _to_keras(out)
    if "y" in golden:
        np.testing.assert_allclose(y, golden["y"], atol=atol, rtol=1e-5,
                                   err_msg=f"{layer_cls.__name__}{kwargs} vs Keras")

    if training_step:
        _check_training_step(model, layer, x)
    model.eval()

    if check_save and hasattr(layer, "get_config"):
        from cnnkit.layers import layer_from_config
        again = layer_from_config(type(layer).__name__, layer.get_config())
        assert again.get_config() == layer.get_config(), "config does not round-trip"
        with tempfile.TemporaryDirectory() as tmp:
            model.save(Path(tmp) / "m")
            loaded = cnnkit.load_model(Path(tmp) / "m")
        with torch.no_grad():
            assert torch.equal(loaded.call(x), model.call(x)), "outputs differ after save/load"
    return y


def _check_training_step(model, layer, x: torch.Tensor) -> None:
    trainable = [(n, p) for n, p in layer.named_parameters() if p.requires_grad]
    model.train()
    torch.manual_seed(0)
    out = model.call(x)
    target = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    loss = (out * target).sum() + sum(model.losses)  # regularization penalties, as fit adds them
    if not trainable:
        return
    loss.backward()
    before = [p.detach().clone() for _, p in trainable]
    for (name, p) in trainable:
        assert p.grad is not None, f"no gradient reaches {name}"
        assert torch.isfinite(p.grad).all(), f"non-finite gradient for {name}"
        assert p.grad.abs().sum() > 0, f"zero gradient for {name}"
    torch.optim.SGD([p for _, p in trainable], lr=0.1).step()
    for (name, p), b in zip(trainable, before):
        assert not torch.equal(p.detach(), b), f"{name} did not move in a training step"

