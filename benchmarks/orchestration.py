"""What the code around the training loop costs: start-up, evaluation + report, copies, writes.

    CNNKIT_THREADS=1 PYTHONPATH=src python benchmarks/orchestration.py [--images 2000] [--json out.json]

Measures (issue 16's "must show"):

- ``cnnkit --help`` and ``cnnkit train --help`` wall time (median of 5 fresh processes), and
  whether either imported torch;
- a small folder run (``--images`` CIFAR-10 JPEGs copied into a temporary class folder,
  simple-cnn, 2 epochs, in this process): seconds of training (metrics.json's
  ``train_seconds``) against seconds of evaluation + report (the run's last lines say it);
- image-tensor copies while the folder is loaded: every torch op whose uint8 output holds at
  least one whole image is counted (a ``TorchDispatchMode``), as ops and as "whole-dataset
  equivalents" (output bytes / the dataset's bytes);
- weight writes per epoch: ``safetensors.torch.save_file`` calls (best/, last/, checkpoint)
  and full state-dict snapshots the engine takes (``engine._snapshot``), divided by epochs.

The folder is decoded once into a private cache first, so the timed run reads the cache.
Numbers on a shared machine are indicative; run it twice and compare like with like.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CIFAR = REPO.parent / "shared" / "datasets" / "cifar10-jpeg" / "train"


def help_seconds(args: list[str], repeat: int = 5) -> tuple[float, bool]:
    """Median wall seconds of ``python -m cnnkit ARGS`` and whether torch got imported."""
    times = []
    probe = ("import runpy, sys; sys.argv = ['cnnkit', *sys.argv[1:]]\n"
             "try:\n    runpy.run_module('cnnkit', run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "print('TORCH' if 'torch' in sys.modules else 'NOTORCH', file=sys.stderr)")
    torch_loaded = False
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True,
                              text=True, env=dict(os.environ, PYTHONPATH=str(REPO / "src")))
        times.append(time.perf_counter() - t0)
        torch_loaded = "NOTORCH" not in proc.stderr
    return statistics.median(times), torch_loaded


def make_folder(root: Path, n: int) -> Path:
    """``n`` CIFAR-10 JPEGs, the same number per class, as root/<class>/*.jpg."""
    classes = sorted(p.name for p in CIFAR.iterdir() if p.is_dir())
    per = n // len(classes)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for f in sorted((CIFAR / c).iterdir())[:per]:
            shutil.copyfile(f, root / c / f.name)
    return root


class CopyCounter:
    """Counts torch ops whose uint8 output holds at least one image of ``image_numel``."""

    def __init__(self, image_numel: int):
        from torch.utils._python_dispatch import TorchDispatchMode
        counter = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                for t in out if isinstance(out, (list, tuple)) else [out]:
                    if getattr(t, "dtype", None) is not None and str(t.dtype) == "torch.uint8" \
                            and t.numel() >= image_numel and "view" not in str(func) \
                            and not str(func).startswith(("aten.alias", "aten.detach", "aten.lift_fresh")) \
                            and not str(func).startswith("aten.slice") \
                            and not str(func).startswith("aten.permute") \
                            and not str(func).startswith("aten.unsqueeze"):
                        counter.ops.append((str(func), t.numel()))
                return out

        self.ops: list[tuple[str, int]] = []
        self.mode = Mode()


def folder_run(n_images: int, work: Path) -> dict:
    os.environ["CNNKIT_CACHE"] = str(work / "cache")
    os.environ.setdefault("CNNKIT_THREADS", "1")
    sys.path.insert(0, str(REPO / "src"))
    import safetensors.torch as st
    import torch  # noqa: F401

    from cnnkit import experiment
    from cnnkit.config import TrainConfig
    from cnnkit.train import engine

    folder = make_folder(work / "cifar-small", n_images)
    cfg = dict(data=str(folder), model="simple-cnn", epochs=2, output=str(work / "runs"),
               verbose="0", device="cpu", seed=0)
    experiment.load_data(TrainConfig(**cfg).validate())  # decode once into the cache

    # copies while loading (cache warm, as in every run but the first)
    counter = CopyCounter(3 * 32 * 32)
    with counter.mode:
        data = experiment.load_data(TrainConfig(**cfg).validate())
    dataset_numel = sum(len(s[0]) for s in (data.train, data.val, data.test) if s is not None) \
        * 3 * 32 * 32

    writes, snapshots = [0], [0]
    save_file, snapshot = st.save_file, engine._snapshot

    def counting_save(*a, **k):
        writes[0] += 1
        return save_file(*a, **k)

    def counting_snapshot(*a, **k):
        snapshots[0] += 1
        return snapshot(*a, **k)

    patched = []
    for mod in list(sys.modules.values()):
        if getattr(mod, "save_file", None) is save_file and mod.__name__.startswith("cnnkit"):
            mod.save_file = counting_save
            patched.append(mod)
    st.save_file = counting_save
    engine._snapshot = counting_snapshot
    lines: list[str] = []
    t0 = time.perf_counter()
    try:
        result = experiment.train(TrainConfig(**cfg, name="bench"), log=lines.append)
    finally:
        st.save_file, engine._snapshot = save_file, snapshot
        for mod in patched:
            mod.save_file = save_file
    wall = time.perf_counter() - t0
    metrics = json.loads((Path(result.run.path) / "metrics.json").read_text())
    text = "\n".join(lines)
    match = re.search(r"evaluation and report took ([0-9.]+)s", text)
    eval_report = float(match.group(1)) if match else None
    epochs = metrics["epochs_run"]
    return {
        "images": n_images, "epochs": epochs, "wall_s": round(wall, 2),
        "train_s": metrics["train_seconds"], "eval_report_s": eval_report,
        "eval_report_over_train": round(eval_report / metrics["train_seconds"], 3)
        if eval_report else None,
        "load_copy_ops": len(counter.ops),
        "load_copied_datasets": round(sum(n for _, n in counter.ops) / dataset_numel, 2),
        "load_copy_op_names": sorted({name for name, _ in counter.ops}),
        "safetensors_writes": writes[0], "state_snapshots": snapshots[0],
        "weight_writes_per_epoch": round((writes[0] + snapshots[0]) / epochs, 2),
        "log_tail": lines[-3:],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--skip-run", action="store_true", help="only the --help timings")
    args = ap.parse_args()
    out = {}
    out["help_s"], out["help_imports_torch"] = help_seconds(["--help"])
    out["train_help_s"], out["train_help_imports_torch"] = help_seconds(["train", "--help"])
    if not args.skip_run:
        with tempfile.TemporaryDirectory(prefix="cnnkit-orch-") as tmp:
            out["folder_run"] = folder_run(args.images, Path(tmp))
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
