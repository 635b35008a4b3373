"""The zoo by name: listing, building, parameter counts, the shared head API, preprocessing."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import cnnkit
from cnnkit.models import registry

TORCHVISION = ["resnet18", "resnet34", "resnet50", "mobilenet_v3_large", "mobilenet_v3_small",
               "efficientnet_b0", "convnext_tiny"]
# every registered model without published weights: a model added to the zoo is tested here
# without editing this file (a hand list once missed 'airbench')
SMALL = [n for n in registry.list_models() if not registry.get_entry(n).pretrained]


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def meta_build(name, **kwargs):
    """Build without allocating or initialising weights (parameter counts only)."""
    with torch.device("meta"):
        return registry.build(name, **kwargs)


def test_list_has_every_family_and_filters_by_pattern():
    names = registry.list_models()
    assert set(TORCHVISION) <= set(names)
    assert {"simple-cnn", "mnist-1conv", "mnist-2conv", "seed001-cnn", "lenet5", "vgg-small",
            "resnet-cifar", "airbench"} <= set(SMALL)
    assert names == sorted(names)
    assert registry.list_models("res*") == ["resnet-cifar", "resnet18", "resnet34", "resnet50"]
    assert registry.list_models("mobilenet*") == ["mobilenet_v3_large", "mobilenet_v3_small"]
    assert set(registry.list_models(pretrained=True)) == set(TORCHVISION)


def test_unknown_name_lists_close_matches():
    with pytest.raises(KeyError) as err:
        registry.create("resnet19")
    msg = str(err.value)
    assert "no model called 'resnet19'" in msg and "'resnet18'" in msg and "'resnet50'" in msg
    with pytest.raises(ValueError, match="mobilenet_v3_small"):
        registry.get_entry("mobilnet_v3")


def test_spelling_variants_resolve():
    assert registry.get_entry("ResNet18").name == "resnet18"
    assert registry.get_entry("simple_cnn").name == "simple-cnn"
    assert registry.get_entry("mobilenet-v3-large").name == "mobilenet_v3_large"


@pytest.mark.parametrize("name, expected", [
    ("simple-cnn", 167_562),  # seed 003's Keras summary
    ("mnist-1conv", 54_410),
    ("mnist-2conv", 225_034),
    ("seed001-cnn", 315_722),
    ("lenet5", 61_706),
    ("resnet-cifar", 412_944),  # ResNet-9 at width 16; width 64 is the original's 6.57M
])
def test_tutorial_networks_have_their_published_parameter_counts(name, expected):
    assert n_params(registry.build(name)) == expected


@pytest.mark.parametrize("name, expected", [
    ("resnet18", 11_689_512), ("resnet34", 21_797_672), ("resnet50", 25_557_032),
    ("mobilenet_v3_large", 5_483_032), ("mobilenet_v3_small", 2_542_856),
    ("efficientnet_b0", 5_288_548), ("convnext_tiny", 28_589_128),
])
def test_torchvision_backbones_have_torchvision_parameter_counts(name, expected):
    assert n_params(meta_build(name)) == expected


def test_resnet50_without_top():
    assert n_params(meta_build("resnet50", include_top=False)) == 23_508_032


@pytest.mark.parametrize("name", SMALL)
def test_small_models_share_the_head_api(name):
    entry = registry.get_entry(name)
    h, w, c = entry.input_shape
    net = registry.build(name, num_classes=7).eval()
    x = torch.rand(2, c, h, w)
    feats = net.forward_features(x)
    assert feats.ndim == 4  # (N, C, h, w): Grad-CAM and feature extraction need the map
    assert net.forward_head(feats).shape == (2, 7)
    assert net.forward_head(feats, pre_logits=True).shape == (2, net.num_features)
    assert torch.allclose(net(x), net.forward_head(feats))
    assert net.get_classifier() is net.head
    assert isinstance(net.feature_layer(), torch.nn.Module)
    assert len(net.blocks()) >= 1
    net.reset_classifier(3)
    assert net(x).shape == (2, 3) and net.num_classes == 3
    net.reset_classifier(5, hidden=16, dropout=0.1)
    assert net(x).shape == (2, 5)


@pytest.mark.parametrize("name", [
    "resnet18", "mobilenet_v3_small", "efficientnet_b0", "convnext_tiny",  # one per family
    pytest.param("resnet50", marks=pytest.mark.slow), pytest.param("mobilenet_v3_large", marks=pytest.mark.slow),
])
def test_torchvision_models_share_the_head_api(name):
    net = registry.build(name, num_classes=4).eval()
    x = torch.rand(1, 3, 32, 32)  # small input keeps the test fast
    feats = net.forward_features(x)
    assert feats.ndim == 4
    assert net.forward_head(feats).shape == (1, 4)
    assert net.forward_head(feats, pre_logits=True).shape == (1, net.num_features)
    assert isinstance(net.get_classifier(), torch.nn.Linear)
    # Grad-CAM's target: the last block, whose output is the last feature map
    seen = []
    handle = net.feature_layer().register_forward_hook(lambda m, i, o: seen.append(o.shape))
    net(x)
    handle.remove()
    assert seen[-1] == feats.shape
    net.reset_classifier(2, hidden=8)
    assert net(x).shape == (1, 2)


@pytest.mark.parametrize("name, shape", [
    ("simple-cnn", (28, 28, 1)), ("simple-cnn", (64, 48, 3)), ("lenet5", (32, 32, 1)),
    ("vgg-small", (64, 64, 3)), ("resnet-cifar", (28, 28, 1)), ("seed001-cnn", (40, 40, 3)),
    ("mnist-2conv", (32, 32, 3)),
])
def test_small_models_build_for_other_shapes_and_class_counts(name, shape):
    h, w, c = shape
    net = registry.build(name, num_classes=3, input_shape=shape).eval()
    assert net(torch.rand(2, c, h, w)).shape == (2, 3)


def test_too_small_input_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="too small"):
        registry.build("lenet5", input_shape=(8, 8, 1))


def test_create_returns_a_model_that_records_how_to_rebuild_it():
    model = registry.create("simple-cnn", class_names=list("abcd"))
    assert isinstance(model, cnnkit.Model)
    assert model.architecture == {"kind": "zoo", "name": "simple-cnn",
                                  "kwargs": {"num_classes": 4, "input_shape": [32, 32, 3], "resize": None}}
    assert model.preprocess.config()["scale"] == pytest.approx(1 / 255)
    assert model.preprocess.config()["mean"] is None
    out = model.predict_proba(np.zeros((3, 32, 32, 3), dtype=np.uint8))
    assert out.shape == (3, 4) and np.allclose(out.sum(1), 1, atol=1e-5)


def test_imagenet_backbone_gets_imagenet_preprocessing():
    model = registry.create("resnet18", num_classes=3)
    cfg = model.preprocess.config()
    assert cfg["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert cfg["std"] == pytest.approx([0.229, 0.224, 0.225])
    assert cfg["resize"] is None and cfg["channels"] is None


def test_mnist_into_an_imagenet_backbone_resizes_repeats_channels_and_says_so(caplog):
    with pytest.warns(UserWarning, match="repeats the single channel to 3 and resizes 28x28 images to 32x32"):
        model = registry.create("resnet18", num_classes=10, input_shape=(28, 28, 1))
    cfg = model.preprocess.config()
    assert cfg["channels"] == 3 and cfg["resize"] == [32, 32]
    x = np.random.default_rng(0).integers(0, 255, (4, 28, 28), dtype=np.uint8)  # MNIST-like N×H×W
    assert model.predict(x).shape == (4, 10)


def test_explicit_resize_wins_and_is_recorded():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an explicit choice needs no warning
        model = registry.create("mobilenet_v3_small", num_classes=2, input_shape=(48, 48, 3), resize=(64, 64))
    assert model.preprocess.config()["resize"] == [64, 64]
    assert model.architecture["kwargs"]["resize"] == [64, 64]


def test_saved_zoo_model_reloads_and_predicts_identically(tmp_path):
    model = registry.create("resnet-cifar", num_classes=3, class_names=["a", "b", "c"], width=8)
    x = np.random.default_rng(1).integers(0, 255, (5, 32, 32, 3), dtype=np.uint8)
    model.eval()
    expected = model.predict(x)
    model.save(tmp_path / "m.cnnkit")
    again = cnnkit.load_model(tmp_path / "m.cnnkit")
    assert type(again).__name__ == "ZooModel"
    assert again.class_names == ["a", "b", "c"]
    np.testing.assert_array_equal(again.predict(x), expected)


def test_register_model_adds_a_family():
    @registry.register_model("test-tiny", family="test", input_shape=(8, 8, 3), num_classes=2)
    def tiny(num_classes=2, input_shape=(8, 8, 3)):
        return registry.build("simple-cnn", num_classes=num_classes, input_shape=(16, 16, 3))

    try:
        assert "test-tiny" in registry.list_models("test-*")
        with pytest.raises(ValueError, match="already registered"):
            registry.register_model("test-tiny", family="test")(lambda **kw: None)
    finally:
        registry._REGISTRY.pop("test-tiny", None)


@pytest.mark.slow
def test_resnet_cifar_learns_real_cifar10(shared_datasets):
    """A short run on real CIFAR-10 JPEGs beats chance clearly on held-out images."""
    root = shared_datasets / "cifar10-jpeg" / "train"
    if not root.is_dir():
        pytest.skip(f"CIFAR-10 not found at {root}")
    from PIL import Image

    classes = sorted(p.name for p in root.iterdir())
    rng = np.random.default_rng(0)
    x, y = [], []
    for k, name in enumerate(classes):
        files = sorted((root / name).glob("*.jpg"))[:150]
        x += [np.asarray(Image.open(f).convert("RGB")) for f in files]
        y += [k] * len(files)
    x, y = np.stack(x), np.asarray(y)
    order = rng.permutation(len(y))
    x, y = x[order], y[order]
    cut = int(0.8 * len(y))
    torch.manual_seed(0)
    model = registry.create("resnet-cifar", class_names=classes)
    model.compile(optimizer=cnnkit.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:cut], y[:cut], epochs=2, batch_size=64, verbose=0)
    _, acc = model.evaluate(x[cut:], y[cut:], verbose=0)
    assert acc > 0.2, acc  # chance is 0.10; this run gives ~0.29
