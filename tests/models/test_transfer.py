"""Transfer learning: a frozen base stays bit-identical (weights AND BatchNorm statistics) while the
head trains, changes once unfrozen; fine_tune's schedule; transfer from a weights file to a folder
of images, saved and reloaded."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

import cnnkit
from cnnkit import applications, layers
from cnnkit.models import registry, transfer
from cnnkit.models.transfer import fine_tune, is_frozen_bn

torch.manual_seed(0)


def _data(n=32, size=32, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), rng.integers(0, classes, n)


def _base_state(model):
    """Every tensor of the base (all but the classifier), BatchNorm buffers included."""
    head = {id(t) for t in model.module.get_classifier().state_dict(keep_vars=True).values()}
    return {k: v.detach().clone() for k, v in model.module.state_dict(keep_vars=True).items() if id(v) not in head}


def _changed(before, model):
    now = model.module.state_dict()
    return [k for k, v in before.items() if not torch.equal(v, now[k])]


def test_frozen_base_is_bit_identical_after_training_the_head_and_changes_after_unfreezing():
    model = transfer.transfer("resnet18", 3, weights=None, input_shape=(16, 16, 3), resize=None)
    x, y = _data(16, size=16)
    before = _base_state(model)
    head_before = model.module.fc.weight.detach().clone()
    assert any(k.endswith("running_mean") for k in before)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)  # the engine calls model.train() every epoch
    assert _changed(before, model) == []  # weights, running_mean/var, num_batches_tracked: untouched
    assert not torch.equal(model.module.fc.weight, head_before)  # while the head did learn
    assert all(is_frozen_bn(m) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))

    model.unfreeze()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")  # Keras: recompile after
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    changed = set(_changed(before, model))
    assert "conv1.weight" in changed and "layer4.1.conv2.weight" in changed
    assert "bn1.running_mean" in changed and "layer4.1.bn2.running_var" in changed
    assert not any(is_frozen_bn(m) for m in model.modules())


def test_frozen_batchnorm_normalises_with_running_statistics_in_train_mode():
    model = registry.create("vgg-small", num_classes=2, dropout=0.0)
    model.trainable = False
    model.train()
    bn = model.module.features[0][1]
    x = torch.rand(4, 3, 32, 32)
    model(x)
    assert not bn.training  # the pre-hook put it back in inference mode before the call
    assert int(bn.num_batches_tracked) == 0
    model.eval()
    expected = model(x)
    model.train()
    torch.testing.assert_close(model(x), expected)


def test_unfreeze_the_last_blocks_only():
    model = transfer.transfer("resnet18", 2, weights=None, input_shape=(32, 32, 3), resize=None)
    model.unfreeze(2)
    net = model.module
    assert all(p.requires_grad for p in net.layer4.parameters())
    assert all(p.requires_grad for p in net.layer3.parameters())
    assert not any(p.requires_grad for p in net.layer2.parameters())
    assert not any(p.requires_grad for p in net.conv1.parameters())
    assert is_frozen_bn(net.bn1) and not is_frozen_bn(net.layer3[0].bn1)
    assert "trainable: layer3, layer4, classifier" in transfer.trainable_report(model)


def test_unfreezing_more_blocks_than_exist_says_how_many_there_are():
    model = transfer.transfer("resnet18", 2, weights=None, input_shape=(32, 32, 3), resize=None)
    with pytest.raises(ValueError, match=r"resnet18 has 5 blocks \(stem, layer1, layer2, layer3, layer4\); "
                                         r"cannot unfreeze 9"):
        model.unfreeze(9)
    x, y = _data(8)
    with pytest.raises(ValueError, match="resnet18 has 5 blocks .*cannot fine-tune 6"):
        fine_tune(model, x, y, blocks=6)
    small = transfer.transfer("simple-cnn", 2, weights=None)
    with pytest.raises(ValueError, match="simple-cnn has 3 blocks"):
        small.unfreeze(4)


def test_discriminative_rates_slow_down_away_from_the_head():
    model = transfer.transfer("resnet18", 2, weights=None, input_shape=(32, 32, 3), resize=None)
    model.unfreeze(2)
    groups = transfer.discriminative_param_groups(model, 1e-3, decay=0.5)
    assert [(g["name"], g["lr"]) for g in groups] == [("head", 1e-3), ("layer4", 5e-4), ("layer3", 2.5e-4)]
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert sum(p.numel() for g in groups for p in g["params"]) == n_trainable


def test_fine_tune_runs_both_stages(caplog):
    model = transfer.transfer("resnet-cifar", 3, weights=None, width=8)
    x, y = _data(24)
    with caplog.at_level(logging.INFO, logger="cnnkit"):
        h1, h2 = fine_tune(model, x, y, head_epochs=1, epochs=1, blocks=2, batch_size=8, verbose=0)
    assert len(h1.history["loss"]) == 1 and len(h2.history["loss"]) == 1
    lrs = sorted({g["lr"] for g in model.optimizer.param_groups})
    assert lrs == pytest.approx([2.5e-5, 5e-5, 1e-4])
    assert "fine_tune stage 2: head lr 0.0001, features.3 lr 5e-05, features.2 lr 2.5e-05" in caplog.text
    assert "training" in caplog.text and "frozen (BatchNorm in inference mode)" in caplog.text


def test_keras_pattern_base_trainable_false_inside_sequential():
    base = applications.ResNet18(weights=None, include_top=False, input_shape=(32, 32, 3), resize=None)
    base.trainable = False
    assert base.trainable is False
    model = cnnkit.Sequential([layers.Input((32, 32, 3)), base, layers.GlobalAveragePooling2D(),
                               layers.Dense(16, activation="relu"), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    before = {k: v.clone() for k, v in base.state_dict().items()}
    x, y = _data(16)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert all(torch.equal(v, base.state_dict()[k]) for k, v in before.items())
    base.trainable = True
    assert base.trainable and not any(is_frozen_bn(m) for m in base.modules())


def test_fine_tune_understands_the_keras_stack():
    base = applications.MobileNetV3Small(weights=None, include_top=False, input_shape=(32, 32, 3), resize=None)
    model = cnnkit.Sequential([layers.Input((32, 32, 3)), base, layers.GlobalAveragePooling2D(),
                               layers.Dense(8, activation="relu"), layers.Dense(2, activation="softmax")])
    names = [n for n, _ in transfer.blocks_of(model)]
    assert names[0] == "mobilenet_v3_small.features.0" and names[-1] == "mobilenet_v3_small.features.12"
    x, y = _data(8, classes=2)
    fine_tune(model, x, y, head_epochs=1, epochs=1, blocks=1, batch_size=8, verbose=0)
    assert all(p.requires_grad for p in base.module.features[12].parameters())
    assert not any(p.requires_grad for p in base.module.features[11].parameters())
    assert all(p.requires_grad for p in model.layers[-2].parameters())  # Dense(8) is head, not base
    assert "trainable: mobilenet_v3_small.features.12, classifier" in transfer.trainable_report(model)


def test_applications_parameter_counts_and_outputs():
    with torch.device("meta"):
        assert applications.ResNet50(weights=None).count_params() == 25_557_032
        assert applications.ResNet50(weights=None, include_top=False).count_params() == 23_508_032
        assert applications.ResNet18(weights=None).count_params() == 11_689_512
        assert applications.MobileNetV3Large(weights=None).count_params() == 5_483_032
        assert applications.EfficientNetB0(weights=None).count_params() == 5_288_548
    base = applications.ResNet18(weights=None, include_top=False, input_shape=(32, 32, 3), pooling="avg")
    feats = base.predict(np.zeros((2, 32, 32, 3), dtype=np.uint8))
    assert feats.shape == (2, 512)  # features, not probabilities
    with pytest.raises(ValueError, match="classes must be 1000"):
        applications.ResNet50(weights="imagenet", classes=10)


def _write_png_folder(root, classes=("red", "green", "blue"), per_class=6, size=12):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            img[..., c] += 180  # the class is the dominant colour: learnable
            Image.fromarray(img).save(root / name / f"{i}.png")
    return root


def _load_folder(root):
    try:
        from cnnkit.data.folder import image_dataset_from_directory
    except ImportError:  # pragma: no cover - before the data module lands
        image_dataset_from_directory = None
    if image_dataset_from_directory is not None:
        return image_dataset_from_directory(root, cache=False, verbose=False, shuffle=False)
    from types import SimpleNamespace

    from PIL import Image

    names = sorted(p.name for p in root.iterdir())
    imgs, labels = [], []
    for k, n in enumerate(names):
        for f in sorted((root / n).glob("*.png")):
            imgs.append(np.asarray(Image.open(f).convert("RGB")))
            labels.append(k)
    return SimpleNamespace(images=torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous(),
                           labels=torch.tensor(labels), class_names=names)


def test_transfer_from_a_weights_file_trains_a_head_on_a_folder_saves_and_reloads(tmp_path):
    # a "pretrained" file the test writes: a 1000-class state dict (its classifier is ignored)
    donor = registry.build("mobilenet_v3_small")
    weights_file = tmp_path / "mobilenet-pretrained.pth"
    torch.save(donor.state_dict(), weights_file)
    ds = _load_folder(_write_png_folder(tmp_path / "photos"))

    model = cnnkit.transfer("mobilenet_v3_small", len(ds.class_names), weights=str(weights_file),
                            input_shape=(12, 12, 3), resize=(32, 32), class_names=ds.class_names)
    assert torch.equal(model.module.features[4].block[0][0].weight, donor.features[4].block[0][0].weight)
    assert model.preprocess.config()["resize"] == [32, 32]
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  learning_rate=1e-2)
    history = model.fit(ds, epochs=2, batch_size=9, verbose=0)
    assert len(history.history["loss"]) == 2
    assert torch.equal(model.module.classifier[0].weight, donor.classifier[0].weight)  # pretrained pre-logits
    assert torch.equal(model.module.features[4].block[0][0].weight, donor.features[4].block[0][0].weight)

    expected = model.predict(ds)
    model.save(tmp_path / "flowers.cnnkit")
    again = cnnkit.load_model(tmp_path / "flowers.cnnkit")
    assert again.class_names == ["blue", "green", "red"]
    assert again.preprocess.config() == model.preprocess.config()
    np.testing.assert_array_equal(again.predict(ds), expected)
