"""Per-layer precision policy (Keras ``dtype=``): float32 islands in a bf16 model and back."""

import numpy as np
import pytest
import torch

from cnnkit import Sequential, layers
from cnnkit import load_model


def small_model(first_dtype=None, last_dtype=None):
    return Sequential([
        layers.Input((8, 8, 3)),
        layers.Conv2D(4, 3, activation="relu", dtype=first_dtype),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(3, activation="softmax", dtype=last_dtype),
    ])


def test_float32_layer_stays_float32_under_bf16_autocast():
    x = torch.rand(2, 3)
    default, full = layers.Dense(4, input_shape=(3,)), layers.Dense(4, input_shape=(3,), dtype="float32")
    default.build((3,))
    full.build((3,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert default(x).dtype == torch.bfloat16
        assert full(x).dtype == torch.float32
        assert full(x.bfloat16()).dtype == torch.float32  # a bf16 input is widened first


def test_mixed_layer_computes_in_bf16_inside_an_fp32_model():
    conv = layers.Conv2D(4, 3, dtype="mixed_bfloat16")
    conv.build((3, 8, 8))
    out = conv(torch.rand(1, 3, 8, 8))
    assert out.dtype == torch.bfloat16
    assert conv.conv.weight.dtype == torch.float32  # weights stay float32


def test_fused_conv_pool_and_logits_paths_follow_the_policy():
    model = small_model(first_dtype="float32", last_dtype="float32")
    x = torch.rand(2, 3, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        # conv+relu+pool run fused (pool before relu); the conv must still be float32
        pooled = model._run(list(model.layers)[:2], x)
        logits = model.forward_logits(x)
    assert pooled.dtype == torch.float32
    assert logits.dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert small_model().forward_logits(x).dtype == torch.bfloat16


def test_policy_is_saved_and_trains_in_a_bf16_model(tmp_path):
    model = small_model(first_dtype="fp32", last_dtype=torch.float32)
    assert [getattr(layer, "dtype_policy", None) for layer in model.layers] == \
        ["float32", None, None, "float32"]
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], precision="bf16")
    x = np.random.default_rng(0).integers(0, 255, (16, 8, 8, 3), dtype=np.uint8)
    y = np.arange(16) % 3
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    model.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert again.layers[0].dtype_policy == "float32" and again.layers[3].dtype_policy == "float32"
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_unknown_policy_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="mixed_bfloat16"):
        layers.Dense(3, dtype="int8")
