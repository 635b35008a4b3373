"""Weights whose dtypes differ from the model's are refused, naming the tensor (issue 13 item 8).

``load_state_dict`` casts silently (int8 codes become float weights); every load path
(load_model, Model.load_weights, zoo weights files, resume checkpoints) checks first.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

import cnnkit
from cnnkit import layers
from cnnkit.models import registry
from cnnkit.models.saving import ModelFileError
from cnnkit.models.weights import WeightsMismatchError


def _model():
    torch.manual_seed(0)
    return cnnkit.Sequential([layers.Input((8, 8, 3)), layers.Conv2D(4, 3), layers.Flatten(),
                              layers.Dense(2)], name="tiny")


def _as_int8(path, key_part):
    state = load_file(str(path))
    key = next(k for k in state if key_part in k)
    state[key] = state[key].to(torch.int8)
    save_file(state, str(path))
    return key


def test_load_model_and_load_weights_refuse_an_int8_tensor(tmp_path):
    path = _model().save(tmp_path / "m")
    key = _as_int8(path / "model.safetensors", "weight")
    with pytest.raises(ModelFileError, match=rf"{key}: file int8 vs model float32 \(not cast\)"):
        cnnkit.load_model(path)
    fresh = _model()
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    with pytest.raises(ModelFileError, match=key):
        fresh.load_weights(path / "model.safetensors")
    assert all(torch.equal(before[k], v) for k, v in fresh.state_dict().items())  # untouched


def test_a_float64_file_is_refused_too(tmp_path):
    path = _model().save(tmp_path / "m")
    state = {k: v.double() if v.is_floating_point() else v
             for k, v in load_file(str(path / "model.safetensors")).items()}
    save_file(state, str(path / "model.safetensors"))
    with pytest.raises(ModelFileError, match="file float64 vs model float32"):
        cnnkit.load_model(path)


def test_zoo_weights_file_with_wrong_dtype_is_refused(tmp_path):
    model = registry.create("simple-cnn", num_classes=3, input_shape=(16, 16, 3))
    file = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in model.module.state_dict().items()}, str(file))
    key = _as_int8(file, "weight")
    with pytest.raises(WeightsMismatchError, match=rf"dtype.*{key}: file int8 vs model float32"):
        registry.create("simple-cnn", num_classes=3, input_shape=(16, 16, 3), weights=str(file))


def test_a_checkpoint_with_wrong_dtype_is_refused(tmp_path):
    from cnnkit.runs import Checkpoint, restore_training_state
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    tensors = {f"model.{k}": v.clone() for k, v in model.state_dict().items()}
    key = next(k for k in tensors if "weight" in k)
    tensors[key] = tensors[key].to(torch.int8)
    ckpt = Checkpoint(tensors, {"optimizer": {"param_groups": [], "plain_state": {}}},
                      tmp_path / "state.json")
    with pytest.raises(WeightsMismatchError, match=rf"{key[len('model.'):]}: file int8"):
        restore_training_state(ckpt, model=model, optimizer=opt)
