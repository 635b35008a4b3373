"""ImageDataGenerator.flow_from_directory as Keras's DirectoryIterator (issue 15, item 9),
against the values Keras 3.15.1 recorded on the same tree (tests/golden/keras/data/)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import cnnkit
from cnnkit import layers
from cnnkit.preprocessing.image import ImageDataGenerator

from keras_tree import build_keras_tree

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "keras" / "data"
KERAS = json.loads((GOLDEN / "flow.json").read_text())
PIXELS = np.load(GOLDEN / "flow_pixels.npz")
SIZE = (12, 16)
PIXEL_ROWS = [0, 1, 3, 5, 6]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return build_keras_tree(tmp_path_factory.mktemp("keras") / "tree")


def flow(tree, generator=None, **kw):
    kw.setdefault("target_size", SIZE)
    kw.setdefault("batch_size", 8)
    return (generator or ImageDataGenerator()).flow_from_directory(str(tree), **kw)


def test_importable_where_keras_has_it():
    from cnnkit.preprocessing import image
    assert image.ImageDataGenerator is ImageDataGenerator


@pytest.mark.parametrize("mode", ["categorical", "sparse", "binary", "input", "None"])
def test_files_batches_and_dtypes_match_keras(tree, mode):
    want = KERAS[mode]
    extra = {"classes": ["cat", "dog"]} if mode == "binary" else {}
    it = flow(tree, shuffle=False, class_mode=None if mode == "None" else mode, **extra)
    assert it.filenames == want["filenames"] and it.classes.tolist() == want["classes"]
    assert it.class_indices == want["class_indices"] and it.n == it.samples == want["n"]
    assert len(it) == want["len"] and list(it.image_shape) == want["image_shape"]
    item = it[0]
    x, y = item if isinstance(item, tuple) else (item, None)
    assert list(x.shape) == want["x"]["shape"] and x.dtype.name == want["x"]["dtype"]
    if want["y"] is None:
        assert y is None
        return
    assert list(y.shape) == want["y"]["shape"] and y.dtype.name == want["y"]["dtype"]
    if mode == "input":
        assert np.array_equal(x, y)
    else:
        assert y.tolist() == want["y_values"]


def test_pixels_match_keras(tree):
    x, _ = flow(tree, shuffle=False)[0]
    assert np.array_equal(x[PIXEL_ROWS], PIXELS["nearest"])  # Keras's default: nearest
    x, _ = flow(tree, ImageDataGenerator(rescale=1 / 255), shuffle=False)[0]
    assert np.abs(x[PIXEL_ROWS] - PIXELS["rescaled"]).max() < 1e-6
    x, _ = flow(tree, shuffle=False, keep_aspect_ratio=True)[0]
    assert np.array_equal(x[PIXEL_ROWS], PIXELS["keep_aspect_ratio"])
    x, _ = flow(tree, shuffle=False, color_mode="grayscale")[0]
    assert np.array_equal(x[PIXEL_ROWS], PIXELS["grayscale"])
    x, _ = flow(tree, shuffle=False, interpolation="bilinear")[0]
    # Pillow's bilinear rounding moved by one level between Pillow 12 and 13 (Keras's venv)
    assert np.abs(x[PIXEL_ROWS] - PIXELS["bilinear"]).max() <= 1.0


@pytest.mark.parametrize("case", KERAS["subsets"], ids=lambda c: str(c["validation_split"]))
def test_subset_takes_each_class_first_files_for_validation(tree, case):
    gen = ImageDataGenerator(validation_split=case["validation_split"])
    train = flow(tree, gen, subset="training", shuffle=False, batch_size=32)
    val = flow(tree, gen, subset="validation", shuffle=False, batch_size=32)
    assert train.filenames == case["training"] and val.filenames == case["validation"]
    assert len(train) == case["len_training"] and len(val) == case["len_validation"]


def test_seeded_shuffle_draws_keras_order(tree):
    it = flow(tree, shuffle=True, seed=5, class_mode="sparse", batch_size=16)
    orders = []
    for _ in range(2 * len(it)):
        next(it)
        orders.append(it._order.tolist())
    want = KERAS["shuffled_seed5_index_arrays"]
    assert orders[0] == want[0] and orders[len(it)] == want[1]


def test_iteration_is_endless_with_a_short_last_batch(tree):
    it = flow(tree, shuffle=False, class_mode="sparse", batch_size=16)
    sizes = [len(x) for x, _ in itertools.islice(it, 2 * len(it))]
    assert len(it) == 4 and sizes == [16, 16, 16, 12] * 2


def _model():
    torch.manual_seed(0)
    model = cnnkit.Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(*SIZE, 3)),
                               layers.Flatten(), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def test_fit_with_a_validation_flow(tree):
    """Crashed before: the validation flow was unpacked as an (x, y) pair."""
    gen = ImageDataGenerator(rescale=1 / 255, horizontal_flip=True, validation_split=0.25)
    train = flow(tree, gen, subset="training", seed=1)
    val = flow(tree, gen, subset="validation", shuffle=False)
    model = _model()
    hist = model.fit(train, validation_data=val, epochs=2, verbose=0)
    assert len(hist.history["val_loss"]) == 2 and model.class_names == ["cat", "dog", "fish"]
    logs = model.evaluate(val, verbose=0, return_dict=True)
    assert np.isclose(logs["loss"], hist.history["val_loss"][-1], atol=1e-6)
    probs = model.predict(val)
    assert probs.shape == (val.samples, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_flow_of_arrays_as_validation_data():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (20, *SIZE, 3), dtype=np.uint8)
    y = np.eye(3, dtype=np.float32)[np.arange(20) % 3]
    gen = ImageDataGenerator(rescale=1 / 255)
    hist = _model().fit(gen.flow(x, y, batch_size=5), validation_data=gen.flow(x, y),
                        epochs=1, verbose=0)
    assert "val_accuracy" in hist.history


def test_class_mode_input_and_none_are_refused_by_fit(tree):
    with pytest.raises(NotImplementedError, match="class_mode='input'"):
        _model().fit(flow(tree, class_mode="input"), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="needs labels"):
        _model().fit(flow(tree, class_mode=None), epochs=1, verbose=0)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(class_mode="multi"), ValueError, "class_mode must be"),
    (dict(subset="training"), ValueError, "validation_split"),
    (dict(class_mode="binary"), ValueError, "exactly 2 classes"),
    (dict(color_mode="hsv"), ValueError, "color_mode"),
    (dict(classes=["cat", "cow"]), ValueError, "not sub-folders"),
])
def test_bad_arguments_say_what_is_wrong(tree, kwargs, error, message):
    with pytest.raises(error, match=message):
        flow(tree, **kwargs)


def test_second_subset_reads_the_decoded_folder_from_the_cache(tree, monkeypatch):
    gen = ImageDataGenerator(validation_split=0.25)
    flow(tree, gen, subset="training", target_size=(9, 7))
    from cnnkit.data import keras_decode
    monkeypatch.setattr(keras_decode, "_decode", lambda *a: pytest.fail("decoded again"))
    val = flow(tree, gen, subset="validation", target_size=(9, 7))
    train = flow(tree, gen, subset="training", target_size=(9, 7))
    assert val.samples + train.samples == 60
