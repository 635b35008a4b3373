"""decode_pool: chunks decoded in forked processes on Linux, threads elsewhere, inline for
small jobs; results in order, failures reported per file, the same pixels every way."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

from cnnkit.data import decode_pool
from cnnkit.data.folder import image_dataset_from_directory

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="worker processes are forked on Linux only")


def pid_and_items(chunk):
    return os.getpid(), list(chunk)


def square(chunk):
    return [v * v for v in chunk]


@linux_only
def test_workers_run_in_other_processes_and_results_keep_their_order():
    chunks = decode_pool.chunked(range(40), workers=2, most=5)
    assert [len(c) for c in chunks] == [5] * 8
    results = list(decode_pool.imap_chunks(pid_and_items, chunks, workers=2))
    assert [item for _, items in results for item in items] == list(range(40))
    assert os.getpid() not in {pid for pid, _ in results}


def test_small_jobs_run_in_the_calling_process():
    chunks = decode_pool.chunked(range(decode_pool.SMALL_JOB - 1), workers=None)
    pids = {pid for pid, _ in decode_pool.imap_chunks(pid_and_items, chunks)}
    assert pids == {os.getpid()}


def test_without_fork_threads_do_the_work(monkeypatch):
    monkeypatch.setattr(decode_pool, "_fork_context", lambda: None)
    chunks = decode_pool.chunked(range(30), workers=3, most=4)
    results = list(decode_pool.imap_chunks(pid_and_items, chunks, workers=3))
    assert {pid for pid, _ in results} == {os.getpid()}
    assert [i for _, items in results for i in items] == list(range(30))
    threaded = list(decode_pool.imap_chunks(square, chunks, workers=3, processes=False))
    assert [v for part in threaded for v in part] == [i * i for i in range(30)]


@linux_only
def test_a_worker_process_error_reaches_the_caller():
    with pytest.raises(ZeroDivisionError):
        list(decode_pool.imap_chunks(divide_by_zero, [[1], [2]], workers=2))


def divide_by_zero(chunk):
    return [v / 0 for v in chunk]


@linux_only
def test_folder_decoded_by_processes_matches_one_thread_and_reports_bad_files(
        image_folder, bad_files, monkeypatch):
    bad = bad_files("corrupt", image_folder / "dog" / "bad.jpg")
    forks = []
    real = decode_pool._fork_context
    monkeypatch.setattr(decode_pool, "_fork_context", lambda: forks.append(1) or real())
    with pytest.warns(UserWarning, match="skipped 1 of 11"):
        many = image_dataset_from_directory(image_folder, workers=2, cache=False, shuffle=False)
    assert forks, "workers=2 should have used worker processes"
    with pytest.warns(UserWarning, match="skipped 1 of 11"):
        one = image_dataset_from_directory(image_folder, workers=1, cache=False, shuffle=False)
    assert torch.equal(many.images, one.images) and many.files == one.files
    assert [p for p, _ in many.skipped] == [str(bad)] and "corrupt" in many.skipped[0][1]
    with pytest.warns(UserWarning, match="skipped 1"):
        sized = image_dataset_from_directory(image_folder, workers=2, cache=False,
                                             shuffle=False, image_size=(5, 7))
    with pytest.warns(UserWarning, match="skipped 1"):
        sized_one = image_dataset_from_directory(image_folder, workers=1, cache=False,
                                                 shuffle=False, image_size=(5, 7))
    assert sized.images.shape == (10, 3, 5, 7) and torch.equal(sized.images, sized_one.images)


def torch_threads(chunk):
    return [torch.get_num_threads() for _ in chunk]


@linux_only
def test_torch_in_child_gives_each_forked_worker_one_torch_thread():
    """A forked child has no OpenMP pool: a parallel torch op there with more than one thread
    waits forever (a resize after the parent multiplied matrices hung). The initializer sets
    one thread in the workers and leaves the parent's count alone."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        plain = list(decode_pool.imap_chunks(torch_threads, [[0], [1]], workers=2))
        safe = list(decode_pool.imap_chunks(torch_threads, [[0], [1]], workers=2,
                                            initializer=decode_pool.torch_in_child))
        assert plain == [[2], [2]], "without the initializer the children inherit 2 threads"
        assert safe == [[1], [1]] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@linux_only
def test_keras_loader_decoded_by_processes_matches_one_thread(tmp_path, bad_files, monkeypatch):
    """The Keras-contract loader resizes with torch in its workers, after the parent has run
    parallel torch work; processes give the pixels and bad-file reasons of one thread."""
    from PIL import Image
    from cnnkit.data.keras_decode import decode_files
    rng = np.random.default_rng(0)
    paths = []
    for i in range(12):
        p = tmp_path / f"{i}.{'png' if i % 3 else 'jpg'}"
        Image.fromarray(rng.integers(0, 256, (9 + i, 14, 3), np.uint8)).save(p)
        paths.append(str(p))
    paths.append(str(bad_files("corrupt", tmp_path / "bad.jpg")))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.nn.functional.interpolate(torch.rand(8, 3, 300, 300), size=(100, 100))
        forks = []
        real = decode_pool._fork_context
        monkeypatch.setattr(decode_pool, "_fork_context", lambda: forks.append(1) or real())
        options = dict(color_mode="rgb", image_size=(8, 10), interpolation="bilinear",
                       crop_to_aspect_ratio=False, pad_to_aspect_ratio=False)
        with pytest.warns(UserWarning, match="skipped 1 of 13"):
            many, keep, skipped = decode_files(paths, options, cache=False, workers=2)
        assert forks, "workers=2 should have used worker processes"
        with pytest.warns(UserWarning, match="skipped 1 of 13"):
            one, keep_one, skipped_one = decode_files(paths, options, cache=False, workers=1)
    finally:
        torch.set_num_threads(before)
    assert many.shape == (12, 3, 8, 10) and np.array_equal(many, one)
    assert keep.tolist() == keep_one.tolist() == [True] * 12 + [False]
    assert skipped == skipped_one and "corrupt" in skipped[0][1]


def fill_rows(chunk, key):
    out = decode_pool.shared(key)
    for row in chunk:
        out[row] = row + 1
    return os.getpid()


@linux_only
def test_forked_workers_write_into_the_shared_output_the_parent_reads():
    import functools
    with decode_pool.shared_output((6, 2, 3)) as (key, out):
        assert not out.any()  # zeroed
        pids = list(decode_pool.imap_chunks(functools.partial(fill_rows, key=key),
                                            [[0, 1], [2, 3], [4, 5]], workers=2))
        assert os.getpid() not in pids
    assert out[:, 0, 0].tolist() == [1, 2, 3, 4, 5, 6] and (out == out[:, :1, :1]).all()
    with pytest.raises(KeyError):
        decode_pool.shared(key)  # released with the block; the array itself stays valid


def _read_or_fail(path):
    if path == "bad":
        raise OSError("no such file")
    return np.full((2, 3, 1), len(path), np.uint8)


def _why(path, error):
    return f"{path}: {error}"


def _broken_store(image):
    raise ValueError("a bug in resizing")


def test_read_rows_reports_unreadable_files_and_writes_the_rest_into_the_shared_array():
    rows = [(0, "a"), (1, "bad"), (2, "abc")]
    with decode_pool.shared_output((3, 1, 2, 3)) as (key, out):
        decoded, images, failed = decode_pool.read_rows(rows, _read_or_fail, _why, key)
        assert (decoded, images, failed) == ([0, 2], [], [(1, "bad: no such file")])
        assert out[0].tolist() == [[[1, 1, 1], [1, 1, 1]]] and not out[1].any()
        assert (out[2] == 3).all()
    decoded, images, _ = decode_pool.read_rows(rows, _read_or_fail, _why)
    assert decoded == [0, 2] and [im.shape for im in images] == [(2, 3, 1)] * 2


def test_read_rows_raises_an_error_after_reading_instead_of_calling_the_file_unreadable():
    with decode_pool.shared_output((1, 1, 2, 3)) as (key, _):
        with pytest.raises(ValueError, match="a bug in resizing"):
            decode_pool.read_rows([(0, "a")], _read_or_fail, _why, key, store=_broken_store)
