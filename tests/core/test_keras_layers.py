"""Every cnnkit layer against real Keras 3: same weights, same input, same output (1e-5),
Keras's weight names, layouts and count, plus run_layer_test's build / training step /
save-load checks. The values come from scripts/keras_golden/layers.py (needs TensorFlow;
the tests do not)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import cnnkit
from cnnkit import layers
from cnnkit.testing import run_layer_test

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "keras" / "layers"
SPEC = json.loads((GOLDEN / "cases.json").read_text())
ARRAYS = np.load(GOLDEN / "layers.npz")
CASES = SPEC["cases"]


def golden_for(case):
    n = len(case["weight_names"])
    y = ARRAYS[f"{case['id']}/y"]
    return {"x": ARRAYS[f"{case['id']}/x"], "y": y,
            "weights": [ARRAYS[f"{case['id']}/w{j}"] for j in range(n)],
            "weight_names": case["weight_names"], "keep_init": case["options"].get("keep_init")}


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_layer_matches_keras(case):
    run_layer_test(getattr(layers, case["class_name"]), case["kwargs"], case["input_shape"],
                   case["output_shape"], golden=golden_for(case),
                   expected_num_weights=len(case["weight_names"]))


def test_every_layer_has_a_keras_case():
    """A layer added to cnnkit.layers without a golden case fails here."""
    tested = {c["class_name"] for c in CASES} | set(AUGMENTATION) | {c["class_name"] for c in MERGE}
    exported = {name for name in layers.__all__ if isinstance(getattr(layers, name), type)
                and issubclass(getattr(layers, name), layers.Layer)}
    assert exported - tested - {"Layer", "InputLayer"} == set()


MERGE_SPEC = json.loads((GOLDEN / "merge.json").read_text())
MERGE = MERGE_SPEC["cases"]
MERGE_ARRAYS = np.load(GOLDEN / "merge.npz")


@pytest.mark.parametrize("case", MERGE, ids=[f"{c['class_name']}-{c['id']}" for c in MERGE])
def test_merge_layer_matches_keras(case):
    """Merge layers take several inputs: checked through a functional model, as Keras users
    call them (channels-last arrays in and out; Keras's axis numbering)."""
    xs = [MERGE_ARRAYS[f"{case['id']}/x{j}"] for j in range(case["inputs"])]
    inputs = [cnnkit.Input(x.shape[1:]) for x in xs]
    layer = getattr(layers, case["class_name"])(**case["kwargs"])
    model = cnnkit.Model(inputs, layer(inputs))
    got = model.predict(xs)
    assert got.shape[1:] == tuple(case["output_shape"])
    np.testing.assert_allclose(got, MERGE_ARRAYS[f"{case['id']}/y"], atol=1e-5)


AUGMENTATION = {"RandomFlip": {}, "RandomRotation": {"factor": 0.1},
                "RandomTranslation": {"height_factor": 0.1, "width_factor": 0.1},
                "RandomZoom": {"height_factor": 0.1}, "RandomContrast": {"factor": 0.2},
                "RandomBrightness": {"factor": 0.2}}


@pytest.mark.parametrize("name", sorted(AUGMENTATION))
def test_augmentation_layers_are_identity_at_inference(name):
    x = np.random.default_rng(0).uniform(0, 1, (2, 5, 5, 3)).astype(np.float32)
    run_layer_test(getattr(layers, name), AUGMENTATION[name], (5, 5, 3), (5, 5, 3),
                   golden={"x": x, "y": x})


def test_new_layers_export_to_torchscript_for_any_batch(tmp_path):
    """Traced exports must not bake in the batch size (Reshape once did)."""
    import cnnkit
    from cnnkit import export
    model = cnnkit.Sequential([
        layers.Input((8, 8, 3)), layers.SeparableConv2D(4, 3, padding="same", activation="relu"),
        layers.DepthwiseConv2D(3, padding="same"), layers.LayerNormalization(),
        layers.GroupNormalization(2), layers.Conv2DTranspose(4, 3, strides=2, padding="same"),
        layers.ZeroPadding2D(1), layers.Cropping2D(1), layers.UpSampling2D(interpolation="bilinear"),
        layers.PReLU(shared_axes=[1, 2]), layers.Permute((2, 1, 3)), layers.Reshape((-1,)),
        layers.Dense(3), layers.Softmax()])
    result = export.export(model, tmp_path / "m.pt", format="torchscript")
    assert result.max_abs_diff < 1e-4


class _LyingShape(layers.Layer):
    def compute_output_shape(self, s):
        return (s[0] + 1,)

    def forward(self, x):
        return x


class _DeadWeight(layers.Dense):
    def _build(self, s):
        super()._build(s)
        self.unused = torch.nn.Parameter(torch.ones(2))

    def keras_weights(self):
        from cnnkit.layers.keras_weights import KerasWeight
        return super().keras_weights() + [KerasWeight("unused", self.unused)]


def test_run_layer_test_catches_broken_layers():
    with pytest.raises(AssertionError, match="compute_output_shape"):
        run_layer_test(_LyingShape, {}, (3,), (4,))
    with pytest.raises(AssertionError, match="no gradient reaches unused"):
        run_layer_test(_DeadWeight, {"units": 2}, (3,), (2,), check_save=False)
    case = next(c for c in CASES if c["id"] == "conv2d")
    golden = golden_for(case)
    golden["y"] = golden["y"] + 1e-3
    with pytest.raises(AssertionError, match="vs Keras"):
        run_layer_test(layers.Conv2D, case["kwargs"], case["input_shape"], case["output_shape"],
                       golden=golden)
