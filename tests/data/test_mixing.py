"""MixUp / CutMix: targets, boxes, seeding, the spec, the Keras layers and the engine's use."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnkit.data.augment import Augment, parse_augment_spec
from cnnkit.data.mixing import CutMix, MixUp, Mixing, is_mixer, with_generator


def _batch(n=8, k=5, size=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g), torch.arange(n) % k


def _gen(seed=1):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_mixup_targets_sum_to_one_and_match_lambda(mode):
    x, y = _batch()
    mixer = Mixing(mixup_alpha=0.4, mode=mode)
    mixed, soft = mixer.mix(x, y, _gen(), num_classes=5)
    draw = mixer.last
    lam, partner = draw["lam"], draw["partner"]
    assert draw["kind"] == "mixup"
    torch.testing.assert_close(soft.sum(1), torch.ones(len(x)))
    one_hot = F.one_hot(y, 5).float()
    expected = lam[:, None] * one_hot + (1 - lam[:, None]) * one_hot[partner]
    torch.testing.assert_close(soft, expected)
    w = lam.view(-1, 1, 1, 1)
    torch.testing.assert_close(mixed, w * x + (1 - w) * x[partner])
    if mode == "batch":
        assert torch.all(lam == lam[0])
    else:
        assert len(torch.unique(lam)) > 1


def test_cutmix_box_area_equals_one_minus_lambda():
    x, y = _batch(n=16, size=20)
    mixer = Mixing(cutmix_alpha=1.0, mode="elem")
    mixed, soft = mixer.mix(x, y, _gen(3), num_classes=5)
    lam, partner = mixer.last["lam"], mixer.last["partner"]
    # random pixels: a pixel equals the partner's only where the box pasted it
    share = (mixed == x[partner]).all(dim=1).float().mean(dim=(1, 2))    # (N,)
    moved = partner != torch.arange(16)
    torch.testing.assert_close(share[moved], (1 - lam)[moved], atol=1e-6, rtol=0)
    assert ((1 - lam)[moved] > 0).any()
    torch.testing.assert_close(soft.sum(1), torch.ones(16))
    # the label weight of each image's own class is lam (partners of another class)
    own = soft[torch.arange(16), y]
    other_class = y[partner] != y
    torch.testing.assert_close(own[other_class], lam[other_class])


def test_cutmix_batch_mode_pastes_one_box_for_the_batch():
    x, y = _batch(n=8, size=16)
    mixer = Mixing(cutmix_alpha=1.0)
    for seed in range(5):
        mixed, _ = mixer.mix(x, y, _gen(seed), num_classes=5)
        if mixer.last["kind"] == "cutmix" and float(mixer.last["lam"][0]) < 1:
            break
    partner = mixer.last["partner"]
    inside = (mixed == x[partner]).all(dim=1)                  # N×H×W
    moved = partner != torch.arange(8)
    assert all(torch.equal(inside[i], inside[moved][0]) for i in torch.nonzero(moved).flatten())
    assert torch.all(mixer.last["lam"] == mixer.last["lam"][0])


def test_mixing_is_reproducible_from_the_seed_and_differs_across_seeds():
    x, y = _batch()
    spec = parse_augment_spec("flip,crop=2,mixup=0.2,cutmix=1.0")
    a = spec.mix_images(x, _gen(7))
    b = spec.mix_images(x, _gen(7))
    c = spec.mix_images(x, _gen(8))
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(spec.mix_targets(y, a[1], 5), spec.mix_targets(y, b[1], 5))
    assert not torch.equal(a[0], c[0])


def test_switch_prob_and_prob_choose_between_mixup_cutmix_and_nothing():
    x, y = _batch()
    kinds = []
    mixer = Mixing(mixup_alpha=0.2, cutmix_alpha=1.0, switch_prob=0.5, prob=0.5)
    g = _gen(0)
    for _ in range(200):
        kinds.append(mixer.mix_images(x, g)[1]["kind"])
    counts = {k: kinds.count(k) for k in ("none", "mixup", "cutmix")}
    assert 70 < counts["none"] < 130 and counts["mixup"] > 25 and counts["cutmix"] > 25
    only_cut = Mixing(cutmix_alpha=1.0)
    assert {only_cut.mix_images(x, g)[1]["kind"] for _ in range(20)} == {"cutmix"}


def test_label_smoothing_of_mixed_targets_is_timms_mixup_target():
    """The loss smooths the mixed rows: equal to mixing smoothed one-hots (timm's mixup_target)."""
    from cnnkit.train.losses import SparseCategoricalCrossentropy
    x, y = _batch()
    mixer = Mixing(mixup_alpha=1.0)
    _, soft = mixer.mix(x, y, _gen(), num_classes=5)
    lam, partner = mixer.last["lam"][0], mixer.last["partner"]
    smoothing, k = 0.1, 5
    off, on = smoothing / k, 1 - smoothing + smoothing / k
    timm_a = torch.full((8, k), off).scatter_(1, y[:, None], on)
    timm_target = lam * timm_a + (1 - lam) * timm_a[partner]
    logits = torch.randn(8, k, generator=_gen(5))
    loss = SparseCategoricalCrossentropy(from_logits=True, label_smoothing=smoothing)
    ours = loss(logits, soft, outputs_are_logits=True)
    theirs = (-timm_target * logits.log_softmax(1)).sum(1).mean()
    torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("spec, message", [
    ("mixup=abc", "not a number"),
    ("mix_prob=0.5", "go with mixup"),
    ("mixup=0.2,mix_mode=pair", "mix mode"),
    ("cutmix=-1", ">= 0"),
    ("mixup=0.2,mix_prob=2", "[0, 1]"),
])
def test_spec_errors_are_one_line(spec, message):
    with pytest.raises(ValueError, match=message) as err:
        parse_augment_spec(spec)
    assert "\n" not in str(err.value)


def test_spec_round_trips_and_keeps_image_ops():
    aug = parse_augment_spec("flip,crop=4,mixup=0.2,cutmix=1.0,switch_prob=0.3")
    assert aug.mixes and is_mixer(aug) and aug.flip == "horizontal" and aug.crop == 4
    assert parse_augment_spec(aug.spec()) == aug
    assert not is_mixer(parse_augment_spec("flip,crop=4"))
    assert is_mixer(with_generator(aug, _gen()))
    assert not is_mixer(with_generator(Augment(flip=True), _gen()))


def test_keras_layers_take_dicts_of_channels_last_images_and_one_hot_labels():
    rng = np.random.default_rng(0)
    images = rng.random((6, 10, 10, 3)).astype("float32")
    labels = np.eye(3, dtype="float32")[[0, 1, 2, 0, 1, 2]]
    for layer in (MixUp(alpha=0.2, seed=1), CutMix(factor=1.0, seed=1)):
        out = layer({"images": images, "labels": labels})
        assert tuple(out["images"].shape) == images.shape
        torch.testing.assert_close(out["labels"].sum(1), torch.ones(6))
        again = type(layer)(seed=1)({"images": images, "labels": labels})
        torch.testing.assert_close(out["images"], again["images"])
        assert layer({"images": images, "labels": labels}, training=False)["labels"] is labels
    with pytest.raises(ValueError, match="one-hot"):
        MixUp()({"images": images, "labels": np.array([0, 1, 2, 0, 1, 2])})


def test_fit_trains_on_soft_targets_with_dominant_label_accuracy(tiny_images):
    import cnnkit
    x, y = tiny_images
    model = cnnkit.Sequential([cnnkit.layers.Input((8, 8, 3)), cnnkit.layers.Flatten(),
                               cnnkit.layers.Dense(4, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    seen = {}
    original = model.loss.per_sample

    def spy(outputs, targets, outputs_are_logits):
        seen.setdefault("targets", targets)
        return original(outputs, targets, outputs_are_logits)
    model.loss.per_sample = spy
    cnnkit.utils.set_random_seed(0)
    hist = model.fit(x, y, epochs=1, batch_size=16, verbose=0,
                     augment=parse_augment_spec("mixup=1.0"))
    targets = seen["targets"]
    assert targets.shape == (16, 4) and targets.is_floating_point()
    torch.testing.assert_close(targets.sum(1), torch.ones(16))
    assert ((targets > 0) & (targets < 1)).any()           # really mixed
    assert 0.0 <= hist.history["accuracy"][0] <= 1.0


def test_keras_spelling_cnnkit_layers_mixup():
    import cnnkit
    assert cnnkit.layers.MixUp is MixUp and cnnkit.layers.CutMix is CutMix
    assert MixUp(alpha=0.3).get_config() == {"alpha": 0.3, "seed": None}
