"""The Dataset image_dataset_from_directory returns: the tf.data methods tutorials call,
and fit/evaluate/predict on it (the in-memory fast path, or batch by batch once mapped)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import cnnkit
from cnnkit import layers
from cnnkit.data.dataset import Dataset, TensorSource
from cnnkit.preprocessing import image_dataset_from_directory

from keras_tree import build_keras_tree


def make(n=10, batch_size=4, label_mode="int", shuffle=False, seed=0):
    images = torch.arange(n * 3 * 2 * 2, dtype=torch.int64).reshape(n, 3, 2, 2).remainder(256)
    labels = torch.arange(n) % 3
    return Dataset(images.to(torch.uint8), labels, label_mode=label_mode,
                   class_names=["a", "b", "c"], file_paths=[f"f{i}" for i in range(n)],
                   batch_size=batch_size, shuffle=shuffle, seed=seed)


def labels_of(ds):
    return [int(v) for item in ds for v in torch.atleast_1d(item[1])]


def test_iteration_gives_keras_layout_in_0_255():
    ds = make()
    x, y = next(iter(ds))
    assert x.shape == (4, 2, 2, 3) and x.dtype == torch.float32 and y.dtype == torch.int32
    assert torch.equal(x[0], ds._images[0].permute(1, 2, 0).float())
    assert len(ds) == 3 and [len(b[0]) for b in ds] == [4, 4, 2]
    first = x[0]  # the TF tutorial's np.min(first_image), np.max(first_image)
    assert np.min(first) == float(first.min()) and np.max(first) == float(first.max())
    assert np.array(first).shape == (2, 2, 3) and ["a", "b", "c"][y[1]] == "b"
    batches = list(ds.as_numpy_iterator())
    assert isinstance(batches[0][0], np.ndarray) and batches[0][0].shape == (4, 2, 2, 3)


def test_take_and_skip_slice_the_batches():
    ds = make()
    head, tail = ds.take(2), ds.skip(2)
    assert len(head) == 2 and len(tail) == 1
    assert head.file_paths == [f"f{i}" for i in range(8)] and tail.file_paths == ["f8", "f9"]
    assert labels_of(head) + labels_of(tail) == labels_of(ds)
    assert isinstance(head.eval_source(), TensorSource)  # still the fast path
    assert len(ds.take(-1)) == 3 and len(ds.skip(-1)) == 0


def test_unbatch_and_batch_change_the_element():
    ds = make()
    single = ds.unbatch()
    x, y = next(iter(single))
    assert x.shape == (2, 2, 3) and y.ndim == 0 and len(single) == 10
    again = single.batch(5)
    assert len(again) == 2 and next(iter(again))[0].shape == (5, 2, 2, 3)
    assert len(single.batch(3, drop_remainder=True)) == 3
    assert single.take(3).file_paths == ["f0", "f1", "f2"]  # take counts images unbatched
    with pytest.raises(ValueError, match="needs batches"):
        single.eval_source()


def test_shuffle_reorders_batches_each_iteration_and_keeps_the_images():
    ds = make(n=40, batch_size=4).shuffle(100, seed=1)
    first, second = labels_of(ds), labels_of(ds)
    assert sorted(first) == sorted(labels_of(make(n=40))) and first != second
    assert isinstance(ds.eval_source(), TensorSource)


def test_cache_and_prefetch_change_nothing():
    from cnnkit import data as tf_data  # the Keras docs' `from tensorflow import data as tf_data`
    ds = make()
    out = ds.cache().prefetch(buffer_size=tf_data.AUTOTUNE)
    assert labels_of(out) == labels_of(ds) and isinstance(out.eval_source(), TensorSource)


def test_map_applies_to_each_batch_and_chains():
    ds = make()
    mapped = ds.map(lambda x, y: (x / 255.0, y + 10))
    x, y = next(iter(mapped))
    assert x.max() <= 1.0 and y.tolist() == [10, 11, 12, 10]
    assert len(mapped) == 3 and mapped.is_mapped and not ds.is_mapped
    assert len(mapped.take(2)) == 2 and len(list(mapped.skip(1))) == 2
    rows = list(mapped.unbatch())
    assert len(rows) == 10 and rows[0][0].shape == (2, 2, 3)
    rebatched = list(mapped.unbatch().batch(5))
    assert [len(b[0]) for b in rebatched] == [5, 5]
    only_x = make(label_mode=None).map(lambda x: x * 0)
    assert float(next(iter(only_x)).sum()) == 0.0
    assert len(list(mapped.filter(lambda x, y: y[0] == 10))) == 1  # first labels 10, 11, 12


@pytest.mark.parametrize("mode, shape, dtype", [("categorical", (4, 3), torch.float32),
                                                ("binary", (4, 1), torch.float32)])
def test_label_modes(mode, shape, dtype):
    _, y = next(iter(make(label_mode=mode)))
    assert y.shape == shape and y.dtype == dtype


def _model(seed=0):
    torch.manual_seed(seed)
    model = cnnkit.Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(12, 16, 3)),
                               layers.Flatten(), layers.Dense(3)])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return build_keras_tree(tmp_path_factory.mktemp("keras") / "tree")


def test_fit_on_an_unmapped_dataset_trains_on_its_tensors(tree):
    """Same losses as fit on the uint8 arrays themselves: the fast path, the dataset's own
    batch size."""
    ds = image_dataset_from_directory(tree, image_size=(12, 16), batch_size=8, seed=3,
                                      verbose=False)
    a = _model().fit(ds.cache().prefetch(-1), epochs=1, verbose=0, seed=0).history["loss"]
    x = ds._images.permute(0, 2, 3, 1).numpy()
    b = _model().fit(x, ds._labels.numpy(), batch_size=8, epochs=1, verbose=0,
                     seed=0).history["loss"]
    assert a == b


def test_fit_evaluate_predict_on_a_mapped_dataset(tree):
    train, val = image_dataset_from_directory(tree, image_size=(12, 16), batch_size=8, seed=3,
                                              validation_split=0.25, subset="both",
                                              verbose=False)
    norm = layers.Rescaling(1.0 / 255)
    mapped = val.map(lambda x, y: (norm(x), y))
    model = _model()
    hist = model.fit(train.map(lambda x, y: (norm(x), y)), validation_data=mapped, epochs=2,
                     verbose=0)
    assert len(hist.history["loss"]) == 2 and "val_accuracy" in hist.history
    # the mapped batches (x / 255 float) and the fast path (uint8 scaled inside) agree
    fast, slow = model.evaluate(val, verbose=0), model.evaluate(mapped, verbose=0)
    assert np.allclose(fast, slow, atol=1e-5)
    p_fast, p_slow = model.predict(val), model.predict(mapped)
    assert p_fast.shape == (len(val.file_paths), 3) and np.allclose(p_fast, p_slow, atol=1e-5)
    assert model.class_names == ["cat", "dog", "fish"]


def test_fit_needs_labels_and_batches(tree):
    model = _model()
    unlabelled = image_dataset_from_directory(tree, image_size=(12, 16), label_mode=None,
                                              seed=1, verbose=False)
    with pytest.raises(ValueError, match="needs labels"):
        model.fit(unlabelled, epochs=1, verbose=0)
    assert model.predict(unlabelled).shape == (60, 3)
    with pytest.raises(ValueError, match="needs batches"):
        model.fit(unlabelled.unbatch(), epochs=1, verbose=0)


def test_augmentation_layers_in_map_act_on_channels_last_batches():
    """Keras's docs call RandomFlip & co. inside dataset.map, on (batch, H, W, C) batches:
    the flip mirrors the width, not the colour channels."""
    from cnnkit.data.augment_layers import RandomFlip
    images = torch.randint(0, 256, (16, 3, 6, 5), dtype=torch.uint8)  # N×C×H×W storage
    ds = Dataset(images, torch.zeros(16, dtype=torch.int64), batch_size=16)
    flip = RandomFlip("horizontal", seed=0)
    x, _ = next(iter(ds.map(lambda x, y: (flip(x), y))))
    plain = next(iter(ds))[0]
    assert x.shape == plain.shape == (16, 6, 5, 3)
    mirrored = [torch.equal(g, o.flip(1)) for g, o in zip(x, plain)]
    assert all(m or torch.equal(g, o) for m, g, o in zip(mirrored, x, plain)) and any(mirrored)
    nchw = flip(images.float())  # what a model feeds it stays N×C×H×W
    assert all(torch.equal(g, o) or torch.equal(g, o.flip(-1))
               for g, o in zip(nchw, images.float()))


@pytest.mark.parametrize("nested", [False, True])
def test_augmentation_before_rescaling_feeds_raw_pixels(nested):
    """The TF tutorial's model: [data_augmentation, Rescaling(1/255), ...] rescales itself,
    so cnnkit must not scale by 1/255 as well (it did: the model learned nothing)."""
    aug = [layers.RandomFlip("horizontal"), layers.RandomRotation(0.1)]
    head = [cnnkit.Sequential([layers.Input((8, 8, 3)), *aug])] if nested else \
        [layers.Input((8, 8, 3)), *aug]
    model = cnnkit.Sequential([*head, layers.Rescaling(1 / 255), layers.Flatten(),
                               layers.Dense(2)])
    assert model.preprocess.scale == 1.0
    plain = cnnkit.Sequential([layers.Input((8, 8, 3)), layers.Flatten(), layers.Dense(2)])
    assert plain.preprocess.scale == pytest.approx(1 / 255)


def test_fit_on_a_dataset_of_unknown_length(tree):
    ds = image_dataset_from_directory(tree, image_size=(12, 16), batch_size=8, seed=3,
                                      verbose=False)
    filtered = ds.map(lambda x, y: (x, y)).filter(lambda x, y: len(y) == 8)
    with pytest.raises(TypeError, match="unknown"):
        len(filtered)
    hist = _model().fit(filtered, epochs=1, verbose=0)
    assert len(hist.history["loss"]) == 1
