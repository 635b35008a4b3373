"""Class imbalance: balanced class weights, the balanced sampler, focal loss, the warnings."""

from __future__ import annotations

import pytest
import torch

from cnnkit.config import ConfigError, TrainConfig
from cnnkit.run.loader import ResumableLoader
from cnnkit.run.sampler import (balanced_class_weight, balanced_sample_weights,
                                imbalance_warnings)


def _labels():
    # 60 of class 0, 30 of class 1, 10 of class 2
    return torch.tensor([0] * 60 + [1] * 30 + [2] * 10)


def test_balanced_class_weights_are_sklearns_formula():
    weights = balanced_class_weight(_labels(), 3)
    # sklearn.utils.class_weight.compute_class_weight('balanced'): n / (classes * count)
    assert weights == pytest.approx({0: 100 / (3 * 60), 1: 100 / (3 * 30), 2: 100 / (3 * 10)})
    # a class without images is left out (Keras weighs it 1), the others use the classes present
    assert balanced_class_weight(torch.tensor([0, 0, 2]), 3) == pytest.approx({0: 0.75, 2: 1.5})


def _drawn(loader):
    return torch.cat([batch[1] for batch in loader])


def test_balanced_sampler_draws_classes_equally_often_and_is_seeded():
    labels = _labels()
    images = torch.zeros(len(labels), 1, 2, 2, dtype=torch.uint8)
    weights = balanced_sample_weights(labels)

    def loader(seed):
        return ResumableLoader(images, labels, batch_size=10, shuffle=True, seed=seed,
                               sampling_weights=weights, rank=0, world=1)
    a = loader(3)
    drawn = torch.cat([_drawn(a) for _ in range(30)])         # 30 epochs of 100 draws
    share = torch.bincount(drawn, minlength=3).float() / len(drawn)
    torch.testing.assert_close(share, torch.full((3,), 1 / 3), atol=0.03, rtol=0)
    torch.testing.assert_close(_drawn(loader(3)), _drawn(loader(3)))
    assert not torch.equal(_drawn(loader(3)), _drawn(loader(4)))
    plain = ResumableLoader(images, labels, batch_size=10, shuffle=True, seed=3, rank=0, world=1)
    assert torch.bincount(_drawn(plain)).tolist() == [60, 30, 10]


def test_balanced_sampler_resumes_mid_epoch():
    labels = _labels()
    images = torch.arange(len(labels), dtype=torch.uint8).view(-1, 1, 1, 1)
    weights = balanced_sample_weights(labels)
    full = ResumableLoader(images, labels, batch_size=10, shuffle=True, seed=1,
                           sampling_weights=weights, rank=0, world=1)
    next(iter(full))                              # epoch 1 ...
    state = full.epoch_start_state
    whole = [b[0].flatten() for b in full]        # ... epoch 2 from its start, all steps
    resumed = ResumableLoader(images, labels, batch_size=10, shuffle=True, seed=1,
                              sampling_weights=weights, rank=0, world=1)
    resumed.generator.set_state(full.epoch_start_state)
    resumed.skip = 4
    rest = [b[0].flatten() for b in resumed]
    assert state is not None and len(rest) == len(whole) - 4
    for a, b in zip(rest, whole[4:]):
        torch.testing.assert_close(a, b)


def test_warnings_name_rare_classes_and_thin_validation():
    names = ["a", "b", "c", "d"]
    train = torch.tensor([0] * 100 + [1] * 100 + [2] * 90 + [3] * 15)
    val = torch.tensor([0] * 20 + [1] * 20 + [2] * 20 + [3] * 3)
    lines = imbalance_warnings(train, val, names)
    assert len(lines) == 2
    assert "d (15)" in lines[0] and "median of 95" in lines[0] and "--class-weight" in lines[0]
    assert "d (3)" in lines[1] and "fewer than 5" in lines[1]
    assert all("\n" not in line for line in lines)
    assert imbalance_warnings(train[:290], val[:60], names[:3]) == []


def test_config_checks_the_new_choices():
    for name, value in (("class_weight", "inverse"), ("sampler", "uniform"), ("loss", "hinge"),
                        ("tta", "mirror"), ("focal_gamma", -1.0)):
        with pytest.raises(ConfigError, match=name):
            TrainConfig(**{name: value}).validate()


def test_compile_model_uses_focal_loss_with_gamma_and_smoothing():
    from cnnkit.run.build import compile_model, default_model
    from cnnkit.train.keras_losses import CategoricalFocalCrossentropy
    model = compile_model(default_model(), TrainConfig(loss="focal", focal_gamma=3.0,
                                                       label_smoothing=0.1, device="cpu"))
    assert isinstance(model.loss, CategoricalFocalCrossentropy)
    assert model.loss.gamma == 3.0 and model.loss.label_smoothing == 0.1


@pytest.mark.parametrize("setting", [{"class_weight": "balanced"}, {"sampler": "balanced"},
                                     {"loss": "focal"}])
def test_imbalance_options_are_refused_for_a_multi_label_run(setting):
    with pytest.raises(ConfigError, match="single-label"):
        TrainConfig(data="labels.csv", **setting).validate()
    with pytest.raises(ConfigError, match="single-label"):
        TrainConfig(multi_label=True, **setting).validate()


def test_multi_hot_labels_are_counted_per_label():
    from cnnkit.run.sampler import class_counts
    multi_hot = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    assert class_counts(multi_hot, 3).tolist() == [2, 0, 1]
