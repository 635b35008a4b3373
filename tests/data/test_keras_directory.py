"""image_dataset_from_directory with Keras's contract (issue 15, item 8), against the values
real Keras 3.15.1 recorded on the same tree (scripts/keras_golden/record_data.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import cnnkit
from cnnkit.preprocessing import image_dataset_from_directory
from cnnkit.utils import image_dataset_from_directory as utils_entry

from keras_tree import build_keras_tree

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "keras" / "data"
KERAS = json.loads((GOLDEN / "directory.json").read_text())
SIZE = tuple(KERAS["size"])
PIXEL_ROWS = [0, 1, 3, 5, 6]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return build_keras_tree(tmp_path_factory.mktemp("keras") / "tree")


def load(tree, **kw):
    kw.setdefault("image_size", SIZE)
    kw.setdefault("verbose", False)
    return image_dataset_from_directory(tree, **kw)


def rel(ds, root):
    return [Path(os.path.relpath(p, root)).as_posix() for p in ds.file_paths]


def test_public_entry_points():
    assert utils_entry is image_dataset_from_directory
    assert cnnkit.utils.image_dataset_from_directory is image_dataset_from_directory


def test_sorted_files_labels_and_class_names_match_keras(tree):
    ds = load(tree, shuffle=False, batch_size=8)
    want = KERAS["sorted"]
    assert rel(ds, tree) == want["file_paths"]  # nested folder after its parent, .PNG kept
    assert ds.class_names == want["class_names"] and len(ds) == want["len"]
    assert np.concatenate([y.numpy() for _, y in ds]).tolist() == want["labels"]


@pytest.mark.parametrize("seed", sorted(KERAS["shuffled"], key=int))
def test_seeded_shuffle_lists_the_files_in_keras_order(tree, seed):
    assert rel(load(tree, seed=int(seed)), tree) == KERAS["shuffled"][seed]


def test_validation_split_chooses_the_files_keras_chooses(tree):
    for case in KERAS["splits"]:
        kw = dict(seed=case["seed"], validation_split=case["validation_split"], batch_size=5)
        train = load(tree, subset="training", **kw)
        val = load(tree, subset="validation", **kw)
        both = load(tree, subset="both", **kw)
        assert isinstance(both, list) and len(both) == 2
        for ds, key in ((train, "training"), (val, "validation"), (both[0], "training"),
                        (both[1], "validation")):
            assert rel(ds, tree) == case[key], (case["seed"], case["validation_split"], key)
        assert len(train) == case["len_training"] and len(val) == case["len_validation"]
        # subset="both" leaves the validation set in file order, as Keras does
        labels = np.concatenate([y.numpy() for _, y in both[1]]).tolist()
        assert labels == case["validation_labels"]


@pytest.mark.parametrize("mode", ["int", "categorical", "binary", "None"])
def test_batches_for_each_label_mode_match_keras(tree, mode):
    want = KERAS["label_modes"][mode]
    extra = {"class_names": ["cat", "dog"]} if mode == "binary" else {}
    ds = load(tree, shuffle=False, batch_size=8, label_mode=None if mode == "None" else mode,
              **extra)
    item = next(iter(ds))
    x, y = item if isinstance(item, tuple) else (item, None)
    assert list(x.shape) == want["x"]["shape"] and str(x.dtype) == f"torch.{want['x']['dtype']}"
    assert len(ds) == want["len"] and len(ds.file_paths) == want["n_files"]
    assert ds.class_names == want["class_names"] or (mode == "None" and want["class_names"] is None)
    if want["y"] is None:
        assert y is None
    else:
        assert list(y.shape) == want["y"]["shape"]
        assert str(y.dtype) == f"torch.{want['y']['dtype']}"
        assert y.tolist() == want["y_values"]


def test_unbatched_and_default_arguments_match_keras(tree):
    x, y = next(iter(load(tree, shuffle=False, batch_size=None)))
    assert list(x.shape) == KERAS["unbatched"]["x"]["shape"] and y.dtype == torch.int32
    assert y.ndim == 0
    ds = image_dataset_from_directory(tree, shuffle=False, verbose=False)  # 256×256, 32
    x, _ = next(iter(ds))
    assert list(x.shape) == KERAS["defaults"]["x"]["shape"] and len(ds) == KERAS["defaults"]["len"]
    for interp, spec in KERAS["dtype_by_interpolation"].items():
        x, _ = next(iter(load(tree, shuffle=False, interpolation=interp)))
        assert str(x.dtype) == f"torch.{spec['dtype']}", interp  # nearest stays uint8 in TF


PIXEL_CASES = {
    "bilinear": {}, "nearest": {"interpolation": "nearest"},
    "bicubic": {"interpolation": "bicubic"}, "area": {"interpolation": "area"},
    "lanczos3": {"interpolation": "lanczos3"}, "lanczos5": {"interpolation": "lanczos5"},
    "gaussian": {"interpolation": "gaussian"},
    "mitchellcubic": {"interpolation": "mitchellcubic"}, "grayscale": {"color_mode": "grayscale"},
    "rgba": {"color_mode": "rgba"}, "crop": {"crop_to_aspect_ratio": True},
    "pad": {"pad_to_aspect_ratio": True}, "upscale": {"image_size": (40, 52)},
}


@pytest.mark.parametrize("case", sorted(PIXEL_CASES))
def test_resized_pixels_match_keras(tree, case):
    """TF resizes without antialiasing; cnnkit stores uint8, so 0.5 is the rounding (bicubic
    and lanczos overshoot 0..255 in TF; compared after clipping)."""
    want = np.clip(np.load(GOLDEN / "pixels.npz")[case], 0, 255)
    x, _ = next(iter(load(tree, shuffle=False, batch_size=8, **PIXEL_CASES[case])))
    got = x.numpy().astype(np.float32)[PIXEL_ROWS]
    tolerance = 0.5 + (0.06 if case == "bicubic" else 1e-3)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= tolerance


def test_jpeg_pixels_are_close_to_keras(shared_datasets):
    """Pillow's accurate IDCT against TensorFlow's default fast one: a documented departure."""
    z = np.load(GOLDEN / "jpeg_pixels.npz")
    root = shared_datasets / "cifar10-jpeg" / "train"
    from cnnkit.data.keras_decode import decode_files
    paths = [str(root / f) for f in z["files"]]
    for name, size in (("native", (32, 32)), ("resized", (20, 24))):
        images, keep, _ = decode_files(paths, dict(color_mode="rgb", image_size=list(size),
                                                   interpolation="bilinear",
                                                   crop_to_aspect_ratio=False,
                                                   pad_to_aspect_ratio=False), cache=False)
        diff = np.abs(images.transpose(0, 2, 3, 1).astype(np.float32) - z[name])
        assert keep.all() and diff.max() <= 4.5 and diff.mean() < 1.2, name


def test_resize_is_not_antialiased_like_tensorflow():
    """Shrinking a 1-pixel stripe pattern 4× picks pixels (TF) instead of averaging them."""
    from cnnkit.data.tf_resize import resize
    img = torch.zeros(1, 8, 8)
    img[:, :, 1::4] = 255.0  # columns 1, 5
    out = resize(img, (2, 2), "bilinear")
    # TF: sample at 1.5 and 5.5 -> halfway between column 1 (255) and 2 (0)
    assert torch.allclose(out, torch.full((1, 2, 2), 127.5))
    assert torch.allclose(resize(img, (2, 2), "area"), torch.full((1, 2, 2), 63.75))


def test_unreadable_file_is_skipped_with_a_warning(tmp_path):
    root = build_keras_tree(tmp_path / "tree")
    (root / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.warns(UserWarning, match="skipped 1 of 61"):
        ds = load(root, shuffle=False)
    assert len(ds.file_paths) == 60 and not any("broken" in p for p in ds.file_paths)


@pytest.mark.parametrize("kwargs, message", [
    (dict(validation_split=0.2, subset="training"), "needs a seed"),
    (dict(subset="training", seed=1), "go together"),
    (dict(validation_split=0.2, seed=1), "go together"),
    (dict(validation_split=1.5, subset="training", seed=1), "between 0 and 1"),
    (dict(subset="test", validation_split=0.2, seed=1), "subset must be"),
    (dict(label_mode="binary"), "exactly 2 classes"),
    (dict(label_mode="sparse"), "label_mode must be"),
    (dict(color_mode="cmyk"), "color_mode must be"),
    (dict(interpolation="cubic"), "interpolation must be"),
    (dict(crop_to_aspect_ratio=True, pad_to_aspect_ratio=True), "only one of"),
    (dict(image_size=(0, 4)), "image_size"),
    (dict(class_names=["cat", "bird"]), "not sub-folders"),
])
def test_bad_arguments_say_what_is_wrong(tree, kwargs, message):
    with pytest.raises(ValueError, match=message):
        load(tree, **kwargs)


def test_missing_folder_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load(tmp_path / "nope")


def test_reachable_as_keras_spells_it():
    import cnnkit as keras
    assert keras.preprocessing.image_dataset_from_directory is image_dataset_from_directory
    assert keras.preprocessing.image.ImageDataGenerator.__name__ == "ImageDataGenerator"


def test_explicit_labels_and_no_labels(tree):
    want = KERAS["sorted"]["file_paths"]
    n = len(want)
    ds = load(tree, labels=[i % 2 for i in range(n)], shuffle=False, batch_size=None)
    # explicit labels: files from the whole tree in sorted order, class names from the labels
    assert len(ds.file_paths) == n and ds.class_names == ["0", "1"]
    assert [int(y) for _, y in ds][:4] == [0, 1, 0, 1]
    with pytest.raises(ValueError, match="one label per file"):
        load(tree, labels=[0, 1])
    unlabelled = load(tree, labels=None, shuffle=False)
    assert isinstance(next(iter(unlabelled)), torch.Tensor) and unlabelled.class_names is None


def test_cifar10_folder_splits_into_keras_files(shared_datasets):
    """The 50,000 CIFAR-10 JPEGs: the same training and validation files as Keras for two
    seeds (the lists' hashes; listing only, nothing decoded)."""
    import hashlib
    from cnnkit.data import keras_index
    root = shared_datasets / "cifar10-jpeg" / "train"
    want = json.loads((GOLDEN / "cifar_split.json").read_text())
    paths, labels, _ = keras_index.index_directory(str(root))
    for key, case in want.items():
        seed, split = key.split("_")
        shuffled, _ = keras_index.keras_shuffle(paths, labels, int(seed))
        for subset in ("training", "validation"):
            part, _ = keras_index.training_or_validation(shuffled, None, float(split), subset)
            names = [Path(os.path.relpath(p, root)).as_posix() for p in part]
            assert len(names) == case[subset]["n"] and names[:5] == case[subset]["first"]
            assert hashlib.sha256("\n".join(names).encode()).hexdigest() == case[subset]["sha256"]


def test_every_seed_and_subset_reads_the_decoded_folder_from_the_cache(tree, monkeypatch):
    load(tree, seed=1, validation_split=0.2, subset="training", image_size=(9, 7))
    from cnnkit.data import keras_decode
    monkeypatch.setattr(keras_decode, "_decode", lambda *a: pytest.fail("decoded again"))
    for seed in (1, 2):
        train, val = load(tree, seed=seed, validation_split=0.2, subset="both", image_size=(9, 7))
        assert len(train.file_paths) + len(val.file_paths) == 60


def test_broken_link_is_skipped_with_a_warning(tmp_path):
    root = build_keras_tree(tmp_path / "tree")
    (root / "dog" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    with pytest.warns(UserWarning, match=r"gone\.png: cannot read"):
        ds = load(root, shuffle=False)
    assert len(ds.file_paths) == 60


def test_a_folder_too_big_for_memory_is_refused_up_front(tree, monkeypatch):
    from cnnkit.data import keras_decode
    monkeypatch.setattr(keras_decode, "_physical_memory", lambda: 10_000)
    with pytest.raises(MemoryError, match="smaller image_size"):
        load(tree, image_size=(64, 64), cache=False)
