"""Data-parallel training: two CPU processes (gloo) give the same weights as one process with
the same global batch; the sharded loader splits every global batch exactly."""

from __future__ import annotations

import gc
import os
import socket
import sys

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from cnnkit import distributed
from cnnkit.data.loader import InMemoryLoader

GLOBAL_BATCH = 16
N = 64  # a multiple of the global batch: every rank sees equal shares, no padding
EPOCHS = 2


def tiny_data():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, size=(N, 8, 8, 3), dtype=np.uint8)
    y = (np.arange(N) % 4).astype(np.int64)
    return x, y


def tiny_model():
    """No BatchNorm (its statistics are per rank), no dropout: DDP equals one process exactly."""
    import cnnkit
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(8 * 4 * 4, 4))
    model = cnnkit.Model(net, input_shape=(8, 8, 3))
    model.compile(optimizer="sgd", learning_rate=0.1, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], device="cpu")
    return model


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_objects() -> int:
    return sum(isinstance(o, nn.parallel.DistributedDataParallel) for o in gc.get_objects())


def _worker(rank: int, world: int, port: int, out_dir: str):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    assert distributed.init(device_type="cpu")
    try:
        x, y = tiny_data()
        model = tiny_model()
        hist = distributed.fit(model, x, y, batch_size=GLOBAL_BATCH, epochs=EPOCHS, seed=3,
                               validation_data=(x[:20], y[:20]), verbose=0)
    finally:
        distributed.shutdown()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    # data parallelism is a callback: no DDP wrapper exists and forward was never patched
    released = _ddp_objects() == 0 and "forward" not in model.__dict__
    torch.save({"state": state, "history": hist.history, "keys": list(model.state_dict()),
                "released": released}, os.path.join(out_dir, f"rank{rank}.pt"))
    distributed.exit_rank(0)  # as cnnkit train's ranks end: no interpreter finalization


@pytest.fixture(scope="module")
def two_rank_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    os.environ["PYTHONFAULTHANDLER"] = "1"  # the ranks print where they were if one aborts
    mp.start_processes(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True,
                       start_method="spawn")
    return [torch.load(out / f"rank{r}.pt") for r in range(2)]


def test_two_processes_match_one_process_with_the_same_global_batch(two_rank_result):
    x, y = tiny_data()
    single = tiny_model()
    hist = single.fit(x, y, batch_size=GLOBAL_BATCH, epochs=EPOCHS, seed=3, verbose=0,
                      validation_data=(x[:20], y[:20]))
    for rank_result in two_rank_result:
        assert rank_result["released"], "a DDP wrapper or a patched forward was left behind"
        assert rank_result["keys"] == list(single.state_dict())  # plain keys: no DDP prefix
        for k, v in single.state_dict().items():
            torch.testing.assert_close(rank_result["state"][k], v, rtol=1e-4, atol=1e-5)
    # metrics are reduced across ranks: both ranks report the single-process numbers
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        for rank_result in two_rank_result:
            np.testing.assert_allclose(rank_result["history"][key], hist.history[key], rtol=1e-4,
                                       atol=1e-5)


def test_sharded_loader_splits_each_global_batch():
    images = torch.arange(40).view(40, 1, 1, 1).to(torch.uint8)
    labels = torch.arange(40)
    single = InMemoryLoader(images, labels, batch_size=8, shuffle=True, seed=5)
    shards = [distributed.ShardedLoader(images, labels, batch_size=8, shuffle=True, seed=5,
                                        rank=r, world=2) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == len(single) == 5
    for (_, y_all), (_, y0), (_, y1) in zip(single, *shards):
        assert len(y0) == len(y1) == 4
        assert sorted(torch.cat([y0, y1]).tolist()) == sorted(y_all.tolist())


def test_sharded_loader_pads_to_equal_shares():
    images = torch.zeros(7, 1, 2, 2, dtype=torch.uint8)
    labels = torch.arange(7)
    shards = [list(distributed.ShardedLoader(images, labels, batch_size=4, rank=r, world=2))
              for r in range(2)]
    assert [len(b[1]) for b in shards[0]] == [len(b[1]) for b in shards[1]] == [2, 2]
    seen = torch.cat([b[1] for s in shards for b in s])
    assert set(seen.tolist()) == set(range(7))  # one sample repeated to fill the last share


def test_sharded_loader_rounds_the_global_batch_to_the_world():
    with pytest.warns(UserWarning, match="multiple of 2"):
        loader = distributed.ShardedLoader(torch.zeros(8, 1, 1, 1), torch.arange(8), batch_size=5,
                                           rank=0, world=2)
    assert loader.batch_size == 6 and loader.local_batch_size == 3


def test_single_process_helpers():
    assert not distributed.is_distributed()
    assert distributed.rank() == 0 and distributed.world_size() == 1
    assert distributed.is_main_process()
    assert distributed.init() is False  # no torchrun environment: nothing to join
    assert distributed.all_reduce_sum([1.0, 2.0]) == [1.0, 2.0]


def test_launch_command_runs_torchrun():
    cmd = distributed.launch_command(2, ["train", "--recipe", "fast"])
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--nproc-per-node=2" in cmd and "--standalone" in cmd
    assert cmd[-5:] == ["-m", "cnnkit", "train", "--recipe", "fast"]
    with pytest.raises(ValueError):
        distributed.launch(0, ["train"])


def test_exit_rank_flushes_and_keeps_the_exit_code():
    import subprocess
    code = ("from cnnkit import distributed; import sys; print('done', end=''); "
            "sys.stderr.write('warned'); distributed.exit_rank(3)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"},
                          timeout=120)  # stdout to a pipe: block-buffered
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "done", "warned")
    assert not distributed.launched_as_rank()  # WORLD_SIZE unset here
