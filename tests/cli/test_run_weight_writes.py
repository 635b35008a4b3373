"""A run serialises its weights once per epoch: the checkpoint's model file, to which best/
and last/ are hard links; old (version 1) checkpoints still resume; the NaN guard keeps its
copy in buffers allocated once."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import load_file, save_file

from cnnkit import runs


@pytest.fixture
def weight_writes(monkeypatch):
    """Counts the safetensors files written that hold a model's weights (model format)."""
    import safetensors.torch as st

    from cnnkit.models import saving
    from cnnkit.run import checkpoint
    written = []
    original = st.save_file

    def counting(tensors, filename, metadata=None):
        if (metadata or {}).get("format") == saving.FORMAT:
            written.append(filename)
        return original(tensors, filename, metadata=metadata)

    for module in (st, saving, checkpoint):
        monkeypatch.setattr(module, "save_file", counting)
    return written


def _train(tmp_path, **kw):
    from cnnkit.config import TrainConfig
    from cnnkit.experiment import train
    cfg = TrainConfig(limit=256, model="mnist-1conv", batch_size=32, verbose="0", report=False,
                      output=str(tmp_path), name="w", device="cpu", **kw)
    return train(cfg, log=lambda *a: None)


def test_one_weight_write_per_epoch_best_and_last_are_links(tmp_path, weight_writes):
    result = _train(tmp_path, epochs=3)
    run = result.run
    assert len(weight_writes) == 3  # one per epoch; best/ and last/ add none
    best, last = run.best / "model.safetensors", run.last / "model.safetensors"
    ckpt = runs.load_checkpoint(run)
    assert os.stat(last).st_ino == os.stat(ckpt.model_file).st_ino
    metrics = json.loads(run.metrics.read_text())
    if metrics["weights_epoch"] == 3:
        assert os.stat(best).st_ino == os.stat(last).st_ino
    from cnnkit.models.saving import load_model
    for folder in (run.best, run.last):  # each is a whole model folder
        assert load_model(folder).count_params() == result.model.count_params()
    final = {k: v.cpu() for k, v in result.model.state_dict().items()}
    assert all(torch.equal(final[k], v) for k, v in load_file(str(last)).items())


def test_best_is_written_only_in_epochs_without_a_checkpoint(tmp_path, weight_writes):
    _train(tmp_path, epochs=3, checkpoint_every=2)
    # epochs 2 and 3 checkpoint (3: the end); epoch 1 writes best/ only if it improved (it did:
    # the first epoch always does)
    assert len(weight_writes) == 3
    assert any(str(tmp_path / "w" / ".best.") in w for w in weight_writes)


def test_a_version_1_checkpoint_still_loads(tmp_path):
    """Weights inside the state file as ``model.*`` (before the model file was split out)."""
    run = runs.new_run_dir(tmp_path, "v1")
    run.checkpoint.mkdir()
    net = torch.nn.Linear(3, 2)
    save_file({f"model.{k}": v.detach().clone() for k, v in net.state_dict().items()},
              str(run.checkpoint / "state-a.safetensors"))
    (run.checkpoint / "state.json").write_text(json.dumps(
        {"format": runs.CHECKPOINT_FORMAT, "version": 1, "epoch": 1, "step": 0,
         "tensors": "state-a.safetensors", "optimizer": {}, "rng": {}}))
    ckpt = runs.load_checkpoint(run)
    assert ckpt.model_file is None
    assert torch.equal(ckpt.group("model")["weight"], net.weight.detach())


def test_nan_guard_copies_into_buffers_allocated_once():
    from cnnkit.train.last_good import LastGood
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    guard = LastGood(net)
    where = {k: b.data_ptr() for k, b in guard.buffers.items()}
    with torch.no_grad():
        net[0].weight.add_(1.0)
    guard.keep()
    kept = net[0].weight.detach().clone()
    assert {k: b.data_ptr() for k, b in guard.buffers.items()} == where  # refreshed in place
    with torch.no_grad():
        net[0].weight.fill_(float("nan"))
    guard.restore()
    assert torch.equal(net[0].weight.detach(), kept)
