"""Downloads against a local HTTP server: checksum, cache, mirrors, and no partial files."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile

import numpy as np
import pytest
from data_builders import build_cifar_dataset, build_idx_dataset

import cnnkit.datasets as datasets
from cnnkit.data import datasets as D
from cnnkit.data.download import ChecksumError, DownloadError, download


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _leftovers(folder):
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


def test_download_verifies_and_writes_atomically(tmp_path, http_files):
    http_files.files["/f.bin"] = b"x" * 5000
    dest = tmp_path / "c" / "f.bin"
    download(http_files.url + "/f.bin", dest, _md5(b"x" * 5000), quiet=True)
    assert dest.read_bytes() == b"x" * 5000
    assert _leftovers(tmp_path / "c") == ["f.bin"]


def test_checksum_mismatch_leaves_nothing(tmp_path, http_files):
    http_files.files["/f.bin"] = b"tampered"
    with pytest.raises(DownloadError, match="md5"):
        download(http_files.url + "/f.bin", tmp_path / "c" / "f.bin", _md5(b"original"),
                 quiet=True)
    assert _leftovers(tmp_path / "c") == []
    assert issubclass(ChecksumError, DownloadError)


def test_partial_download_leaves_nothing(tmp_path, http_files):
    http_files.files["/big.bin"] = bytes(range(256)) * 400
    http_files.partial.add("/big.bin")
    with pytest.raises(DownloadError):
        download(http_files.url + "/big.bin", tmp_path / "c" / "big.bin", None, quiet=True,
                 timeout=5)
    assert _leftovers(tmp_path / "c") == []


def test_next_mirror_is_tried_after_a_failure(tmp_path, http_files):
    http_files.files["/b/f"] = b"abc"
    urls = [http_files.url + "/a/f", http_files.url + "/b/f"]
    download(urls, tmp_path / "f", _md5(b"abc"), quiet=True)
    assert (tmp_path / "f").read_bytes() == b"abc"
    assert http_files.hits == ["/a/f", "/b/f"]
    with pytest.raises(DownloadError) as e:
        download([http_files.url + "/a/f", "http://127.0.0.1:9/none"], tmp_path / "g",
                 quiet=True, timeout=5)
    assert "/a/f" in str(e.value) and "127.0.0.1:9" in str(e.value)


def _serve_mnist(tmp_path, http_files, monkeypatch, partial=None):
    """Serve built MNIST files and point the 'mnist' entry at the server (with their md5s)."""
    arrays = build_idx_dataset(tmp_path / "served")
    files = {}
    for split, pairs in D.DATASETS["mnist"].files.items():
        files[split] = []
        for name, _ in pairs:
            data = (tmp_path / "served" / name).read_bytes()
            http_files.files[f"/mnist/{name}"] = data
            files[split].append((name, _md5(data)))
    if partial:
        http_files.partial.add(f"/mnist/{partial}")
    entry = dataclasses.replace(D.DATASETS["mnist"], files={k: tuple(v) for k, v in files.items()},
                                mirrors=(http_files.url + "/mnist/",))
    monkeypatch.setitem(D.DATASETS, "mnist", entry)
    return arrays


def test_load_downloads_into_the_cache_then_reuses_it(tmp_path, http_files, monkeypatch,
                                                      private_cache):
    arrays = _serve_mnist(tmp_path, http_files, monkeypatch)
    (x, y), (xt, yt) = datasets.load("mnist", quiet=True)
    assert np.array_equal(x, arrays["train"][0]) and np.array_equal(yt, arrays["test"][1])
    assert len(http_files.hits) == 4
    assert sorted(_leftovers(private_cache / "datasets" / "mnist")) == sorted(
        n for pairs in D.DATASETS["mnist"].files.values() for n, _ in pairs)
    datasets.load("mnist", quiet=True)
    assert len(http_files.hits) == 4  # second load: from the cache


def test_failed_download_in_load_leaves_no_half_file(tmp_path, http_files, monkeypatch,
                                                     private_cache):
    _serve_mnist(tmp_path, http_files, monkeypatch, partial="t10k-images-idx3-ubyte.gz")
    with pytest.raises(D.DatasetNotFoundError, match="partial|t10k-images"):
        datasets.load("mnist", quiet=True)
    left = _leftovers(private_cache / "datasets" / "mnist")
    assert "t10k-images-idx3-ubyte.gz" not in left
    assert not [n for n in left if n.endswith(".part")]


def test_cifar_archive_is_downloaded_verified_extracted_and_removed(tmp_path, http_files,
                                                                    monkeypatch, private_cache):
    arrays = build_cifar_dataset(tmp_path / "src")
    base = tmp_path / "src" / "cifar-10-batches-py"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(base, arcname="cifar-10-batches-py")
    http_files.files["/kriz/cifar-10-python.tar.gz"] = buf.getvalue()
    info = D.DATASETS["cifar10"]
    files = {s: tuple((n, _md5((base / n).read_bytes())) for n, _ in pairs)
             for s, pairs in info.files.items()}
    entry = dataclasses.replace(
        info, files=files, mirrors=(http_files.url + "/kriz/",),
        archive=("cifar-10-python.tar.gz", _md5(buf.getvalue())),
        meta=(info.meta[0], _md5((base / info.meta[0]).read_bytes())))
    monkeypatch.setitem(D.DATASETS, "cifar10", entry)
    (x, y), (xt, yt) = datasets.cifar10.load_data(quiet=True)
    # load_data gives Keras's CIFAR labels: (N, 1) uint8
    assert np.array_equal(x, arrays["train"][0]) and np.array_equal(yt[:, 0], arrays["test"][1])
    where = private_cache / "datasets" / "cifar10"
    assert not (where / "cifar-10-python.tar.gz").exists()
    assert (where / "cifar-10-batches-py" / "data_batch_5").is_file()


def test_cifar_archive_with_a_wrong_member_is_refused(tmp_path, http_files, monkeypatch,
                                                      private_cache):
    build_cifar_dataset(tmp_path / "src")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    http_files.files["/kriz/cifar-10-python.tar.gz"] = buf.getvalue()
    entry = dataclasses.replace(D.DATASETS["cifar10"], mirrors=(http_files.url + "/kriz/",),
                                archive=("cifar-10-python.tar.gz", _md5(buf.getvalue())))
    monkeypatch.setitem(D.DATASETS, "cifar10", entry)  # members keep the published md5s
    with pytest.raises(D.DatasetNotFoundError, match="md5"):
        datasets.load("cifar10", quiet=True)
    where = private_cache / "datasets" / "cifar10"
    assert not (where / "cifar-10-python.tar.gz").exists()
    assert not [n for n in _leftovers(where) if n.endswith(".part")]
