"""Multi-label data: the labels CSV (format, bad rows, trust rules) and a folder per label
(one image in several label folders is one sample)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from cnnkit import datasets
from cnnkit.data.multilabel import MultiLabelDataError
from multilabel_builders import QUADRANTS, write_csv_dataset


def _png(path, seed=0, size=8):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


def test_csv_gives_multi_hot_labels_and_sorted_label_names(tmp_path):
    csv = write_csv_dataset(tmp_path, n=12)
    ds = datasets.multilabel_dataset_from_csv(csv)
    assert ds.multi_label is True
    assert ds.class_names == sorted(QUADRANTS)
    assert ds.images.shape == (12, 3, 16, 16) and ds.images.dtype.is_floating_point is False
    assert ds.labels.shape == (12, 4) and set(ds.labels.unique().tolist()) <= {0.0, 1.0}
    rows = csv.read_text().splitlines()[1:]
    for i, row in enumerate(rows):  # each image carries exactly the labels of its row
        listed = set(row.split(",")[1].split())
        assert {n for n, v in zip(ds.class_names, ds.labels[i].tolist()) if v} == listed


def test_csv_delimiter_header_empty_labels_and_image_root(tmp_path):
    _png(tmp_path / "pics" / "a.png", 1)
    _png(tmp_path / "pics" / "b.png", 2)
    csv = tmp_path / "meta" / "tags.csv"
    csv.parent.mkdir()
    csv.write_text("a.png,cat;dog\n\nb.png,\n")  # no header, a blank line, no label for b
    ds = datasets.multilabel_dataset_from_csv(csv, label_delimiter=";", image_root=tmp_path / "pics")
    assert ds.class_names == ["cat", "dog"]
    assert ds.labels.tolist() == [[1, 1], [0, 0]]


@pytest.mark.parametrize("body, says", [
    ("filename,labels\na.png,cat\nb.png,cat,dog\n", "line 3: expected 2 fields"),
    ("filename,labels\na.png,cat\na.png,dog\n", "line 3: a.png is listed again (first on line 2)"),
    ("filename,labels\n,cat\n", "line 2: the filename is empty"),
    ("a.png,cat\n../outside.png,dog\n", "line 2: ../outside.png leaves the image folder"),
    ("a.png,cat\n/etc/passwd,dog\n", "line 2: /etc/passwd is an absolute path"),
    ("filename,labels\n", "no image rows"),
])
def test_a_bad_row_stops_the_load_with_one_line_naming_it(tmp_path, body, says):
    _png(tmp_path / "a.png")
    _png(tmp_path / "b.png", 1)
    (tmp_path / "labels.csv").write_text(body)
    with pytest.raises(MultiLabelDataError) as err:
        datasets.multilabel_dataset_from_csv(tmp_path / "labels.csv")
    assert says in str(err.value) and "\n" not in str(err.value)


def test_comma_as_label_delimiter_is_refused(tmp_path):
    (tmp_path / "labels.csv").write_text("a.png,cat\n")
    with pytest.raises(MultiLabelDataError, match="must be something else than ','"):
        datasets.multilabel_dataset_from_csv(tmp_path / "labels.csv", label_delimiter=",")


def test_unusable_files_are_skipped_with_their_reasons(tmp_path):
    root = tmp_path / "data"
    _png(root / "good.png")
    _png(tmp_path / "secret.png", 5)
    os.symlink(tmp_path / "secret.png", root / "link_out.png")  # points outside the folder
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "labels.csv").write_text("filename,labels\ngood.png,a\nlink_out.png,b\n"
                                     "missing.png,a\nbroken.png,b\n")
    with pytest.warns(UserWarning, match="skipped 3 files"):
        ds = datasets.multilabel_dataset_from_csv(root / "labels.csv")
    assert len(ds) == 1 and ds.files == [str(root / "good.png")]
    reasons = {os.path.basename(p): why for p, why in ds.skipped}
    assert reasons["link_out.png"].startswith("symlink to outside the image folder")
    assert reasons["missing.png"] == "no such file"
    assert "corrupt" in reasons["broken.png"] or "not an image" in reasons["broken.png"]


def test_folder_per_label_merges_identical_files_into_one_sample(tmp_path):
    root = tmp_path / "labels"
    _png(root / "cat" / "both.png", 1)
    _png(root / "dog" / "only_dog.png", 2)
    shutil.copy(root / "cat" / "both.png", root / "dog" / "copy_of_both.png")
    (root / "sofa").mkdir()
    os.symlink(root / "cat" / "both.png", root / "sofa" / "link.png")  # inside: the same image
    ds = datasets.multilabel_dataset_from_directory(root)
    assert ds.class_names == ["cat", "dog", "sofa"]
    rows = {os.path.basename(f): ds.labels[i].tolist() for i, f in enumerate(ds.files)}
    assert rows == {"both.png": [1, 1, 1], "only_dog.png": [0, 1, 0]}


def test_folder_per_label_same_name_different_bytes_is_two_images(tmp_path):
    root = tmp_path / "labels"
    _png(root / "cat" / "IMG_1.png", 1)
    _png(root / "dog" / "IMG_1.png", 2)
    with pytest.warns(UserWarning, match="different content: each is a separate image"):
        ds = datasets.multilabel_dataset_from_directory(root)
    assert sorted(map(tuple, ds.labels.tolist())) == [(0, 1), (1, 0)]


def test_dataset_split_and_subset_keep_rows_together(tmp_path):
    ds = datasets.multilabel_dataset_from_csv(write_csv_dataset(tmp_path, n=20))
    train, val = ds.split(0.25, seed=3)
    assert (len(train), len(val)) == (15, 5)
    assert not set(train.files) & set(val.files)
    j = ds.files.index(val.files[0])
    assert val.labels[0].tolist() == ds.labels[j].tolist()
    assert ds.split(0.25, seed=3)[1].files == val.files  # seeded


def test_run_data_from_a_csv_split_limit_and_test_data(tmp_path):
    """What `cnnkit train --data labels.csv` trains on: a seeded random hold-out, --limit,
    and --test-data read with the training labels' order (even when it lacks one)."""
    from cnnkit.config import TrainConfig
    from cnnkit.run.data import load_data
    csv = write_csv_dataset(tmp_path / "train", n=40)
    _png(tmp_path / "test" / "t.png")
    (tmp_path / "test" / "labels.csv").write_text("t.png,top_right\n")
    cfg = TrainConfig(data=str(csv), val_split=0.25, limit=15,
                      test_data=str(tmp_path / "test" / "labels.csv")).validate()
    data = load_data(cfg)
    assert data.multi_label and data.class_names == sorted(QUADRANTS)
    assert data.train[1].shape == (15, 4) and data.train[1].dtype.is_floating_point
    assert len(data.val[0]) == round(10 * 15 / 30)  # the same share of the 10 held out
    assert data.test[1].tolist() == [[0, 0, 0, 1]] and data.test_name == "test"
    assert data.test[0].shape[2:] == data.train[0].shape[2:]  # resized to the training size
    again = load_data(cfg)
    assert bool((again.val[1] == data.val[1]).all())  # seeded
