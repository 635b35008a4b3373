"""timm backbones through the registry: head API, local weights, freezing, save/load, export.

Tiny timm architectures (``test_resnet``: 0.37M parameters) at 32×32; nothing downloads."""

import json
import sys

import numpy as np
import pytest
import torch
from torch import nn

import cnnkit
from cnnkit.models import registry
from cnnkit.models.saving import load_model
from cnnkit.models.weights import WeightsMismatchError

ARCH = "timm/test_resnet"


@pytest.fixture
def timm():
    return pytest.importorskip("timm")


@pytest.fixture
def weights_file(timm, tmp_path):
    """A 3-class test_resnet trained by 'someone else', saved with safetensors."""
    from safetensors.torch import save_file
    torch.manual_seed(1)
    net = timm.create_model("test_resnet", num_classes=3).eval()
    path = tmp_path / "test_resnet.safetensors"
    save_file(net.state_dict(), str(path))
    return net, path


def _pixels(n=4, hw=32, c=3):
    return torch.randint(0, 256, (n, c, hw, hw), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(0))


def test_create_gives_the_zoo_head_api_and_the_cfg_preprocessing(timm):
    model = registry.create(ARCH, num_classes=3, input_shape=(32, 32, 3))
    assert isinstance(model, cnnkit.models.transfer.ZooModel)
    pre = model.preprocess.config()
    assert pre["mean"] == [0.5, 0.5, 0.5] and pre["std"] == [0.5, 0.5, 0.5]  # timm's cfg, not ImageNet's
    assert pre["resize"] is None  # random weights train at the data's own size
    assert model.predict(_pixels()).shape == (4, 3)
    net = model.module
    assert net.get_classifier().out_features == 3 and net.num_features == 96
    assert [n for n, _ in model.blocks()] == ["stem", "layer1.0", "layer2.0", "layer3.0", "layer4.0"]
    assert net.eval().forward_features(torch.zeros(2, 3, 32, 32)).shape[:2] == (2, 96)
    model.reset_classifier(5, hidden=8, dropout=0.1)
    assert isinstance(net.get_classifier(), nn.Sequential) and model.predict(_pixels()).shape == (4, 5)
    assert model.architecture["kwargs"]["head_hidden"] == 8
    grey = registry.create(ARCH, num_classes=2, input_shape=(28, 28, 1))
    assert grey.preprocess.config()["channels"] == 3 and grey.preprocess.config()["resize"] == [32, 32]


def test_grad_cam_targets_timms_last_feature_stage(timm):
    from cnnkit import explain
    torch.manual_seed(0)
    model = registry.create(ARCH, num_classes=3, input_shape=(64, 64, 3))
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    result = explain.explain(model, image[None])
    assert result.layer == "model.layer4"  # feature_info's last stage (2×2 at 64×64)
    assert result.heatmaps.shape == (1, 64, 64) and np.ptp(result.heatmaps[0]) > 0


def test_names_come_from_timm_and_records_choose_no_code(timm):
    assert registry.get_entry("timm/resnet10t").input_shape == (176, 176, 3)  # its pretrained_cfg
    assert ARCH in registry.list_models("timm/test_*")
    assert not any(n.startswith("timm/") for n in registry.list_models())  # only when asked
    with pytest.raises(registry.UnknownModelError, match=r"no timm model called 'test_resnett'.*"
                       r"timm/test_resnet.*cnnkit models 'timm/\*'"):
        registry.create("timm/test_resnett")
    with pytest.raises(ValueError, match="cnnkit passes timm only drop_rate, drop_path_rate"):
        registry.rebuild(ARCH, {"num_classes": 3, "checkpoint_path": "/tmp/evil.pth"})
    with pytest.raises(ValueError, match="weights are its model.safetensors"):
        registry.rebuild(ARCH, {"num_classes": 3, "pretrained": True})


def test_weights_from_a_local_safetensors_file(weights_file):
    src, path = weights_file
    model = registry.create(ARCH, num_classes=3, input_shape=(32, 32, 3), weights=str(path),
                            resize=None)
    x = _pixels()
    with torch.no_grad():
        expected = src(model.preprocess(x))  # timm's own model on the same normalised input
    np.testing.assert_allclose(model.predict(x), expected.numpy(), atol=1e-5)

    with pytest.warns(UserWarning, match="3-class|4-class classifier is new"):
        other = registry.create(ARCH, num_classes=4, input_shape=(32, 32, 3), weights=str(path),
                                resize=None)
    assert torch.equal(other.module.model.conv1[0].weight, src.conv1[0].weight)  # the base loaded
    assert other.module.get_classifier().out_features == 4


def test_pretrained_reads_a_copy_in_the_cache_and_offline_names_where(timm, tmp_path,
                                                                      monkeypatch):
    from safetensors.torch import save_file
    from cnnkit.models.weights import WeightsUnavailableError
    monkeypatch.setenv("CNNKIT_CACHE", str(tmp_path))
    monkeypatch.setenv("CNNKIT_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match=r"CNNKIT_OFFLINE forbids downloading: put "
                       r"a copy .* at .*/weights/timm/resnet10t\.safetensors"):
        registry.create("timm/resnet10t", num_classes=3, pretrained=True)
    torch.manual_seed(2)
    published = timm.create_model("test_resnet").eval()  # 1000 classes, as published
    (tmp_path / "weights" / "timm").mkdir(parents=True)
    save_file(published.state_dict(), str(tmp_path / "weights" / "timm" / "test_resnet.safetensors"))
    with pytest.warns(UserWarning, match="3-class classifier is new"):
        model = registry.create(ARCH, num_classes=3, input_shape=(32, 32, 3), pretrained=True)
    assert torch.equal(model.module.model.layer4[0].conv1.weight, published.layer4[0].conv1.weight)
    assert model.preprocess.config()["resize"] == [160, 160]  # the size its weights expect
    assert "weights" not in model.architecture["kwargs"]  # the saved record names no file


def test_a_file_for_another_architecture_is_refused_naming_keys(timm, tmp_path):
    from safetensors.torch import save_file
    path = tmp_path / "effnet.safetensors"
    save_file(timm.create_model("test_efficientnet", num_classes=3).state_dict(), str(path))
    with pytest.raises(WeightsMismatchError, match=r"(?s)does not fit the timm/test_resnet model.*"
                       r"key\(s\) the model needs are not in the file"):
        registry.create(ARCH, num_classes=3, input_shape=(32, 32, 3), weights=str(path))


def test_transfer_freezes_the_base_with_batchnorm_in_inference_mode(weights_file):
    _, path = weights_file
    model = cnnkit.transfer(ARCH, 2, weights=str(path), input_shape=(32, 32, 3), resize=None)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".fc." in n for n in trainable)
    model.train()
    bn = model.module.model.layer1[0].bn1
    assert not bn.training or bn._forward_pre_hooks  # kept in eval mode at each call
    before = bn.running_mean.clone()
    model(_pixels().float() / 255)
    assert torch.equal(bn.running_mean, before)
    model.unfreeze(blocks=1)
    assert all(p.requires_grad for p in model.module.model.layer4.parameters())
    assert not any(p.requires_grad for p in model.module.model.layer3.parameters())


def test_save_and_load_round_trip_through_the_registry(timm, tmp_path):
    torch.manual_seed(0)
    model = registry.create(ARCH, num_classes=3, input_shape=(32, 32, 3), class_names=list("abc"),
                            drop_rate=0.1).eval()
    model.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["architecture"]["name"] == ARCH
    assert config["architecture"]["kwargs"]["drop_rate"] == 0.1
    again = load_model(tmp_path / "m")
    np.testing.assert_allclose(again.predict(_pixels()), model.predict(_pixels()), atol=1e-6)
    assert again.class_names == list("abc")


def test_without_timm_the_name_says_how_to_install(monkeypatch, capsys):
    from cnnkit.models.zoo import timm_models
    timm_models.timm_names.cache_clear()
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm -> ImportError
    try:
        with pytest.raises(registry.UnknownModelError, match=r"pip install 'cnnkit\[timm\]'"):
            registry.create(ARCH, num_classes=3)
        assert registry.list_models("timm/*") == []
        from cnnkit.cli import main
        assert main(["train", "--model", ARCH, "--output", "/nonexistent"]) == 2
        err = capsys.readouterr().err.strip()
        assert "needs timm: pip install 'cnnkit[timm]'" in err and len(err.splitlines()) == 1
    finally:
        timm_models.timm_names.cache_clear()


@pytest.mark.slow
def test_train_a_timm_model_from_the_cli_and_reload_it(timm, weights_file, tmp_path, capsys):
    from cnnkit.cli import main
    _, path = weights_file
    assert main(["train", "--model", ARCH, "--limit", "64", "--epochs", "1", "--batch-size", "32",
                 "--output", str(tmp_path), "--name", "t", "--device", "cpu", "--verbose", "0",
                 "--no-report", "--weights", str(path)]) == 0
    run = tmp_path / "t"
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == ARCH and config["weights"] == str(path)
    model = load_model(run / "best")
    assert model.architecture["name"] == ARCH and len(model.class_names) == 10
    assert "classifier is new" in capsys.readouterr().err  # 3-class file, 10 digit classes


@pytest.mark.slow
def test_export_onnx_with_the_cfg_preprocessing_inside(timm, tmp_path):
    pytest.importorskip("onnxruntime")
    from cnnkit.export import export, load_exported
    torch.manual_seed(0)
    model = registry.create(ARCH, num_classes=3, input_shape=(32, 32, 3)).eval()
    result = export(model, tmp_path / "m.onnx", verbose=False)
    assert result.max_abs_diff <= 1e-4
    spec = json.loads(result.spec_path.read_text())
    assert spec["name"] == ARCH and spec["preprocess"]["mean"] == [0.5, 0.5, 0.5]
    x = _pixels().permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(load_exported(result.path).predict(x),
                               model.predict_proba(x), atol=1e-5)
