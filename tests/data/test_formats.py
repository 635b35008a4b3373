"""Canonical file formats: IDX (MNIST) and CIFAR python batches, read back exactly."""

from __future__ import annotations

import gzip
import os
import pickle

import numpy as np
import pytest

from cnnkit.data.cifar import CifarFormatError, load_batch_arrays, read_batch, write_batch
from cnnkit.data.idx import IdxFormatError, read_idx, write_idx


@pytest.mark.parametrize("dtype", ["u1", "i1", ">i2", "i4", "f4", "f8"])
@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, dtype, gz):
    a = (np.arange(2 * 3 * 4) - 7).astype(dtype).reshape(2, 3, 4)
    p = write_idx(tmp_path / ("a.idx.gz" if gz else "a.idx"), a)
    b = read_idx(p)
    assert b.shape == a.shape and np.array_equal(a, b)
    assert b.dtype.isnative and b.flags.writeable


def test_idx_layout_matches_the_spec(tmp_path):
    """Magic 0x00000803 for uint8 3-D, then big-endian dims, then the bytes."""
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    raw = gzip.decompress(write_idx(tmp_path / "x.gz", a).read_bytes())
    assert raw[:4] == bytes([0, 0, 8, 3])
    assert raw[4:16] == (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + (4).to_bytes(4, "big")
    assert raw[16:] == a.tobytes()


def test_idx_rejects_truncated_and_foreign_files(tmp_path):
    good = gzip.decompress(write_idx(tmp_path / "x.gz", np.zeros((5, 4, 4), np.uint8))
                           .read_bytes())
    (tmp_path / "short.gz").write_bytes(gzip.compress(good[:-10]))
    with pytest.raises(IdxFormatError, match="truncated"):
        read_idx(tmp_path / "short.gz")
    (tmp_path / "cut.gz").write_bytes(gzip.compress(good)[:30])
    with pytest.raises(IdxFormatError, match="gzip"):
        read_idx(tmp_path / "cut.gz")
    (tmp_path / "png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    with pytest.raises(IdxFormatError, match="magic"):
        read_idx(tmp_path / "png")


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar_batch_round_trip(tmp_path, protocol):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, 7)
    p = write_batch(tmp_path / "data_batch_1", x, y, protocol=protocol)
    x2, y2 = load_batch_arrays(p)
    assert np.array_equal(x, x2) and np.array_equal(y, y2) and y2.dtype == np.int64


def test_cifar_channel_order_is_planar_rgb(tmp_path):
    """Row layout: 1024 red, then 1024 green, then 1024 blue values."""
    x = np.zeros((1, 32, 32, 3), np.uint8)
    x[0, 0, 1, 0], x[0, 0, 0, 1], x[0, 31, 31, 2] = 11, 22, 33
    batch = read_batch(write_batch(tmp_path / "b", x, [3]))
    row = batch["data"][0]
    assert row[1] == 11 and row[1024] == 22 and row[3071] == 33


def test_cifar_reader_reads_python2_style_bytes_keys(tmp_path):
    x = np.arange(3072, dtype=np.uint8).reshape(1, 3072) % 251
    obj = {b"data": x, b"labels": [4], b"batch_label": b"x"}
    (tmp_path / "b").write_bytes(pickle.dumps(obj, protocol=2))
    images, labels = load_batch_arrays(tmp_path / "b")
    assert images.shape == (1, 32, 32, 3) and labels.tolist() == [4]


def test_cifar_reader_refuses_code_in_the_pickle(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    (tmp_path / "evil").write_bytes(pickle.dumps({"data": Evil(), "labels": []}, protocol=2))
    with pytest.raises(CifarFormatError, match="refusing"):
        read_batch(tmp_path / "evil")
    assert not (tmp_path / "pwned").exists()


def test_cifar_reader_explains_bad_files(tmp_path):
    (tmp_path / "t").write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8),
                                               "labels": [1, 2]})[:50])
    with pytest.raises(CifarFormatError):
        read_batch(tmp_path / "t")
    (tmp_path / "l").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(CifarFormatError, match="dict"):
        read_batch(tmp_path / "l")
    (tmp_path / "m").write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8),
                                               "labels": [1]}))
    with pytest.raises(CifarFormatError, match="2 images but 1 labels"):
        load_batch_arrays(tmp_path / "m")
