"""CNNKIT_OFFLINE=1 opens no connection, weights included; downloads have an overall deadline
(issue 13 items 2 and 3). A local server on 127.0.0.1 counts every request it gets."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time

import pytest
import torch

from cnnkit.data import datasets as D
from cnnkit.data.download import DeadlineError, DownloadError, OfflineError, download, offline
from cnnkit.models import registry, weights


@pytest.fixture
def server(http_files):
    """tests/data/conftest.py's local server, which counts every request it gets."""
    return http_files


def _files(folder):
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


def test_the_switch_values(monkeypatch):
    for value, expected in [("1", True), ("true", True), ("yes", True), ("", False), ("0", False),
                            ("false", False), ("off", False)]:
        monkeypatch.setenv("CNNKIT_OFFLINE", value)
        assert offline() is expected, value


def test_offline_download_opens_no_connection(tmp_path, server, monkeypatch):
    server.files["/f.bin"] = b"abc"
    monkeypatch.setenv("CNNKIT_OFFLINE", "1")
    with pytest.raises(OfflineError, match="CNNKIT_OFFLINE is set"):
        download(server.url + "/f.bin", tmp_path / "c" / "f.bin", quiet=True)
    assert server.hits == [] and _files(tmp_path / "c") == []
    monkeypatch.setenv("CNNKIT_OFFLINE", "0")
    download(server.url + "/f.bin", tmp_path / "c" / "f.bin", quiet=True)
    assert server.hits == ["/f.bin"]  # the same call online does reach the server


def _publish_resnet18(server, monkeypatch, cache):
    """Serve resnet18-shaped weights as the 'imagenet' file, through CNNKIT_WEIGHTS_MIRROR."""
    path = cache.parent / "published.pth"
    torch.save(registry.build("resnet18").state_dict(), path)
    data = path.read_bytes()
    name = f"resnet18-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    server.files["/" + name] = data
    spec = weights.WeightSpec("resnet18", "IMAGENET1K_V1", weights.TORCHVISION_HOST + name)
    monkeypatch.setattr(weights, "torchvision_weights", lambda arch: {"IMAGENET1K_V1": spec, "DEFAULT": spec})
    monkeypatch.setenv("CNNKIT_WEIGHTS_MIRROR", server.url + "/")
    monkeypatch.setenv("TORCH_HOME", str(cache.parent / "torch"))
    return name


def test_offline_weights_open_no_connection_and_say_how_to_supply_them(server, monkeypatch,
                                                                       private_cache):
    name = _publish_resnet18(server, monkeypatch, private_cache)
    monkeypatch.setenv("CNNKIT_OFFLINE", "1")
    with pytest.raises(weights.WeightsUnavailableError) as err:
        registry.create("resnet18", weights="imagenet", resize=None)
    assert server.hits == []
    msg = str(err.value)
    assert "\n" not in msg
    assert f"{name} (resnet18 IMAGENET1K_V1 weights) is not in the cache" in msg
    assert "CNNKIT_OFFLINE" in msg and str(private_cache / "weights" / name) in msg
    assert "weights=None" in msg
    monkeypatch.delenv("CNNKIT_OFFLINE")
    registry.create("resnet18", weights="imagenet", resize=None)
    assert server.hits == ["/" + name]  # online, the same call fetches from this server


def test_offline_datasets_open_no_connection(server, monkeypatch):
    entry = dataclasses.replace(D.DATASETS["mnist"], mirrors=(server.url + "/mnist/",))
    monkeypatch.setitem(D.DATASETS, "mnist", entry)
    monkeypatch.setenv("CNNKIT_OFFLINE", "1")
    with pytest.raises(D.DatasetNotFoundError, match="CNNKIT_OFFLINE"):
        D.load("mnist", quiet=True)
    assert server.hits == []


def test_a_trickling_server_is_given_up_on_at_the_deadline(tmp_path, server):
    server.files["/slow.bin"] = bytes(2000)  # 40 s at one byte per 20 ms
    server.trickle.add("/slow.bin")
    start = time.monotonic()
    with pytest.raises(DeadlineError, match=r"gave up after .*deadline_s=0\.5.*bytes arrived"):
        download(server.url + "/slow.bin", tmp_path / "c" / "slow.bin", quiet=True, timeout=5,
                 deadline_s=0.5)
    assert time.monotonic() - start < 5
    assert _files(tmp_path / "c") == []  # no partial file, no temporary file
    assert issubclass(DeadlineError, DownloadError)


def test_weights_downloads_have_the_deadline_too(tmp_path, server):
    server.files["/w-00000000.pth"] = bytes(2000)
    server.trickle.add("/w-00000000.pth")
    start = time.monotonic()
    with pytest.raises(DeadlineError):
        weights.download(server.url + "/w-00000000.pth", tmp_path / "w" / "w-00000000.pth",
                         "00000000", progress=False, timeout=5, deadline_s=0.5)
    assert time.monotonic() - start < 5 and _files(tmp_path / "w") == []


def test_download_py_is_the_only_module_that_opens_connections():
    """The offline switch holds only while no other module can reach the network."""
    import ast
    from pathlib import Path

    import cnnkit
    src = Path(cnnkit.__file__).parent
    network = {"urllib.request", "http.client", "requests", "httpx", "aiohttp", "ftplib",
               "smtplib", "torch.hub", "huggingface_hub"}  # clients (a listening socket is fine)
    allowed = {src / "data" / "download.py": {"urllib.request", "http.client"}}
    found = []
    for path in src.rglob("*.py"):
        text = path.read_text()
        found += [f"{path.relative_to(src)}: {f}" for f in ("load_state_dict_from_url",
                  "download_url_to_file", "urlretrieve") if f in text]
        for node in ast.walk(ast.parse(text)):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                hit = next((n for n in network if name == n or name.startswith(n + ".")), None)
                if hit and hit not in allowed.get(path, set()):
                    found.append(f"{path.relative_to(src)}: {name}")
    assert found == []


def test_parts_left_by_a_killed_download_are_removed_by_the_next(tmp_path, server):
    server.files["/f.bin"] = b"abc"
    cache = tmp_path / "c"
    cache.mkdir()
    stale, live = cache / ".f.bin.x1.part", cache / ".f.bin.x2.part"
    stale.write_bytes(b"half")
    live.write_bytes(b"being written")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    download(server.url + "/f.bin", cache / "f.bin", quiet=True)
    assert _files(cache) == [".f.bin.x2.part", "f.bin"]  # a recent one may have a writer


def test_cnnkit_train_offline_pretrained_is_one_line(tmp_path, monkeypatch, capsys, private_cache):
    from cnnkit import cli
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("CNNKIT_OFFLINE", "1")
    code = cli.main(["train", "--model", "resnet18", "--pretrained", "--limit", "64", "--epochs", "1",
                     "--output", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "not in the cache" in err[0], err
