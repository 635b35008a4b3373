import json

import numpy as np
import pytest
import torch

from cnnkit import runs


def test_run_dir_is_never_reused(tmp_path):
    a = runs.new_run_dir(tmp_path, "exp")
    (a.path / "keep.txt").write_text("mine")
    b = runs.new_run_dir(tmp_path, "exp")
    c = runs.new_run_dir(tmp_path, "exp")
    assert [p.path.name for p in (a, b, c)] == ["exp", "exp-2", "exp-3"]
    assert (a.path / "keep.txt").read_text() == "mine"


def test_run_dir_name_is_sanitised(tmp_path):
    assert runs.new_run_dir(tmp_path, "../a b/c").path.parent == tmp_path


def test_history_round_trip(tmp_path):
    run = runs.new_run_dir(tmp_path, "h")
    rows = [{"epoch": 1, "loss": 0.5, "accuracy": 0.8}, {"epoch": 2, "loss": 0.25, "accuracy": 0.9}]
    run.write_history(rows)
    assert run.read_history() == rows
    assert run.history.read_text().splitlines()[0] == "epoch,loss,accuracy"


def _setup():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(5, 4)).sum().backward()
        opt.step()
    return net, opt


def test_checkpoint_round_trip_restores_weights_optimizer_and_rngs(tmp_path):
    run = runs.new_run_dir(tmp_path, "ck")
    net, opt = _setup()
    gen = torch.Generator().manual_seed(5)
    torch.rand(3, generator=gen)
    np.random.seed(3)
    runs.save_checkpoint(run, model=net, optimizer=opt, epoch=2, step=7, generators={"g": gen},
                         loader_state=gen.get_state(), extra={"history": [{"epoch": 1}]})
    expected = (torch.rand(4), torch.rand(4, generator=gen), np.random.rand(2))
    exp_opt = opt.state_dict()

    net2, opt2 = _setup()
    for p in net2.parameters():
        p.data.zero_()
    gen2 = torch.Generator().manual_seed(99)
    torch.manual_seed(123)
    ckpt = runs.load_checkpoint(run)
    assert (ckpt.epoch, ckpt.step, ckpt.meta["history"]) == (2, 7, [{"epoch": 1}])
    runs.restore_training_state(ckpt, model=net2, optimizer=opt2)
    runs.set_rng_state(ckpt.tensors, ckpt.meta["rng"], {"g": gen2})
    for a, b in zip(net.state_dict().values(), net2.state_dict().values()):
        assert torch.equal(a, b)
    got = opt2.state_dict()
    for idx, state in exp_opt["state"].items():
        for key, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(got["state"][idx][key]))
    assert got["param_groups"][0]["lr"] == exp_opt["param_groups"][0]["lr"]
    assert torch.equal(torch.rand(4), expected[0])
    assert torch.equal(torch.rand(4, generator=gen2), expected[1])
    assert np.array_equal(np.random.rand(2), expected[2])


def test_checkpoint_has_no_pickle_and_old_files_are_dropped(tmp_path):
    run = runs.new_run_dir(tmp_path, "ck")
    net, opt = _setup()
    runs.save_checkpoint(run, model=net, optimizer=opt, epoch=1)
    runs.save_checkpoint(run, model=net, optimizer=opt, epoch=2)
    files = sorted(p.name for p in run.checkpoint.iterdir())  # model-*, state-*, state.json
    assert len(files) == 3 and "state.json" in files
    assert all(f.endswith((".json", ".safetensors")) for f in files)
    assert json.loads((run.checkpoint / "state.json").read_text())["epoch"] == 2


def test_missing_or_corrupt_checkpoint_is_refused(tmp_path):
    run = runs.new_run_dir(tmp_path, "ck")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        runs.load_checkpoint(run)
    net, opt = _setup()
    runs.save_checkpoint(run, model=net, optimizer=opt, epoch=1)
    tensors = next(run.checkpoint.glob("state-*.safetensors"))
    tensors.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupt"):
        runs.load_checkpoint(run)
    (run.checkpoint / "state.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt"):
        runs.load_checkpoint(run)


def test_environment_records_versions_and_seed():
    env = runs.environment(seed=7, device="cpu")
    assert env["seed"] == 7 and env["device"] == "cpu"
    assert {"python", "torch", "numpy", "cnnkit"} <= set(env)


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_checkpoint_keeps_channels_last_optimizer_state_for_fused_updates(tmp_path, kind):
    """Fused CPU optimizers read parameter, gradient and moments as flat memory: moments
    restored contiguous next to a channels_last weight would be scrambled on the next step."""
    def setup():
        torch.manual_seed(0)
        net = torch.nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)
        opt = (torch.optim.Adam(net.parameters(), lr=0.01, fused=True) if kind == "adam" else
               torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, fused=True))
        return net, opt

    def step(net, opt, seed):
        x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(seed))
        opt.zero_grad()
        net(x.contiguous(memory_format=torch.channels_last)).square().sum().backward()
        opt.step()

    net, opt = setup()
    step(net, opt, 1)
    run = runs.new_run_dir(tmp_path, "cl")
    runs.save_checkpoint(run, model=net, optimizer=opt, epoch=1)
    net2, opt2 = setup()
    runs.restore_training_state(runs.load_checkpoint(run), model=net2, optimizer=opt2)
    step(net, opt, 2)
    step(net2, opt2, 2)
    assert torch.equal(net.weight, net2.weight) and torch.equal(net.bias, net2.bias)
