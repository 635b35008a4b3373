"""Record real Keras's data behaviour for cnnkit's tests (issue 15, items 8-10).

Run with the TensorFlow venv (TensorFlow 2.21, Keras 3.15.1, CPU):

    /work/tfvenv/bin/python scripts/keras_golden/record_data.py

It builds the tree of ``tests/data/keras_tree.py`` in a temporary folder and writes
``tests/golden/keras/data/``:

- ``directory.json``: which files ``keras.utils.image_dataset_from_directory`` lists, in
  which order, for each seed / validation_split / subset; counts, ``len()``, batch
  shapes/dtypes and labels for every ``label_mode``.
- ``pixels.npz``: the first images of the tree as Keras yields them (float32) for each
  interpolation / color_mode / crop / pad option; ``jpeg_pixels.npz`` the same for a few
  of the shared CIFAR-10 JPEGs when they are present.
- ``flow.json`` + ``flow_pixels.npz``: ``ImageDataGenerator().flow_from_directory``.
- ``image_utils.npz``: ``load_img``, ``img_to_array``, ``smart_resize``, ``array_to_img``.
- ``load_data.json``: shapes and dtypes of ``keras.datasets.<name>.load_data()`` (they
  download, which this machine cannot do: taken from Keras's source and docstrings, with
  the dtype NumPy gives the arrays those loaders build).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "tests" / "golden" / "keras" / "data"
sys.path.insert(0, str(REPO / "tests" / "data"))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras_tree import build_keras_tree  # noqa: E402

SEEDS = [1, 7, 42, 123, 1337]
SPLITS = [0.1, 0.2, 0.25, 0.33, 0.5]
SIZE = (12, 16)
PIXEL_ROWS = [0, 1, 3, 5, 6]  # of the first 8 sorted files: RGB, RGB, .PNG, grey, RGBA


def rel(paths, root) -> list[str]:
    return [Path(os.path.relpath(p, root)).as_posix() for p in paths]


def ds_from(root, **kw):
    kw.setdefault("verbose", False)
    return keras.utils.image_dataset_from_directory(str(root), **kw)


def first_batch(ds):
    item = next(iter(ds))
    return item if isinstance(item, tuple) else (item, None)


def describe(t):
    return None if t is None else {"shape": list(t.shape), "dtype": t.dtype.name}


def record_directory(root: Path) -> dict:
    out = {"keras": keras.__version__, "tensorflow": tf.__version__, "size": list(SIZE)}
    ds = ds_from(root, shuffle=False, image_size=SIZE, batch_size=8)
    out["sorted"] = {"file_paths": rel(ds.file_paths, root), "class_names": ds.class_names,
                     "labels": np.concatenate([y.numpy() for _, y in ds]).tolist(),
                     "len": int(ds.cardinality())}
    out["shuffled"] = {str(s): rel(ds_from(root, seed=s, image_size=SIZE).file_paths, root)
                       for s in SEEDS}
    splits = []
    for seed in SEEDS:
        for vs in SPLITS:
            tr = ds_from(root, seed=seed, validation_split=vs, subset="training",
                         image_size=SIZE, batch_size=5)
            va = ds_from(root, seed=seed, validation_split=vs, subset="validation",
                         image_size=SIZE, batch_size=5)
            both = ds_from(root, seed=seed, validation_split=vs, subset="both",
                           image_size=SIZE, batch_size=5)
            assert both[0].file_paths == tr.file_paths and both[1].file_paths == va.file_paths
            # with subset="both" the validation set is not shuffled: its labels in order
            val_labels = np.concatenate([y.numpy() for _, y in both[1]]).tolist()
            splits.append({"seed": seed, "validation_split": vs,
                           "training": rel(tr.file_paths, root),
                           "validation": rel(va.file_paths, root),
                           "validation_labels": val_labels,
                           "len_training": int(tr.cardinality()),
                           "len_validation": int(va.cardinality())})
    out["splits"] = splits
    modes = {}
    for mode, extra in (("int", {}), ("categorical", {}), ("binary", {"class_names": ["cat", "dog"]}),
                        (None, {})):
        d = ds_from(root, shuffle=False, image_size=SIZE, batch_size=8, label_mode=mode, **extra)
        x, y = first_batch(d)
        modes[str(mode)] = {"x": describe(x), "y": describe(y),
                            "y_values": None if y is None else y.numpy().tolist(),
                            "len": int(d.cardinality()), "class_names": d.class_names,
                            "n_files": len(d.file_paths)}
    out["label_modes"] = modes
    unbatched = ds_from(root, shuffle=False, image_size=SIZE, batch_size=None)
    x, y = next(iter(unbatched))
    out["unbatched"] = {"x": describe(x), "y": describe(y), "len": int(unbatched.cardinality())}
    default = ds_from(root, shuffle=False)
    x, _ = first_batch(default)
    out["defaults"] = {"x": describe(x), "len": int(default.cardinality())}
    dtypes = {}
    for interp in ("bilinear", "nearest", "bicubic", "area", "lanczos3"):
        d = ds_from(root, shuffle=False, image_size=SIZE, interpolation=interp)
        dtypes[interp] = describe(first_batch(d)[0])
    out["dtype_by_interpolation"] = dtypes
    return out


PIXEL_CONFIGS = {
    "bilinear": {},
    "nearest": {"interpolation": "nearest"},
    "bicubic": {"interpolation": "bicubic"},
    "area": {"interpolation": "area"},
    "lanczos3": {"interpolation": "lanczos3"},
    "lanczos5": {"interpolation": "lanczos5"},
    "gaussian": {"interpolation": "gaussian"},
    "mitchellcubic": {"interpolation": "mitchellcubic"},
    "grayscale": {"color_mode": "grayscale"},
    "rgba": {"color_mode": "rgba"},
    "crop": {"crop_to_aspect_ratio": True},
    "pad": {"pad_to_aspect_ratio": True},
    "upscale": {"image_size": (40, 52)},
}


def record_pixels(root: Path) -> dict:
    arrays = {}
    for name, kw in PIXEL_CONFIGS.items():
        kw = {"image_size": SIZE, **kw}
        d = ds_from(root, shuffle=False, batch_size=8, **kw)
        x, _ = first_batch(d)
        arrays[name] = x.numpy().astype(np.float32)[PIXEL_ROWS]
    return arrays


def record_jpeg(cifar_root: Path) -> dict:
    files = sorted((cifar_root / "airplane").glob("*.jpg"))[:4] + \
        sorted((cifar_root / "cat").glob("*.jpg"))[:4]
    arrays = {"files": np.array([f.relative_to(cifar_root).as_posix() for f in files])}
    for name, size in (("native", (32, 32)), ("resized", (20, 24))):
        imgs = []
        for f in files:
            raw = tf.io.decode_image(tf.io.read_file(str(f)), channels=3, expand_animations=False)
            imgs.append(tf.image.resize(raw, size, method="bilinear").numpy())
        arrays[name] = np.stack(imgs).astype(np.float32)
    return arrays


def record_cifar_split(cifar_root: Path) -> dict:
    """Which of the 50,000 CIFAR-10 JPEGs Keras puts in each subset (hashes of the lists)."""
    import hashlib
    out = {}
    for seed, vs in ((123, 0.2), (1337, 0.1)):
        tr, va = ds_from(cifar_root, validation_split=vs, subset="both", seed=seed,
                         image_size=(32, 32))
        lists = {k: rel(d.file_paths, cifar_root) for k, d in (("training", tr), ("validation", va))}
        out[f"{seed}_{vs}"] = {
            k: {"n": len(v), "first": v[:5], "sha256": hashlib.sha256("\n".join(v).encode()).hexdigest()}
            for k, v in lists.items()} | {"len_training": int(tr.cardinality())}
    return out


def record_flow(root: Path):
    # tf.keras.preprocessing.image.ImageDataGenerator, as the tutorials import it
    ImageDataGenerator = tf.keras.preprocessing.image.ImageDataGenerator
    out, pixels = {}, {}
    for mode, extra in (("categorical", {}), ("sparse", {}), ("binary", {"classes": ["cat", "dog"]}),
                        ("input", {}), (None, {})):
        it = ImageDataGenerator().flow_from_directory(
            str(root), target_size=SIZE, batch_size=8, shuffle=False, class_mode=mode, **extra)
        item = it[0]
        x, y = item if isinstance(item, tuple) else (item, None)
        out[str(mode)] = {"filenames": [Path(f).as_posix() for f in it.filenames],
                          "classes": it.classes.tolist(), "class_indices": it.class_indices,
                          "n": it.n, "samples": it.samples, "len": len(it),
                          "x": {"shape": list(x.shape), "dtype": x.dtype.name},
                          "y": None if y is None else {"shape": list(y.shape), "dtype": y.dtype.name},
                          "y_values": None if y is None or mode == "input" else y.tolist(),
                          "image_shape": list(it.image_shape)}
        if mode == "categorical":
            pixels["nearest"] = x.astype(np.float32)[PIXEL_ROWS]
    it = ImageDataGenerator().flow_from_directory(str(root), target_size=SIZE, batch_size=8,
                                                  shuffle=False, interpolation="bilinear")
    pixels["bilinear"] = it[0][0].astype(np.float32)[PIXEL_ROWS]
    it = ImageDataGenerator(rescale=1 / 255).flow_from_directory(
        str(root), target_size=SIZE, batch_size=8, shuffle=False)
    pixels["rescaled"] = it[0][0].astype(np.float32)[PIXEL_ROWS]
    it = ImageDataGenerator().flow_from_directory(str(root), target_size=SIZE, batch_size=8,
                                                  shuffle=False, keep_aspect_ratio=True)
    pixels["keep_aspect_ratio"] = it[0][0].astype(np.float32)[PIXEL_ROWS]
    it = ImageDataGenerator().flow_from_directory(str(root), target_size=SIZE, batch_size=8,
                                                  shuffle=False, color_mode="grayscale")
    pixels["grayscale"] = it[0][0].astype(np.float32)[PIXEL_ROWS]
    subsets = []
    for vs in (0.2, 0.25, 0.5):
        gen = ImageDataGenerator(validation_split=vs)
        tr = gen.flow_from_directory(str(root), target_size=SIZE, subset="training", shuffle=False)
        va = gen.flow_from_directory(str(root), target_size=SIZE, subset="validation", shuffle=False)
        subsets.append({"validation_split": vs,
                        "training": [Path(f).as_posix() for f in tr.filenames],
                        "validation": [Path(f).as_posix() for f in va.filenames],
                        "len_training": len(tr), "len_validation": len(va)})
    out["subsets"] = subsets
    # A seeded, shuffled iterator: the order its first epoch of next() batches takes.
    it = ImageDataGenerator().flow_from_directory(str(root), target_size=SIZE, batch_size=16,
                                                  shuffle=True, seed=5, class_mode="sparse")
    orders = []
    for _ in range(len(it) * 2):
        _, y = next(it)
        orders.append(it.index_array.tolist())
    out["shuffled_seed5_index_arrays"] = [orders[0], orders[len(it)]]
    return out, pixels


def record_image_utils(root: Path) -> dict:
    """keras.utils.load_img / img_to_array / smart_resize / array_to_img on one tree file."""
    path = str(root / "cat" / "cat_01.png")
    out = {}
    img = keras.utils.load_img(path, target_size=SIZE)
    out["load_img_nearest"] = keras.utils.img_to_array(img)
    img = keras.utils.load_img(path, target_size=SIZE, interpolation="bilinear",
                               keep_aspect_ratio=True)
    out["load_img_bilinear_keep"] = keras.utils.img_to_array(img)
    out["load_img_grey"] = keras.utils.img_to_array(keras.utils.load_img(path, color_mode="grayscale"))
    full = keras.utils.img_to_array(keras.utils.load_img(path))
    out["smart_resize"] = keras.preprocessing.image.smart_resize(full, SIZE)
    out["array_to_img"] = np.asarray(keras.utils.array_to_img(full * 0.5 + 10))
    return out


def record_load_data() -> dict:
    # Keras's loaders, as written in keras/src/datasets/*.py: mnist reads mnist.npz (uint8
    # arrays), fashion_mnist np.frombuffer(..., np.uint8), cifar10 fills np.empty(...,
    # "uint8") and casts the test labels to it, cifar100 reshapes the pickled label lists.
    list_labels = np.reshape([3, 1, 4], (3, 1))
    return {
        "mnist": {"x_train": [[60000, 28, 28], "uint8"], "y_train": [[60000], "uint8"],
                  "x_test": [[10000, 28, 28], "uint8"], "y_test": [[10000], "uint8"]},
        "fashion_mnist": {"x_train": [[60000, 28, 28], "uint8"], "y_train": [[60000], "uint8"],
                          "x_test": [[10000, 28, 28], "uint8"], "y_test": [[10000], "uint8"]},
        "cifar10": {"x_train": [[50000, 32, 32, 3], "uint8"], "y_train": [[50000, 1], "uint8"],
                    "x_test": [[10000, 32, 32, 3], "uint8"], "y_test": [[10000, 1], "uint8"]},
        "cifar100": {"x_train": [[50000, 32, 32, 3], "uint8"],
                     "y_train": [[50000, 1], list_labels.dtype.name],
                     "x_test": [[10000, 32, 32, 3], "uint8"],
                     "y_test": [[10000, 1], list_labels.dtype.name]},
        "keras": keras.__version__,
    }


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = build_keras_tree(Path(tmp) / "tree")
        (OUT / "directory.json").write_text(json.dumps(record_directory(root)))
        np.savez_compressed(OUT / "pixels.npz", **record_pixels(root))
        flow, flow_pixels = record_flow(root)
        (OUT / "flow.json").write_text(json.dumps(flow))
        np.savez_compressed(OUT / "flow_pixels.npz", **flow_pixels)
        np.savez_compressed(OUT / "image_utils.npz", **record_image_utils(root))
    cifar = REPO.parent / "shared" / "datasets" / "cifar10-jpeg" / "train"
    if cifar.is_dir():
        np.savez_compressed(OUT / "jpeg_pixels.npz", **record_jpeg(cifar))
        (OUT / "cifar_split.json").write_text(json.dumps(record_cifar_split(cifar), indent=1))
    (OUT / "load_data.json").write_text(json.dumps(record_load_data(), indent=1))
    print("wrote", sorted(p.name for p in OUT.iterdir()))


if __name__ == "__main__":
    main()
