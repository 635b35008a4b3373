"""Decoding a folder and downloading print progress lines when stderr is not a terminal."""

from __future__ import annotations

import hashlib
import re

from cnnkit.data.download import download
from cnnkit.datasets import image_dataset_from_directory


def test_decoding_a_folder_prints_progress(image_folder, monkeypatch, capsys):
    monkeypatch.setenv("CNNKIT_PROGRESS_INTERVAL", "1e-9")  # a line at every chunk
    image_dataset_from_directory(image_folder, image_size=(8, 8), batch_size=4)
    lines = capsys.readouterr().err.splitlines()
    decoding = [ln for ln in lines if ln.startswith(f"decoding {image_folder}: ")]
    assert decoding and "/10 files (" in decoding[0] and "files/s" in decoding[0], lines
    assert decoding[-1] == f"decoding {image_folder}: 10 files in 0s", lines


def test_decoding_quickly_is_silent(image_folder, monkeypatch, capsys):
    monkeypatch.delenv("CNNKIT_PROGRESS_INTERVAL", raising=False)
    image_dataset_from_directory(image_folder, image_size=(8, 8), batch_size=4)
    assert "decoding" not in capsys.readouterr().err


def test_download_prints_megabytes_and_eta(tmp_path, http_files, monkeypatch, capsys):
    monkeypatch.setenv("CNNKIT_PROGRESS_INTERVAL", "1e-9")
    data = b"x" * (3 << 20)  # three 1 MiB chunks
    http_files.files["/big.bin"] = data
    download(http_files.url + "/big.bin", tmp_path / "big.bin", hashlib.md5(data).hexdigest())
    lines = capsys.readouterr().err.splitlines()
    shown = [ln for ln in lines if ln.startswith("downloading big.bin: ")]
    # read1 hands over whatever has arrived (the overall deadline's reads), so the first
    # line comes after the first piece, not after a whole 1 MiB chunk
    assert re.match(r"downloading big\.bin: \d\.\d/3\.1 MB \(\d+%\) - ", shown[0]), lines
    assert "MB/s" in shown[0] and "ETA" in shown[0], lines
    assert shown[-1].startswith("downloading big.bin: 3.1 MB in "), lines
    capsys.readouterr()
    download(http_files.url + "/big.bin", tmp_path / "quiet.bin", quiet=True)
    assert capsys.readouterr().err == ""
