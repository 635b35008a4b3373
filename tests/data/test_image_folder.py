"""image_dataset_from_directory: layouts, decoding, the cache, splits and every bad input."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

from cnnkit.data import folder as folder_mod
from cnnkit.data.folder import (FolderLayoutError, ImageDataset, image_dataset_from_directory,
                                stratified_split)
from cnnkit.datasets import image_dataset_from_directory as public_entry


def _no_decoding(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("decoded although the cache should have been used")
    monkeypatch.setattr(folder_mod, "_decode_all", boom)


def test_loads_classes_labels_and_exact_pixels(image_folder):
    ds = image_dataset_from_directory(image_folder, shuffle=False)
    assert public_entry is image_dataset_from_directory
    assert isinstance(ds, ImageDataset) and len(ds) == 10
    assert ds.class_names == ["cat", "dog"]
    assert ds.images.dtype == torch.uint8 and ds.images.shape == (10, 3, 8, 8)
    assert ds.labels.dtype == torch.int64 and ds.labels.tolist() == [0] * 4 + [1] * 6
    assert ds.class_counts() == {"cat": 4, "dog": 6} and ds.skipped == []
    for i, path in enumerate(ds.files):  # files sorted, pixels exact (PNG is lossless)
        expected = image_folder.arrays[path].transpose(2, 0, 1)
        assert np.array_equal(ds.images[i].numpy(), expected)


def test_shuffle_mixes_classes_seeded_and_keeps_images_labels_files_aligned(image_folder):
    ordered = image_dataset_from_directory(image_folder, shuffle=False)
    mixed = image_dataset_from_directory(image_folder, seed=3)  # shuffle=True, as Keras
    assert mixed.labels.tolist() != ordered.labels.tolist()
    assert sorted(mixed.labels.tolist()) == ordered.labels.tolist()
    by_file = {f: i for i, f in enumerate(ordered.files)}
    for i, path in enumerate(mixed.files):
        j = by_file[path]
        assert torch.equal(mixed.images[i], ordered.images[j])
        assert mixed.labels[i] == ordered.labels[j]
    again = image_dataset_from_directory(image_folder, seed=3)
    assert again.files == mixed.files  # the same seed gives the same order
    other = image_dataset_from_directory(image_folder, seed=4)
    assert other.files != mixed.files


def test_cached_reload_skips_decoding_and_matches(image_folder, monkeypatch, private_cache):
    first = image_dataset_from_directory(image_folder)
    assert list((private_cache / "folders").glob("*.npy"))
    _no_decoding(monkeypatch)
    again = image_dataset_from_directory(image_folder)
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    assert again.files == first.files


def test_cache_is_rebuilt_when_the_folder_changes(image_folder, write_image, private_cache):
    image_dataset_from_directory(image_folder)
    write_image(image_folder / "cat" / "new.png", seed=77)
    ds = image_dataset_from_directory(image_folder)
    assert len(ds) == 11
    p = image_folder / "dog" / "00.png"
    st = p.stat()
    write_image(p, seed=78)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    ds2 = image_dataset_from_directory(image_folder)
    assert not torch.equal(ds.images, ds2.images)
    # old versions of the same folder+options are removed: one entry remains
    assert len(list((private_cache / "folders").glob("*.json"))) == 1


def test_cache_can_be_turned_off_and_options_key_the_cache(image_folder, private_cache):
    image_dataset_from_directory(image_folder, cache=False)
    assert not (private_cache / "folders").exists()
    a = image_dataset_from_directory(image_folder, image_size=(4, 4))
    b = image_dataset_from_directory(image_folder, image_size=(6, 5))
    assert a.images.shape[-2:] == (4, 4) and b.images.shape[-2:] == (6, 5)


def test_color_modes_and_resize(image_folder):
    g = image_dataset_from_directory(image_folder, color_mode="grayscale", image_size=(5, 7))
    assert g.images.shape == (10, 1, 5, 7)
    rgba = image_dataset_from_directory(image_folder, color_mode="rgba")
    assert rgba.images.shape == (10, 4, 8, 8) and bool((rgba.images[:, 3] == 255).all())
    c = image_dataset_from_directory(image_folder, image_size=(4, 8), crop_to_aspect_ratio=True)
    assert c.images.shape == (10, 3, 4, 8)
    with pytest.raises(ValueError, match="color_mode"):
        image_dataset_from_directory(image_folder, color_mode="cmyk")


def test_mixed_sizes_resize_to_the_most_common_with_a_warning(image_folder, write_image):
    write_image(image_folder / "cat" / "big.png", h=16, w=12)
    with pytest.warns(UserWarning, match="different sizes.*8×8"):
        ds = image_dataset_from_directory(image_folder)
    assert ds.images.shape == (11, 3, 8, 8)
    ds2 = image_dataset_from_directory(image_folder, image_size=(8, 8))  # no warning needed
    assert ds2.images.shape == (11, 3, 8, 8)


@pytest.mark.parametrize("mode,suffix", [("L", ".png"), ("RGBA", ".png"), ("P", ".gif"),
                                         ("CMYK", ".jpg"), ("I;16", ".png"), ("LA", ".png")])
def test_mixed_modes_are_converted(image_folder, write_image, mode, suffix):
    arr = write_image(image_folder / "dog" / f"odd{suffix}", mode=mode, seed=5)
    ds = image_dataset_from_directory(image_folder)
    assert ds.images.shape == (11, 3, 8, 8) and ds.skipped == []
    i = ds.files.index(str(image_folder / "dog" / f"odd{suffix}"))
    if mode == "I;16":  # 16-bit values are scaled to 8 bits, not clipped
        assert np.array_equal(ds.images[i, 0].numpy(), arr[..., 0])
    g = image_dataset_from_directory(image_folder, color_mode="grayscale")
    assert g.images.shape == (11, 1, 8, 8)


@pytest.mark.parametrize("kind", ["empty", "text", "truncated", "corrupt", "corrupt_data"])
def test_bad_files_are_skipped_with_a_reason_and_a_warning(image_folder, bad_files, kind):
    bad = bad_files(kind, image_folder / "cat" / f"bad_{kind}.jpg")
    with pytest.warns(UserWarning, match="skipped 1 of 11"):
        ds = image_dataset_from_directory(image_folder)
    assert len(ds) == 10 and ds.class_counts() == {"cat": 4, "dog": 6}
    assert [p for p, _ in ds.skipped] == [str(bad)]
    reason = ds.skipped[0][1]
    expected = {"empty": "empty", "text": "not an image", "truncated": "truncated",
                "corrupt": "corrupt", "corrupt_data": "broken data stream"}[kind]
    assert expected in reason
    # the skip list survives the cache
    with pytest.warns(UserWarning, match="skipped 1"):
        again = image_dataset_from_directory(image_folder)
    assert again.skipped == ds.skipped


def test_png_saved_as_jpg_loads(image_folder, write_image):
    arr = write_image(image_folder / "cat" / "really_png.jpg", fmt="PNG", seed=9)
    ds = image_dataset_from_directory(image_folder)
    i = ds.files.index(str(image_folder / "cat" / "really_png.jpg"))
    assert np.array_equal(ds.images[i].numpy(), arr.transpose(2, 0, 1))


def test_single_class_warns(tmp_path, write_image):
    write_image(tmp_path / "only" / "a.png")
    write_image(tmp_path / "only" / "b.png", seed=1)
    with pytest.warns(UserWarning, match="only one class"):
        ds = image_dataset_from_directory(tmp_path)
    assert ds.class_names == ["only"]


def test_empty_class_keeps_its_index_and_warns(image_folder):
    (image_folder / "bird").mkdir()
    with pytest.warns(UserWarning, match="bird"):
        ds = image_dataset_from_directory(image_folder)
    assert ds.class_names == ["bird", "cat", "dog"]
    assert ds.class_counts() == {"bird": 0, "cat": 4, "dog": 6}


def test_no_class_folders_is_a_clear_error(tmp_path, write_image):
    write_image(tmp_path / "a.png")
    with pytest.raises(FolderLayoutError, match="no class folders.*1 files lie directly"):
        image_dataset_from_directory(tmp_path)
    with pytest.raises(FolderLayoutError, match="not a folder"):
        image_dataset_from_directory(tmp_path / "missing")


def test_all_files_bad_is_a_clear_error(tmp_path, bad_files):
    bad_files("text", tmp_path / "a" / "x.png")
    bad_files("empty", tmp_path / "b" / "y.png")
    with pytest.raises(FolderLayoutError, match="none of its 2 files"), pytest.warns(UserWarning):
        image_dataset_from_directory(tmp_path)


def test_hidden_files_and_nested_folders(image_folder, write_image):
    write_image(image_folder / "cat" / ".hidden.png")
    write_image(image_folder / "cat" / "sub" / "deep.png", seed=3)
    ds = image_dataset_from_directory(image_folder)
    assert ds.class_counts() == {"cat": 5, "dog": 6}


def test_validation_split_is_stratified_seeded_and_complementary(tmp_path, write_image):
    for cls, n in (("a", 10), ("b", 20)):
        for i in range(n):
            write_image(tmp_path / cls / f"{i:02d}.png", h=4, w=4, seed=i + 50 * len(cls))
    train, val = image_dataset_from_directory(tmp_path, validation_split=0.2, subset="both",
                                              seed=3)
    assert val.class_counts() == {"a": 2, "b": 4} and train.class_counts() == {"a": 8, "b": 16}
    assert not set(train.files) & set(val.files)
    t2 = image_dataset_from_directory(tmp_path, validation_split=0.2, subset="training", seed=3)
    v2 = image_dataset_from_directory(tmp_path, validation_split=0.2, subset="validation", seed=3)
    assert t2.files == train.files and v2.files == val.files
    v3 = image_dataset_from_directory(tmp_path, validation_split=0.2, subset="validation", seed=4)
    assert v3.files != val.files
    with pytest.raises(ValueError, match="needs validation_split"):
        image_dataset_from_directory(tmp_path, subset="training")
    with pytest.raises(ValueError, match="needs subset"):
        image_dataset_from_directory(tmp_path, validation_split=0.2)
    with pytest.raises(FolderLayoutError, match="test/"):
        image_dataset_from_directory(tmp_path, subset="test")


def test_train_val_test_split_folders(tmp_path, write_image):
    for split, n in (("train", 3), ("val", 2), ("test", 1)):
        for cls in ("x", "y"):
            for i in range(n):
                write_image(tmp_path / split / cls / f"{i}.png", seed=i)
    train, val = image_dataset_from_directory(tmp_path, subset="both")
    test = image_dataset_from_directory(tmp_path, subset="test")
    assert (len(train), len(val), len(test)) == (6, 4, 2)
    assert train.class_names == val.class_names == test.class_names == ["x", "y"]
    with pytest.raises(ValueError, match="has splits"):
        image_dataset_from_directory(tmp_path)


def test_missing_split_gives_a_clear_message(tmp_path, write_image):
    for cls in ("x", "y"):
        for i in range(5):
            write_image(tmp_path / "train" / cls / f"{i}.png", seed=i)
    with pytest.raises(FolderLayoutError, match="no val/ split.*validation_split"):
        image_dataset_from_directory(tmp_path, subset="validation")
    with pytest.raises(FolderLayoutError, match="no test/ split"):
        image_dataset_from_directory(tmp_path, subset="test")
    train, val = image_dataset_from_directory(tmp_path, subset="both", validation_split=0.4)
    assert (len(train), len(val)) == (6, 4)


def test_class_names_argument_orders_and_checks(image_folder):
    ds = image_dataset_from_directory(image_folder, class_names=["dog", "cat"], shuffle=False)
    assert ds.class_names == ["dog", "cat"] and ds.labels.tolist() == [0] * 6 + [1] * 4
    with pytest.raises(FolderLayoutError, match="fish"):
        image_dataset_from_directory(image_folder, class_names=["cat", "fish"])


def test_dataset_object_helpers(image_folder):
    ds = image_dataset_from_directory(image_folder, batch_size=4)
    assert ds.batch_size == 4 and ds.num_classes == 2 and ds.image_shape == (3, 8, 8)
    img, label = ds[5]
    assert img.shape == (3, 8, 8) and int(label) == 1
    x, y = ds.numpy()
    assert x.shape == (10, 8, 8, 3) and y.shape == (10,)
    sub = ds.subset([0, 9])
    assert len(sub) == 2 and sub.files == [ds.files[0], ds.files[9]]
    assert "10 images" in repr(ds)
    assert ds.to("cpu").images.device.type == "cpu"


def test_stratified_split_properties():
    labels = np.array([0] * 7 + [1] * 3 + [2] * 1)
    tr, va = stratified_split(labels, 0.3, seed=1)
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(11))
    assert np.bincount(labels[va], minlength=3).tolist() == [2, 1, 0]  # a lone image stays
    with pytest.raises(ValueError):
        stratified_split(labels, 1.5)


def test_unwritable_cache_only_warns(image_folder, monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.warns(UserWarning, match="cache"):
        ds = image_dataset_from_directory(image_folder, cache_dir=blocker)
    assert len(ds) == 10


def test_parallel_and_serial_decoding_agree(image_folder):
    a = image_dataset_from_directory(image_folder, workers=1, cache=False)
    b = image_dataset_from_directory(image_folder, workers=4, cache=False)
    assert torch.equal(a.images, b.images)


def test_folder_copy_is_a_different_cache_entry(image_folder, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(image_folder, copy)
    a = image_dataset_from_directory(image_folder)
    b = image_dataset_from_directory(copy)
    assert torch.equal(a.images, b.images) and b.files[0].startswith(str(copy))
