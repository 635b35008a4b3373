"""The streaming fallback: a DataLoader decoding files per batch."""

from __future__ import annotations

import warnings

import pytest
import torch

from cnnkit.data.streaming import EpochSampler, stream_from_directory


def test_batches_cover_the_folder(image_folder):
    loader = stream_from_directory(image_folder, (4, 4), batch_size=3, num_workers=0, seed=0)
    assert isinstance(loader, torch.utils.data.DataLoader)
    assert loader.class_names == ["cat", "dog"] and loader.num_samples == 10 and len(loader) == 4
    batches = list(loader)
    assert [len(y) for _, y in batches] == [3, 3, 3, 1]
    x, _ = batches[0]
    assert x.dtype == torch.uint8 and x.shape == (3, 3, 4, 4)
    labels = torch.cat([y for _, y in batches])
    assert sorted(labels.tolist()) == [0] * 4 + [1] * 6


def test_grayscale_batches_without_warnings(image_folder):
    loader = stream_from_directory(image_folder, (4, 4), color_mode="grayscale",
                                   batch_size=10, num_workers=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (x, y), = list(loader)
    assert x.shape == (10, 1, 4, 4)


def test_shuffle_changes_per_epoch_and_repeats_with_the_seed(image_folder):
    def epochs(seed):
        loader = stream_from_directory(image_folder, (4, 4), batch_size=10, num_workers=0,
                                       seed=seed)
        return [next(iter(loader))[0] for _ in range(2)]
    a1, a2 = epochs(1)
    b1, b2 = epochs(1)
    assert torch.equal(a1, b1) and torch.equal(a2, b2) and not torch.equal(a1, a2)
    s = EpochSampler(5, shuffle=False)
    assert list(s) == [0, 1, 2, 3, 4]


def test_bad_files_are_dropped_with_a_warning(image_folder, bad_files):
    bad_files("text", image_folder / "cat" / "zz.png")
    loader = stream_from_directory(image_folder, (4, 4), batch_size=11, num_workers=0,
                                   shuffle=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (x, y), = list(loader)
    assert len(y) == 10 and any("zz.png" in str(w.message) for w in caught)


def test_validation_split_and_workers(image_folder):
    train, val = stream_from_directory(image_folder, (4, 4), batch_size=4, num_workers=1,
                                       validation_split=0.5, subset="both", seed=0)
    assert train.num_samples == 5 and val.num_samples == 5
    assert not val.sampler.shuffle and train.sampler.shuffle
    assert sum(len(y) for _, y in val) == 5
    with pytest.raises(ValueError, match="image_size"):
        stream_from_directory(image_folder, None)
