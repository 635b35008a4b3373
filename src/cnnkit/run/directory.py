"""Run directories: everything one training run leaves behind::

    runs/<name>/                 never overwritten: a second run gets <name>-2, <name>-3, ...
      config.json  config.toml   the resolved settings (``cnnkit train --config config.toml``)
      command.txt                the command as typed, and with every setting spelled out
      env.json                   versions, device, threads, seed
      summary.txt                the model summary
      history.csv                one row per epoch: losses, metrics, learning rate, seconds
      metrics.json               test loss/accuracy, per-class precision/recall/F1, confusion matrix
      best/  last/               model folders (config.json + model.safetensors): load_model(path)
                                 (model.safetensors: a hard link to a checkpoint's model file)
      checkpoint/                state.json + model-*.safetensors (the weights) +
                                 state-*.safetensors (optimizer, RNGs): what --resume needs
      plots/*.png  report.html   the pictures and the one-page report

Writers here replace files atomically (a temporary ``.NAME.tmp`` beside the target, then
``os.replace``); :func:`remove_stale_temporaries` clears what a killed writer left.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import shlex
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

__all__ = ["RunDir", "new_run_dir", "environment", "remove_stale_temporaries", "explicit_command",
           "write_run_files", "note_resume"]


class RunDir:
    """Paths inside one run directory."""

    def __init__(self, path):
        self.path = Path(path)

    def __fspath__(self):
        return str(self.path)

    def __str__(self):
        return str(self.path)

    config_json = property(lambda self: self.path / "config.json")
    config_toml = property(lambda self: self.path / "config.toml")
    command = property(lambda self: self.path / "command.txt")
    env = property(lambda self: self.path / "env.json")
    summary = property(lambda self: self.path / "summary.txt")
    history = property(lambda self: self.path / "history.csv")
    metrics = property(lambda self: self.path / "metrics.json")
    best = property(lambda self: self.path / "best")
    last = property(lambda self: self.path / "last")
    checkpoint = property(lambda self: self.path / "checkpoint")
    plots = property(lambda self: self.path / "plots")
    report = property(lambda self: self.path / "report.html")

    def is_run(self) -> bool:
        return self.config_json.is_file()

    # -- small writers -------------------------------------------------------------
    def write_json(self, target: Path, data) -> Path:
        _atomic_write_text(target, json.dumps(data, indent=2, default=_json_default) + "\n")
        return target

    def read_json(self, target: Path):
        return json.loads(Path(target).read_text())

    @staticmethod
    def read_json_or_empty(target: Path) -> dict:
        """A JSON object file, or ``{}`` when it is missing, unreadable or not an object (a
        run still being written, or an older one: what lists and reports read)."""
        try:
            data = json.loads(Path(target).read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def write_command(self, argv: list[str], explicit: list[str]) -> Path:
        text = ("# the command as typed (run it again to repeat this run; a new run directory is made)\n"
                f"{shlex.join(argv)}\n"
                "# the same run with every setting spelled out\n"
                f"{shlex.join(explicit)}\n"
                "# or from the resolved config file\n"
                f"cnnkit train --config {shlex.quote(str(self.config_toml))}\n")
        _atomic_write_text(self.command, text)
        return self.command

    def write_history(self, rows: list[dict]) -> Path:
        """history.csv from per-epoch dicts (epoch first; columns in first-seen order)."""
        keys: list[str] = []
        for row in rows:
            keys += [k for k in row if k not in keys]
        tmp = self.history.with_name(".history.csv.tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys, restval="")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _csv_value(v) for k, v in row.items()})
        os.replace(tmp, self.history)
        return self.history

    def read_history(self) -> list[dict]:
        if not self.history.is_file():
            return []
        with open(self.history, newline="") as f:
            return [{k: _parse_number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _csv_value(v):
    return f"{v:.6g}" if isinstance(v, float) else v


def _parse_number(v: str):
    if v is None or v == "":
        return None
    try:
        return int(v)
    except ValueError:
        try:
            return float(v)
        except ValueError:
            return v


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def new_run_dir(root, name: str) -> RunDir:
    """Create ``root/name``, or ``name-2``, ``name-3``, ... when it exists; never reuse one."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip(".-") or "run"
    for i in range(1, 10_000):
        path = root / (safe if i == 1 else f"{safe}-{i}")
        try:
            path.mkdir()  # atomic: two runs started at once never share a folder
        except FileExistsError:
            continue
        return RunDir(path)
    raise RuntimeError(f"{root}: too many runs called {safe}")


def environment(seed: int, device) -> dict:
    """Versions, device and threads: what env.json records."""
    import cnnkit
    env = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cnnkit": cnnkit.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "seed": seed,
        "argv": sys.argv,
    }
    # versions read from the installed metadata: importing torchvision (which pulls in
    # torch._dynamo) and matplotlib only to ask took ~0.3 s of every run's start
    for key, dist in (("torchvision", "torchvision"), ("PIL", "pillow"),
                      ("matplotlib", "matplotlib"), ("safetensors", "safetensors")):
        try:
            env[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:  # optional, informational
            pass
    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        env["cuda"] = torch.version.cuda
        env["gpu"] = torch.cuda.get_device_name(dev)
    git = _git_commit()
    if git:
        env["git_commit"] = git
    from ..speed import perf
    env["speed"] = perf.settings()  # threads, CPU capability, bf16 (measured where it was)
    return env


def _git_commit() -> str | None:
    """The commit of the cnnkit checkout, when it is one (read from .git, no subprocess)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        head = parent / ".git" / "HEAD"
        if head.is_file():
            ref = head.read_text().strip()
            if ref.startswith("ref: "):
                ref_file = parent / ".git" / ref[5:]
                return ref_file.read_text().strip() if ref_file.is_file() else None
            return ref
    return None


def remove_stale_temporaries(run: RunDir) -> list[Path]:
    """Delete what a save killed part-way left in ``run``: the ``.NAME.tmp`` files of the
    atomic writers here and in ``checkpoint/``, and the ``.best.*`` / ``.last.*`` folders
    ``Model.save`` builds before renaming them into place. Returns what was removed."""
    import shutil
    removed = []
    for folder in (run.path, run.checkpoint, run.plots):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            name = path.name
            if not name.startswith(".") or not (name.endswith(".tmp") or name.startswith(
                    (".best.", ".last.")) or name.startswith(".state-")):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


# ------------------------------------------------------------------ the files a run starts with

def explicit_command(cfg) -> list[str]:
    """``cnnkit train`` with every setting of ``cfg`` spelled out."""
    cmd = ["cnnkit", "train"]
    for key, value in cfg.to_dict().items():
        opt = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            if key == "report":
                cmd += [] if value else ["--no-report"]
            elif value:
                cmd.append(opt)
        elif value is None or value == "":
            continue  # None and '' mean the default
        elif isinstance(value, list):
            cmd += [opt, ",".join(str(v) for v in value)]
        else:
            cmd += [opt, str(value)]
    return cmd


def write_run_files(run: RunDir, cfg, argv, device, data, model_name: str, **env) -> None:
    """config.json/.toml, command.txt and env.json of a new run."""
    from ..config import to_toml
    run.write_json(run.config_json, cfg.to_dict())
    run.config_toml.write_text(to_toml(cfg))
    typed, explicit = list(argv) if argv else explicit_command(cfg), explicit_command(cfg)
    world = int(env.get("world_size", 1))
    if world > 1:  # under torchrun: the command that starts the same job again
        typed = typed if "--nproc" in typed else [*typed, "--nproc", str(world)]
        explicit = [*explicit, "--nproc", str(world)]
    run.write_command(typed, explicit)
    run.write_json(run.env, {**environment(cfg.seed, device), "data": data.describe(),
                             "model": model_name, **env})


def note_resume(run: RunDir, cfg, ckpt, epochs) -> None:
    """command.txt gets the resume line; config.json/.toml the (possibly longer) epochs."""
    from ..config import to_toml
    with open(run.command, "a") as f:
        f.write(f"# resumed {time.strftime('%Y-%m-%d %H:%M:%S')} at epoch {ckpt.epoch + 1}"
                f"{f', step {ckpt.step}' if ckpt.step else ''}\n"
                f"cnnkit train --resume {run.path}"
                f"{f' --nproc {ckpt.world_size}' if ckpt.world_size > 1 else ''}"
                f"{f' --epochs {epochs}' if epochs is not None else ''}\n")
    run.write_json(run.config_json, cfg.to_dict())
    run.config_toml.write_text(to_toml(cfg))
