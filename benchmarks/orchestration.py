"""What the code around the training loop costs: start-up, evaluation + report, copies, writes.

    CNNKIT_THREADS=1 PYTHONPATH=src python benchmarks/orchestration.py [--images 2000]
        [--epochs 3] [--json out.json]

Measures (issue 16's "must show"):

- ``cnnkit --help`` and ``cnnkit train --help`` wall time (median of 5 fresh processes), and
  whether either imported torch;
- a small folder run (``--images`` CIFAR-10 JPEGs copied into a temporary class folder, the
  default model for a folder (simple-cnn), ``--epochs`` epochs, in this process): seconds of
  training (metrics.json's ``train_seconds``), of the final evaluation
  (``evaluate_seconds``) and of the pictures + report.html (``report_seconds``), and the
  ratio (evaluation + report) / training;
- weight writes per epoch: ``safetensors.torch.save_file`` calls that write a model's weights
  (the model-file format: checkpoint model files, best/, last/), and the other safetensors
  files (the checkpoint's optimizer/RNG state), divided by epochs;
- the NaN guard: state copies it makes per epoch and the buffers it allocates
  (``train.last_good.LastGood``; before it, ``engine._snapshot`` allocated a new CPU state
  dict every epoch);
- image-tensor copies: every torch op whose uint8 output holds at least one whole image is
  counted (a ``TorchDispatchMode``), as ops and as "whole-dataset equivalents" (output
  elements / the dataset's elements): while the folder is loaded (the split's one gather),
  once at the start of training (``setup_``) and per training epoch (untimed runs of 1 and
  2 epochs; the shuffle's gather of the batches is one training set per epoch).

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
CIFAR = Path(os.environ.get("CNNKIT_CIFAR10_JPEG",
                            REPO.parent / "shared" / "datasets" / "cifar10-jpeg" / "train"))


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
    """Counts torch ops whose uint8 output is whole images of ``image_numel`` (one or more)."""

    def __init__(self, image_numel: int):
        from torch.utils._python_dispatch import TorchDispatchMode
        counter = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                for t in out if isinstance(out, (list, tuple)) else [out]:
                    if getattr(t, "dtype", None) is not None and str(t.dtype) == "torch.uint8" \
                            and t.numel() >= image_numel and t.numel() % image_numel == 0 \
                            and "view" not in str(func) \
                            and not str(func).startswith(("aten.alias", "aten.detach", "aten.lift_fresh")) \
                            and not str(func).startswith("aten.slice") \
                            and not str(func).startswith("aten.permute") \
                            and not str(func).startswith("aten.unsqueeze"):
                        counter.ops.append((str(func), t.numel()))
                return out

        self.ops: list[tuple[str, int]] = []
        self.mode = Mode()


class Counting:
    """Wraps ``module.name`` (where it exists) to count its calls; ``undo()`` puts it back."""

    def __init__(self):
        self.counts: dict[str, int] = {}
        self._undo = []

    def wrap(self, module, name: str, key: str, when=lambda *a, **k: True):
        original = getattr(module, name, None)
        if original is None:
            return
        self.counts.setdefault(key, 0)

        def counting(*a, **k):
            if when(*a, **k):
                self.counts[key] += 1
            return original(*a, **k)

        setattr(module, name, counting)
        self._undo.append((module, name, original))

    def undo(self):
        for module, name, original in reversed(self._undo):
            setattr(module, name, original)
        self._undo = []


def _count_writes(counting: Counting) -> None:
    """Counts ``save_file`` calls everywhere cnnkit imported it: files holding the model's
    weights (checkpoint model files, best/, last/; before the split, every checkpoint state
    file) and the others."""
    import safetensors.torch as st
    save_file = st.save_file
    counting.counts.update(weight_files=0, state_files=0)

    def counting_save(tensors, filename, metadata=None):
        weights = (metadata or {}).get("format") == "cnnkit-model" or \
            any(k.startswith("model.") for k in tensors)  # (a version 1 checkpoint's state file)
        counting.counts["weight_files" if weights else "state_files"] += 1
        return save_file(tensors, filename, metadata=metadata)

    for name, mod in [("safetensors.torch", st), *list(sys.modules.items())]:
        if (name == "safetensors.torch" or name.startswith("cnnkit")) and \
                getattr(mod, "save_file", None) is save_file:
            setattr(mod, "save_file", counting_save)
            counting._undo.append((mod, "save_file", save_file))


def _count_nan_guard(counting: Counting) -> None:
    from cnnkit.train import engine
    counting.wrap(engine, "_snapshot", "nan_guard_allocations")  # before LastGood
    try:
        from cnnkit.train import last_good
    except ImportError:
        return
    counting.wrap(last_good.LastGood, "__init__", "nan_guard_allocations")
    counting.wrap(last_good.LastGood, "keep", "nan_guard_copies")


def folder_run(n_images: int, epochs: int, work: Path) -> dict:
    os.environ["CNNKIT_CACHE"] = str(work / "cache")
    os.environ.setdefault("CNNKIT_THREADS", "1")
    sys.path.insert(0, str(REPO / "src"))
    import torch  # noqa: F401

    from cnnkit import experiment
    from cnnkit.config import TrainConfig

    folder = make_folder(work / "cifar-small", n_images)
    cfg = dict(data=str(folder), epochs=epochs, output=str(work / "runs"), verbose="0",
               device="cpu", seed=0)
    experiment.load_data(TrainConfig(**cfg).validate())  # decode once into the cache

    # copies while loading (cache warm, as in every run but the first)
    image_numel = 3 * 32 * 32
    counter = CopyCounter(image_numel)
    with counter.mode:
        data = experiment.load_data(TrainConfig(**cfg).validate())
    dataset_numel = sum(len(s[0]) for s in (data.train, data.val, data.test) if s is not None) \
        * image_numel
    load_ops = list(counter.ops)

    # copies per training epoch: untimed runs of 1 and 2 epochs without report (the tracer is
    # slow); the difference is one epoch, the 1-epoch run less the load is the one-time setup
    runs_ops = []
    for n_epochs in (1, 2):
        counter = CopyCounter(image_numel)
        with counter.mode:
            experiment.train(TrainConfig(**{**cfg, "epochs": n_epochs}, name="copies",
                                         report=False), log=lambda *a: None)
        runs_ops.append(counter.ops)
    train_images = len(data.train[0]) * image_numel

    def datasets(ops, over=dataset_numel):
        return round(sum(n for _, n in ops) / over, 2)

    load_numel = sum(n for _, n in load_ops)
    epoch_numel = sum(n for _, n in runs_ops[1]) - sum(n for _, n in runs_ops[0])

    counting = Counting()
    import cnnkit.run.checkpoint  # noqa: F401 - imported, so that its save_file is counted
    import cnnkit.models.saving  # noqa: F401
    _count_writes(counting)
    _count_nan_guard(counting)
    from cnnkit.run import report as run_report
    finish, finish_cpu = run_report.finish, [0.0]

    def timed_finish(*a, **k):  # CPU seconds too: wall seconds on a busy machine wander
        c0 = time.process_time()
        try:
            return finish(*a, **k)
        finally:
            finish_cpu[0] += time.process_time() - c0

    run_report.finish = timed_finish
    lines: list[str] = []
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        result = experiment.train(TrainConfig(**cfg, name="bench"), log=lines.append)
    finally:
        counting.undo()
        run_report.finish = finish
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    metrics = json.loads((Path(result.run.path) / "metrics.json").read_text())
    epochs_run = metrics["epochs_run"]
    train_s, eval_s = metrics["train_seconds"], metrics["evaluate_seconds"]
    report_s = metrics.get("report_seconds")
    c = counting.counts
    per_epoch = lambda n: round(n / epochs_run, 2)  # noqa: E731
    return {
        "images": n_images, "epochs": epochs_run, "wall_s": round(wall, 2),
        "train_s": train_s, "evaluate_s": eval_s, "report_s": report_s,
        "eval_report_over_train": round((eval_s + (report_s or 0)) / train_s, 3),
        "cpu_train_s": round(cpu - finish_cpu[0], 2),  # the whole call less the finish
        "cpu_eval_report_s": round(finish_cpu[0], 2),
        "cpu_eval_report_over_train": round(finish_cpu[0] / (cpu - finish_cpu[0]), 3),
        "weight_writes_per_epoch": per_epoch(c.get("weight_files", 0)),
        "state_files_per_epoch": per_epoch(c.get("state_files", 0)),
        "nan_guard_allocations": c.get("nan_guard_allocations", 0),
        "nan_guard_copies_per_epoch": per_epoch(c.get("nan_guard_copies", 0)
                                                or max(c.get("nan_guard_allocations", 0) - 1, 0)),
        "load_copy_ops": len(load_ops),
        "load_copied_datasets": datasets(load_ops),
        "load_copy_op_names": sorted({name for name, _ in load_ops}),
        # the 1-epoch run less the folder load and one epoch: what training copies once
        "setup_copied_datasets": round((sum(n for _, n in runs_ops[0]) - load_numel
                                        - epoch_numel) / dataset_numel, 2),
        "epoch_copy_ops": len(runs_ops[1]) - len(runs_ops[0]),
        "epoch_copied_train_sets": round(epoch_numel / train_images, 2),
        "epoch_copy_op_names": sorted({name for name, _ in runs_ops[1][len(runs_ops[0]):]}),
        "log_tail": lines[-2:],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--skip-run", action="store_true", help="only the --help timings")
    args = ap.parse_args()
    out = {}
    out["help_s"], out["help_imports_torch"] = help_seconds(["--help"])
    out["train_help_s"], out["train_help_imports_torch"] = help_seconds(["train", "--help"])
    if not args.skip_run:
        with tempfile.TemporaryDirectory(prefix="cnnkit-orch-") as tmp:
            out["folder_run"] = folder_run(args.images, args.epochs, Path(tmp))
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
