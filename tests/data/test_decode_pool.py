"""decode_pool: chunks decoded in forked processes on Linux, threads elsewhere, inline for
small jobs; results in order, failures reported per file, the same pixels every way."""

from __future__ import annotations

import os
import sys

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
