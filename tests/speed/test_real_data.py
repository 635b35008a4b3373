"""Recipes on the real datasets, and a recipe under torchrun on two processes (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cnnkit import recipes

pytestmark = pytest.mark.slow


def test_mnist_fast_reaches_99_percent_on_held_out_digits(shared_datasets):
    from cnnkit.data.idx import read_idx
    x = read_idx(shared_datasets / "mnist" / "train-images-idx3-ubyte.gz")
    y = read_idx(shared_datasets / "mnist" / "train-labels-idx1-ubyte.gz").astype(np.int64)
    run = recipes.run_recipe("mnist-fast", train=(x[:-10000], y[:-10000]),
                             val=(x[-10000:], y[-10000:]), device="cpu", verbose=0)
    assert run.accuracy >= 0.99, run.history


def test_fast_recipe_learns_cifar10_in_one_epoch(shared_datasets):
    from cnnkit.data.folder import image_dataset_from_directory
    ds = image_dataset_from_directory(shared_datasets / "cifar10-jpeg" / "train", shuffle=False,
                                      verbose=False)
    labels = ds.labels.numpy()
    val = np.zeros(len(labels), bool)
    for c in range(10):  # the last 1,000 images of each class are held out
        val[np.flatnonzero(labels == c)[-1000:]] = True
    run = recipes.run_recipe("fast", train=(ds.images[~val], ds.labels[~val]),
                             val=(ds.images[val], ds.labels[val]), epochs=1, device="cpu",
                             verbose=0)
    assert run.accuracy >= 0.5, run.history


SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from importlib import resources
    from cnnkit import distributed, recipes
    assert distributed.init()
    with resources.files("cnnkit.data").joinpath("bundled/mnist_small.npz").open("rb") as f:
        d = np.load(f)
        x, y, vx, vy = d["x_train"], d["y_train"].astype(np.int64), d["x_test"], d["y_test"]
    run = recipes.run_recipe("mnist-fast", train=(x, y), val=(vx, vy), epochs=1, device="cpu",
                             batch_size=256, verbose=0)
    if distributed.is_main_process():
        json.dump({"acc": run.accuracy, "steps": run.history[-1]["step"],
                   "world": distributed.world_size()}, open(sys.argv[1], "w"))
    distributed.shutdown()
""")


def test_recipe_under_torchrun_on_two_cpu_processes(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    out = tmp_path / "result.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--standalone",
           str(script), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["world"] == 2
    assert result["steps"] == 6000 // 256  # global steps: each rank took half of each batch
    assert result["acc"] > 0.8
