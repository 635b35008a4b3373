"""Weights: local files, checked loading with clear mismatch messages, download + cache + checksum
against a local HTTP server (no internet), and the offline error."""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from cnnkit.models import registry, weights
from cnnkit.models.weights import WeightSpec, WeightsMismatchError, WeightsUnavailableError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cnnkit cache and an empty torch hub cache."""
    monkeypatch.setenv("CNNKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("CNNKIT_WEIGHTS_MIRROR", raising=False)
    return tmp_path / "cache" / "weights"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    hits: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        _Quiet.hits.append(self.path)
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/'www'; yields (base_url, folder)."""
    root = tmp_path / "www"
    root.mkdir()
    _Quiet.hits = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", root
    httpd.shutdown()
    httpd.server_close()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _publish(state: dict, folder: Path, stem: str) -> tuple[str, str]:
    """Write ``state`` as torchvision does (``stem-<sha256[:8]>.pth``); return (filename, digest)."""
    tmp = folder / "tmp.pth"
    torch.save(state, tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    name = f"{stem}-{digest[:8]}.pth"
    tmp.rename(folder / name)
    return name, digest


def test_torchvision_specs_carry_url_checksum_and_input_size():
    spec = weights.named_spec("resnet50", "imagenet")
    assert spec.tag == "IMAGENET1K_V2"
    assert spec.url == "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"
    assert spec.sha256_prefix == "11ad3fa6" and spec.input_size == 224 and spec.num_classes == 1000
    assert weights.named_spec("resnet50", "IMAGENET1K_V1").filename == "resnet50-0676ba61.pth"
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        weights.named_spec("resnet50", "imagenet21k")


def test_download_checks_the_checksum_and_caches(cache, server):
    base, root = server
    name, digest = _publish({"w": torch.arange(6.0)}, root, "tiny")
    spec = WeightSpec("tiny", "T", base + name)
    path = weights.fetch(spec, progress=False)
    assert path == cache / name and hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert _Quiet.hits == ["/" + name]
    assert weights.fetch(spec) == path  # cached: no second request
    assert _Quiet.hits == ["/" + name]
    assert torch.equal(weights.read_state_dict(path)["w"], torch.arange(6.0))


def test_a_corrupt_download_is_refused_and_not_cached(cache, server):
    base, root = server
    name, _ = _publish({"w": torch.zeros(3)}, root, "tiny")
    (root / "tiny-00000000.pth").write_bytes((root / name).read_bytes())
    spec = WeightSpec("tiny", "T", base + "tiny-00000000.pth")
    with pytest.raises(WeightsUnavailableError, match="checksum mismatch for tiny-00000000.pth"):
        weights.fetch(spec, progress=False)
    assert not cache.exists() or not any(cache.iterdir())


def test_offline_without_cache_names_the_file_and_where_to_put_it(cache, monkeypatch):
    monkeypatch.setenv("CNNKIT_WEIGHTS_MIRROR", f"http://127.0.0.1:{_closed_port()}/")
    with pytest.raises(WeightsUnavailableError) as err:
        registry.create("resnet18", weights="imagenet")
    msg = str(err.value)
    assert "resnet18-f37072fd.pth" in msg
    assert str(cache / "resnet18-f37072fd.pth") in msg
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in msg
    assert "weights=None" in msg


def test_imagenet_weights_load_from_the_mirror_into_the_base(cache, server, monkeypatch):
    base, root = server
    donor = registry.build("resnet18")  # stands in for the published file (same keys and shapes)
    name, _ = _publish(donor.state_dict(), root, "resnet18")
    spec = WeightSpec("resnet18", "IMAGENET1K_V1", weights.TORCHVISION_HOST + name)
    monkeypatch.setattr(weights, "torchvision_weights", lambda arch: {"IMAGENET1K_V1": spec, "DEFAULT": spec})
    monkeypatch.setenv("CNNKIT_WEIGHTS_MIRROR", base)
    with pytest.warns(UserWarning, match="resizes 64x64 images to 224x224"):
        model = registry.create("resnet18", num_classes=5, input_shape=(64, 64, 3), pretrained=True)
    assert _Quiet.hits == ["/" + name]
    net = model.module
    assert torch.equal(net.conv1.weight, donor.conv1.weight)
    assert torch.equal(net.layer4[1].bn2.running_var, donor.layer4[1].bn2.running_var)
    assert net.fc.weight.shape == (5, 512)  # a new head for 5 classes
    # the file's own 1000-class head loads when the class count matches
    same = registry.create("resnet18", pretrained=True, resize=None)
    assert torch.equal(same.module.fc.weight, donor.fc.weight)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_weight_files_load_exactly(tmp_path, suffix):
    donor = registry.build("simple-cnn", num_classes=4)
    path = tmp_path / f"w{suffix}"
    if suffix == ".pth":
        torch.save(donor.state_dict(), path)
    else:
        save_file(donor.state_dict(), str(path))
    model = registry.create("simple-cnn", num_classes=4, weights=str(path))
    for key, value in donor.state_dict().items():
        assert torch.equal(model.module.state_dict()[key], value)


def test_a_saved_cnnkit_model_folder_is_a_weights_source(tmp_path):
    src = registry.create("lenet5", num_classes=3)
    src.save(tmp_path / "lenet.cnnkit")
    model = registry.create("lenet5", num_classes=3, weights=str(tmp_path / "lenet.cnnkit"))
    assert torch.equal(model.module.classifier.weight, src.module.classifier.weight)


def test_weights_of_another_architecture_list_the_disagreeing_keys(tmp_path):
    path = tmp_path / "resnet34.pth"
    torch.save(registry.build("resnet34").state_dict(), path)
    with pytest.raises(WeightsMismatchError) as err:
        registry.create("resnet18", weights=str(path))
    msg = str(err.value)
    assert "does not fit the resnet18 model" in msg
    assert "in the file are not in the model" in msg and "layer1.2.conv1.weight" in msg
    assert "another architecture" in msg


def test_weights_for_another_class_count_name_the_shapes(tmp_path):
    path = tmp_path / "ten.pth"
    torch.save(registry.build("resnet18", num_classes=10).state_dict(), path)
    with pytest.raises(WeightsMismatchError) as err:
        registry.create("resnet18", num_classes=5, weights=str(path))
    msg = str(err.value)
    assert "fc.weight: file (10, 512) vs model (5, 512)" in msg
    assert "fc.bias: file (10,) vs model (5,)" in msg
    assert "cnnkit.transfer" in msg


def test_weights_for_another_input_size_name_the_shapes(tmp_path):
    path = tmp_path / "simple.safetensors"
    save_file(registry.build("simple-cnn").state_dict(), str(path))
    with pytest.raises(WeightsMismatchError, match=r"pre_logits.1.weight: file \(64, 2304\) vs model \(64, 1600\)"):
        registry.create("simple-cnn", input_shape=(28, 28, 3), weights=str(path))


def test_pickled_objects_are_not_loaded(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(1), "obj": _Quiet}, path)  # a class: needs pickle to load
    with pytest.raises(weights.WeightsError, match="weights_only=True"):
        weights.read_state_dict(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        registry.create("simple-cnn", weights=str(tmp_path / "nope.pth"))


def test_no_published_weights_for_hand_written_nets():
    with pytest.raises(ValueError, match="simple-cnn has no published weights"):
        registry.create("simple-cnn", pretrained=True)
