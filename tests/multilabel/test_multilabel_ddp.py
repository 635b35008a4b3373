"""A multi-label run on two processes (`--nproc 2`, gloo): the validation mAP ranks the
scores of the whole split, gathered from both ranks (shards of 12 and 11 images), so the
history matches one process with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from multilabel_builders import write_csv_dataset

pytest.importorskip("torch.distributed")


@pytest.mark.slow  # two training processes: tens of seconds
def test_two_processes_give_the_one_process_val_map(tmp_path):
    from cnnkit.cli import main
    from cnnkit.runs import RunDir
    csv = write_csv_dataset(tmp_path / "data", n=115)
    args = ["train", "--data", str(csv), "--epochs", "2", "--val-split", "0.2", "--no-report",
            "--device", "cpu", "--batch-size", "32", "--verbose", "0"]
    assert main([*args, "--output", str(tmp_path / "one"), "--name", "single"]) == 0
    env = dict(os.environ, CNNKIT_OFFLINE="1", OMP_NUM_THREADS="1", CNNKIT_DEVICE="cpu")
    proc = subprocess.run([sys.executable, "-m", "cnnkit", *args, "--nproc", "2",
                           "--output", str(tmp_path / "two"), "--name", "ddp"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    one, two = (RunDir(tmp_path / d / n).read_history() for d, n in (("one", "single"),
                                                                    ("two", "ddp")))
    for key in ("val_map", "val_accuracy", "val_loss"):
        np.testing.assert_allclose([r[key] for r in two], [r[key] for r in one], rtol=1e-4,
                                   atol=1e-5, err_msg=key)
