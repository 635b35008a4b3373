"""Keras files both ways: golden files written by real Keras 3.15 / Keras 2.21
(scripts/keras_golden/keras_files.py) load with Keras's outputs; cnnkit writes .keras files
laid out as Keras writes them. No TensorFlow needed (the slow test at the end uses it where
/work/tfvenv exists)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("h5py")

import cnnkit  # noqa: E402
from cnnkit import layers  # noqa: E402
from cnnkit.models.keras_io import KerasFileError  # noqa: E402
from cnnkit.models.keras_io.graph import parse_model_config  # noqa: E402

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "keras" / "files"
TF_PYTHON = Path(os.environ.get("CNNKIT_TF_PYTHON", "/work/tfvenv/bin/python"))


def nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2)


def outputs(model, x: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(nchw(x)).numpy()


def golden(name: str):
    data = np.load(GOLDEN / f"{name}.npz")
    return data["x"], data["y"]


@pytest.mark.parametrize("file, expected", [
    # Rescaling, RandomFlip, conv same + strides, BN, both poolings, Flatten -> Dense
    ("seq_cnn.keras", "seq_cnn"),
    ("gap_cnn.keras", "gap_cnn"),  # no-bias conv, BN momentum/epsilon, ReLU, dilation, GAP head
    ("gap_cnn_legacy.h5", "gap_cnn_legacy"),  # the same model in the HDF5 layout
    ("keras2_cnn.h5", "keras2_cnn"),  # written by Keras 2 (tf_keras 2.21) itself
    ("flatten_bn.keras", "flatten_bn"),  # BatchNorm on flattened features
    ("nested.keras", "nested"),  # a data_augmentation Sequential as the first layer
    ("functional_chain.keras", "functional_chain"),  # a straight-line functional model
])
def test_keras_file_gives_keras_outputs(file, expected):
    model = cnnkit.load_model(GOLDEN / file)
    x, y = golden(expected)
    np.testing.assert_allclose(outputs(model, x), y, atol=1e-5, rtol=0)


FLATTENS = {"channels_first": lambda self, t: t.flatten(1),  # NCHW's own order
            "channels_last": lambda self, t: t.permute(0, 2, 3, 1).flatten(1)}  # Keras's order


def test_flatten_order_is_asked_of_the_layer(monkeypatch, tmp_path):
    """Whichever order cnnkit's Flatten flattens in, a Keras file loads with Keras's outputs
    and saves back to one (the Dense rows are permuted only where the orders differ)."""
    x, y = golden("flatten_bn")
    kernels = {}
    for order, forward in FLATTENS.items():
        monkeypatch.setattr(layers.Flatten, "forward", forward)
        model = cnnkit.load_model(GOLDEN / "flatten_bn.keras")
        np.testing.assert_allclose(outputs(model, x), y, atol=1e-5, rtol=0)
        kernels[order] = model.layers[-1].linear.weight.detach().clone()
        model.save(tmp_path / f"{order}.keras")
        np.testing.assert_allclose(outputs(cnnkit.load_model(tmp_path / f"{order}.keras"), x), y,
                                   atol=1e-5, rtol=0)
    assert not torch.equal(kernels["channels_first"], kernels["channels_last"])


def test_newer_layers_convert_through_their_keras_weights(tmp_path):
    """Layers with no entry in the table convert through their own Keras-layout
    get_weights / set_weights, both ways."""
    x, y = golden("new_layers")
    model = cnnkit.load_model(GOLDEN / "new_layers.keras")
    np.testing.assert_allclose(outputs(model, x), y, atol=2e-5, rtol=0)
    model.save(tmp_path / "again.keras")
    np.testing.assert_allclose(outputs(cnnkit.load_model(tmp_path / "again.keras"), x), y, atol=2e-5, rtol=0)


def test_image_classification_from_scratch_network_gives_keras_outputs():
    x, y = golden("xception_mini")  # SeparableConv2D, residual add, GlobalAveragePooling2D
    np.testing.assert_allclose(outputs(cnnkit.load_model(GOLDEN / "xception_mini.keras"), x), y,
                               atol=1e-5, rtol=0)


def test_regularizers_and_constraints_in_the_file_are_kept_or_named(tmp_path):
    """Kept by layers that take Keras's weight arguments (the penalty is Keras's, and the
    written file carries them again); otherwise one warning names each one dropped. The
    outputs are Keras's either way."""
    x, y = golden("regularized")
    penalty = float(np.load(GOLDEN / "regularized.npz")["penalty"])
    if "kernel" in getattr(layers.Conv2D, "weight_options", ()):
        model = cnnkit.load_model(GOLDEN / "regularized.keras")
        assert sum(float(loss.detach()) for loss in model.layers[0].losses) == pytest.approx(penalty, rel=1e-5)
        model.save(tmp_path / "again.keras")
        with zipfile.ZipFile(tmp_path / "again.keras") as archive:
            written = json.loads(archive.read("config.json"))["config"]["layers"]
        assert written[1]["config"]["kernel_regularizer"]["class_name"] == "L2"
        assert written[3]["config"]["kernel_constraint"]["module"] == "keras.constraints"
    else:
        with pytest.warns(UserWarning) as caught:
            model = cnnkit.load_model(GOLDEN / "regularized.keras")
        msg = " ".join(str(w.message) for w in caught)
        assert ".kernel_regularizer" in msg and ".kernel_constraint" in msg
    np.testing.assert_allclose(outputs(model, x), y, atol=1e-5, rtol=0)


def test_loaded_model_keeps_keras_names_and_compiles_as_saved():
    model = cnnkit.load_model(GOLDEN / "seq_cnn.keras")
    assert [layer.name for layer in model.layers][:4] == ["rescaling", "random_flip", "conv2d",
                                                          "batch_normalization"]
    assert model.compiled and model.compile_config["loss"] == "sparse_categorical_crossentropy"
    assert model.preprocess.scale == 1.0  # starts with Rescaling: raw pixels in, as in Keras
    x, y = golden("seq_cnn")
    np.testing.assert_allclose(model.predict(x), y, atol=1e-5, rtol=0)  # NHWC numpy, softmax head


def test_nested_sequential_is_inlined_in_order():
    model = cnnkit.load_model(GOLDEN / "nested.keras")
    assert [type(layer).__name__ for layer in model.layers] == [
        "RandomFlip", "RandomRotation", "RandomZoom", "Conv2D", "GlobalMaxPooling2D", "Dense"]


def test_load_weights_from_keras3_weights_file():
    model = cnnkit.load_model(GOLDEN / "seq_cnn.keras")
    x, y_other = golden("seq_cnn_other")
    before = outputs(model, x)
    model.load_weights(GOLDEN / "seq_cnn_other.weights.h5")
    after = outputs(model, x)
    assert np.abs(before - y_other).max() > 1e-3  # the file really changed the weights
    np.testing.assert_allclose(after, y_other, atol=1e-5, rtol=0)


@pytest.mark.parametrize("model_file, weights_file, case", [
    ("gap_cnn.keras", "gap_cnn.keras", "gap_cnn"),  # a whole .keras file as the weights
    ("keras2_cnn.h5", "keras2_cnn_weights.h5", "keras2_cnn"),  # Keras 2: layers matched in order
])
def test_load_weights_into_zeroed_model_gives_keras_outputs(model_file, weights_file, case):
    model = cnnkit.load_model(GOLDEN / model_file)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    model.load_weights(GOLDEN / weights_file)
    x, y = golden(case)
    np.testing.assert_allclose(outputs(model, x), y, atol=1e-5, rtol=0)


def test_load_weights_into_a_model_built_in_cnnkit():
    """The Keras code rebuilt in cnnkit (other layer names) takes the Keras weights file."""
    model = cnnkit.Sequential([
        layers.Input((12, 12, 3)), layers.Rescaling(1 / 255.0), layers.RandomFlip("horizontal"),
        layers.Conv2D(6, 3, strides=2, padding="same", activation="relu"),
        layers.BatchNormalization(), layers.MaxPooling2D(padding="same"),
        layers.Conv2D(5, 2), layers.Activation("tanh"),
        layers.AveragePooling2D(pool_size=2, strides=1, padding="same"), layers.Flatten(),
        layers.Dropout(0.3), layers.Dense(7, activation="relu"),
        layers.Dense(4, activation="softmax", name="my_head")])
    model.load_weights(GOLDEN / "seq_cnn_other.weights.h5")
    x, y = golden("seq_cnn_other")
    np.testing.assert_allclose(outputs(model, x), y, atol=1e-5, rtol=0)


def test_weights_for_another_architecture_are_refused_in_one_line():
    model = cnnkit.Sequential([layers.Input((12, 12, 3)), layers.Conv2D(6, 3), layers.Flatten(),
                               layers.Dense(4)])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(KerasFileError) as err:
        model.load_weights(GOLDEN / "seq_cnn_other.weights.h5")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # left as it was
    msg = str(err.value)
    assert "\n" not in msg and "'dense' (Dense): Dense kernel has shape (20, 7)" in msg
    assert "layers the model lacks (batch_normalization, conv2d_1, dense_1)" in msg


def test_lambda_layer_is_refused_not_run():
    with pytest.raises(KerasFileError) as err:
        cnnkit.load_model(GOLDEN / "lambda.keras")
    msg = str(err.value)
    assert "\n" not in msg and "'lambda' (Lambda" in msg and "refuses to run" in msg


def test_all_unconvertible_layers_are_named_in_one_line():
    with pytest.raises(KerasFileError) as err:
        cnnkit.load_model(GOLDEN / "unknown.keras")
    msg = str(err.value)
    assert "\n" not in msg and "2 layer(s)" in msg
    assert "'gaussian_noise' (GaussianNoise" in msg
    assert "'activity_regularization' (ActivityRegularization" in msg


def test_custom_layer_classes_are_refused_even_under_a_keras_name():
    with pytest.raises(KerasFileError) as err:
        cnnkit.load_model(GOLDEN / "custom.keras")
    msg = str(err.value)
    assert "\n" not in msg and "2 layer(s)" in msg and "(mine>Scale: a custom layer class" in msg
    assert "(Dense: a custom layer class" in msg  # a user's Dense is not Keras's Dense


def test_branching_functional_model_parses_to_a_graph():
    with zipfile.ZipFile(GOLDEN / "residual.keras") as archive:
        config = json.loads(archive.read("config.json"))
    graph = parse_model_config(config, "residual.keras")
    assert graph.chain() is None
    name = {spec.class_name: spec.name for spec in graph.layers.values()}  # Keras counts per session
    calls = {call.layer: call.inputs for call in graph.calls}
    input_ref = graph.inputs[0][0]
    assert calls[name["Add"]] == [input_ref, (name["Conv2D"], 0, 0)]
    assert graph.outputs == [(name["Dense"], 0, 0)] and graph.inputs[0][1] == (6, 6, 2)
    assert graph.layers[name["Conv2D"]].path == ("conv2d",)  # where Keras 3 keeps its weights


def test_branching_functional_models_give_keras_outputs():
    x, y = golden("residual")
    np.testing.assert_allclose(outputs(cnnkit.load_model(GOLDEN / "residual.keras"), x), y, atol=1e-5, rtol=0)
    data = np.load(GOLDEN / "two_inputs.npz")  # two inputs, a shared Conv2D, Concatenate, two heads
    model = cnnkit.load_model(GOLDEN / "two_inputs.keras").eval()
    with torch.no_grad():
        got = model([nchw(data["x0"]), nchw(data["x1"])])
    for i, out in enumerate(got):
        np.testing.assert_allclose(out.numpy(), data[f"y{i}"], atol=1e-5, rtol=0)


def test_keras2_functional_file_parses_to_a_graph():
    """Keras 2 spells a call as [[layer, node, tensor, kwargs], ...]: the same graph comes out."""
    import h5py
    with h5py.File(GOLDEN / "keras2_residual.h5") as f:
        config = json.loads(f.attrs["model_config"])
    graph = parse_model_config(config, "keras2_residual.h5")
    name = {spec.class_name: spec.name for spec in graph.layers.values()}
    add = next(call for call in graph.calls if call.layer == name["Add"])
    assert add.as_list and add.inputs == [graph.inputs[0][0], (name["Conv2D"], 0, 0)]
    assert graph.layers[name["Conv2D"]].legacy_path == (name["Conv2D"],)


def test_keras2_functional_file_gives_keras_outputs():
    x, y = golden("keras2_residual")
    np.testing.assert_allclose(outputs(cnnkit.load_model(GOLDEN / "keras2_residual.h5"), x), y,
                               atol=1e-5, rtol=0)


def test_functional_model_weights_round_trip_through_weights_h5(tmp_path):
    model = cnnkit.load_model(GOLDEN / "two_inputs.keras").eval()
    model.save_weights(tmp_path / "w.weights.h5")
    other = cnnkit.load_model(GOLDEN / "two_inputs.keras").eval()
    with torch.no_grad():
        for p in other.parameters():
            p.zero_()
    other.load_weights(tmp_path / "w.weights.h5")
    data = np.load(GOLDEN / "two_inputs.npz")
    with torch.no_grad():
        got = other([nchw(data["x0"]), nchw(data["x1"])])
    for i, out in enumerate(got):
        np.testing.assert_allclose(out.numpy(), data[f"y{i}"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("damage, expected", [
    (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "not a zip|corrupt"),
    (lambda p: p.write_bytes(b"hello, not a model"), "not a zip"),
    ("drop_weights", "no model.weights.h5"),
    ("drop_config", "no config.json"),
])
def test_damaged_keras_file_gives_one_clear_line(tmp_path, damage, expected):
    path = tmp_path / "model.keras"
    shutil.copy(GOLDEN / "gap_cnn.keras", path)
    if isinstance(damage, str):
        keep = "config.json" if damage == "drop_weights" else "model.weights.h5"
        with zipfile.ZipFile(GOLDEN / "gap_cnn.keras") as src, zipfile.ZipFile(path, "w") as dst:
            dst.writestr(keep, src.read(keep))
    else:
        damage(path)
    with pytest.raises(KerasFileError, match=expected) as err:
        cnnkit.load_model(path)
    assert "\n" not in str(err.value)


def test_weights_file_linking_to_other_files_is_refused(tmp_path):
    """An HDF5 link or external dataset would read data from elsewhere on disk: refused."""
    import h5py
    secret = tmp_path / "elsewhere.h5"
    with h5py.File(secret, "w") as f:
        f["data"] = np.ones((3, 3, 3, 6), dtype="float32")
    with h5py.File(tmp_path / "linked.weights.h5", "w") as f:
        f["layers/conv2d/vars/0"] = h5py.ExternalLink(str(secret), "data")
        f["layers/conv2d/vars/1"] = np.zeros(6, dtype="float32")
    model = cnnkit.Sequential([layers.Input((12, 12, 3)), layers.Conv2D(6, 3)])
    with pytest.raises(KerasFileError, match="link or refers to data outside the file"):
        model.load_weights(tmp_path / "linked.weights.h5")


def test_malformed_config_is_one_clear_line(tmp_path):
    path = tmp_path / "odd.keras"
    with zipfile.ZipFile(GOLDEN / "gap_cnn.keras") as src, zipfile.ZipFile(path, "w") as dst:
        dst.writestr("config.json", json.dumps({"class_name": "Functional", "config": {
            "layers": [{"class_name": "Dense", "config": 5, "inbound_nodes": [7]}]}}))
        dst.writestr("model.weights.h5", src.read("model.weights.h5"))
    with pytest.raises(KerasFileError, match="malformed|corrupt") as err:
        cnnkit.load_model(path)
    assert "\n" not in str(err.value)


def test_old_keras_sequential_config_as_a_bare_list_parses():
    """Keras 2.2 and older wrote a Sequential's config as the list of its layers."""
    config = {"class_name": "Sequential", "config": [
        {"class_name": "Conv2D", "config": {"name": "conv2d_1", "batch_input_shape": [None, 8, 8, 1],
                                            "filters": 2, "kernel_size": [3, 3]}},
        {"class_name": "Flatten", "config": {"name": "flatten_1"}}]}
    graph = parse_model_config(config, "old.h5")
    assert [spec.name for spec in graph.chain()] == ["conv2d_1", "flatten_1"]
    assert graph.inputs[0][1] == (8, 8, 1)


def test_variable_input_size_is_refused_in_one_line():
    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, None, None, 3]}},
        {"class_name": "GlobalAveragePooling2D", "config": {"name": "gap"}}]}}
    with pytest.raises(KerasFileError, match="variable size"):
        parse_model_config(config, "variable.keras")


def test_weights_only_h5_given_to_load_model_says_use_load_weights():
    with pytest.raises(KerasFileError, match="load_weights"):
        cnnkit.load_model(GOLDEN / "keras2_cnn_weights.h5")


# -- writing -------------------------------------------------------------------------------
def _strip_ids(obj):
    if isinstance(obj, dict):
        return {k: _strip_ids(v) for k, v in obj.items() if k != "shared_object_id"}
    if isinstance(obj, list):
        return [_strip_ids(v) for v in obj]
    return obj


def assert_same_keras_file(keras_file: Path, ours: Path, tmp_path: Path) -> None:
    """Our file holds what Keras's holds: the same model config and the same weight arrays
    at the same h5 paths (Keras's per-session InputLayer name and ids aside)."""
    import h5py
    with zipfile.ZipFile(keras_file) as a, zipfile.ZipFile(ours) as b:
        assert set(b.namelist()) == {"metadata.json", "config.json", "model.weights.h5"}
        theirs, mine = (_strip_ids(json.loads(z.read("config.json"))) for z in (a, b))
        (tmp_path / "keras.h5").write_bytes(a.read("model.weights.h5"))
        (tmp_path / "ours.h5").write_bytes(b.read("model.weights.h5"))
    if theirs["class_name"] == "Sequential":
        theirs["config"]["layers"][0]["config"]["name"] = "input_layer"  # Keras counts per session
    assert mine["config"] == theirs["config"]
    assert mine["build_config"] == theirs["build_config"]

    def datasets(path):
        found = {}
        with h5py.File(path) as f:
            f.visititems(lambda k, v: found.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) else None)
        return {k: v for k, v in found.items() if not k.startswith("optimizer")}
    ours_arrays, keras_arrays = datasets(tmp_path / "ours.h5"), datasets(tmp_path / "keras.h5")
    assert ours_arrays.keys() == keras_arrays.keys()
    for key in ours_arrays:
        np.testing.assert_array_equal(ours_arrays[key], keras_arrays[key])


@pytest.mark.parametrize("name", ["seq_cnn", "gap_cnn", "flatten_bn"])
def test_written_keras_file_has_keras_layout(tmp_path, name):
    """Loaded from Keras's file and written back: the same layer configs and h5 paths."""
    cnnkit.load_model(GOLDEN / f"{name}.keras").save(tmp_path / "out.keras")
    assert_same_keras_file(GOLDEN / f"{name}.keras", tmp_path / "out.keras", tmp_path)


@pytest.mark.parametrize("name", ["two_inputs", "residual"])
def test_written_functional_file_has_keras_layout(tmp_path, name):
    cnnkit.load_model(GOLDEN / f"{name}.keras").save(tmp_path / "out.keras")
    assert_same_keras_file(GOLDEN / f"{name}.keras", tmp_path / "out.keras", tmp_path)


def test_legacy_h5_written_as_keras_3_writes_it(tmp_path):
    """model.save('x.h5'), the older tutorials' spelling: Keras 3's legacy HDF5 layout."""
    import h5py
    model = cnnkit.load_model(GOLDEN / "gap_cnn.keras")
    model.save(tmp_path / "out.h5")
    x, y = golden("gap_cnn")
    np.testing.assert_allclose(outputs(cnnkit.load_model(tmp_path / "out.h5"), x), y, atol=1e-5, rtol=0)

    def contents(path):
        with h5py.File(path) as f:
            config = _strip_ids(json.loads(f.attrs["model_config"]))
            config["config"]["layers"][0]["config"]["name"] = "input_layer"  # Keras counts per session
            group = f["model_weights"]
            names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["layer_names"]]
            arrays = {}
            group.visititems(lambda k, v: arrays.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) else None)
            return config, names, arrays, f.attrs["backend"]
    ours, keras_ = contents(tmp_path / "out.h5"), contents(GOLDEN / "gap_cnn_legacy.h5")
    assert ours[0] == keras_[0] and ours[1] == keras_[1] and ours[3] == keras_[3]
    assert ours[2].keys() == keras_[2].keys()
    for key in ours[2]:
        np.testing.assert_array_equal(ours[2][key], keras_[2][key])


def _trained_cnnkit_model():
    torch.manual_seed(0)
    model = cnnkit.Sequential([
        layers.Input((10, 10, 3)), layers.Conv2D(4, 3, padding="same", activation="relu"),
        layers.BatchNormalization(), layers.MaxPooling2D(), layers.Flatten(), layers.Dropout(0.2),
        layers.Dense(3, activation="softmax")], name="mine")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).uniform(size=(16, 10, 10, 3)).astype("float32")
    model.fit(x, np.arange(16) % 3, epochs=2, batch_size=8, verbose=0)
    return model.eval(), x


def test_cnnkit_model_saved_as_keras_loads_back_with_same_outputs(tmp_path):
    model, x = _trained_cnnkit_model()
    model.save(tmp_path / "mine.keras")
    again = cnnkit.load_model(tmp_path / "mine.keras")
    np.testing.assert_allclose(outputs(again, x), outputs(model, x), atol=1e-6, rtol=0)
    assert again.compiled and again.compile_config["optimizer"] == "adam"
    model.save_weights(tmp_path / "mine.weights.h5")
    again.load_weights(tmp_path / "mine.weights.h5")
    np.testing.assert_allclose(outputs(again, x), outputs(model, x), atol=1e-6, rtol=0)


def test_models_keras_cannot_hold_are_refused_in_one_line(tmp_path):
    model = cnnkit.Model(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2)),
                         input_shape=(2, 2, 3))
    with pytest.raises(KerasFileError, match="model.save\\('folder'\\)"):
        model.save(tmp_path / "plain.keras")
    seq = cnnkit.Sequential([layers.Input((4, 4, 3)), layers.Flatten(), layers.Dense(2)])
    seq.preprocess = seq.preprocess.from_config({"scale": 1 / 255, "mean": [0.5] * 3, "std": [0.2] * 3})
    with pytest.raises(KerasFileError, match="mean, std"):
        seq.save(tmp_path / "norm.keras")
    with pytest.raises(KerasFileError, match="mean, std"):
        seq.save(tmp_path / "x.h5")
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_folder_save_keeps_cnnkit_format(tmp_path):
    model, x = _trained_cnnkit_model()
    model.save(tmp_path / "folder")
    assert (tmp_path / "folder" / "model.safetensors").is_file()
    again = cnnkit.load_model(tmp_path / "folder")
    np.testing.assert_allclose(outputs(again, x), outputs(model, x), atol=1e-6)


@pytest.mark.slow
def test_real_keras_loads_cnnkit_file_with_same_outputs(tmp_path):
    """The save direction checked by Keras itself (skipped without the TensorFlow venv)."""
    if not TF_PYTHON.is_file():
        pytest.skip(f"no TensorFlow interpreter at {TF_PYTHON}")
    model, x = _trained_cnnkit_model()
    model.save(tmp_path / "mine.keras")
    model.save(tmp_path / "mine_h5.h5")
    seq = cnnkit.load_model(GOLDEN / "seq_cnn.keras")
    seq.save(tmp_path / "seq.keras")
    xs, _ = golden("seq_cnn")
    names = ["mine", "seq", "mine_h5"]
    arrays = dict(x_mine=x, y_mine=outputs(model, x), x_seq=xs, y_seq=outputs(seq, xs),
                  x_mine_h5=x, y_mine_h5=outputs(model, x))
    newer = cnnkit.load_model(GOLDEN / "new_layers.keras")
    newer.save(tmp_path / "newer.keras")
    xn, _ = golden("new_layers")
    names.append("newer")
    arrays.update(x_newer=xn, y_newer=outputs(newer, xn))
    graph = cnnkit.load_model(GOLDEN / "residual.keras")
    graph.save(tmp_path / "graph.keras")
    xg, _ = golden("residual")
    names.append("graph")
    arrays.update(x_graph=xg, y_graph=outputs(graph, xg))
    np.savez(tmp_path / "io.npz", **arrays)
    script = (
        "import os, sys, numpy as np\n"
        "os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'\n"
        "import keras\n"
        "d = np.load(sys.argv[1] + '/io.npz')\n"
        "for name in sys.argv[2:]:\n"
        "    suffix = '.h5' if name.endswith('_h5') else '.keras'\n"
        "    m = keras.saving.load_model(sys.argv[1] + f'/{name}{suffix}')\n"
        "    print(name, float(np.abs(m.predict(d['x_' + name], verbose=0) - d['y_' + name]).max()))\n")
    run = subprocess.run([str(TF_PYTHON), "-c", script, str(tmp_path), *names], capture_output=True,
                         text=True, timeout=300)
    if run.returncode != 0 and "No module named" in run.stderr:
        pytest.skip("tensorflow/keras not installed in the TensorFlow venv")
    assert run.returncode == 0, run.stderr[-2000:]
    diffs = dict(line.split() for line in run.stdout.strip().splitlines())
    assert sorted(diffs) == sorted(names) and all(float(d) < 1e-5 for d in diffs.values()), diffs


def test_cli_opens_keras_files(capsys):
    from cnnkit.cli import main
    assert main(["summary", str(GOLDEN / "seq_cnn.keras")]) == 0
    assert "batch_normalization" in capsys.readouterr().out
    assert main(["summary", str(GOLDEN / "lambda.keras")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Lambda" in err
