"""Run directories: everything one training run leaves behind, and how to resume it.

::

    runs/<name>/                 never overwritten: a second run gets <name>-2, <name>-3, ...
      config.json  config.toml   the resolved settings (``cnnkit train --config config.toml``)
      command.txt                the command as typed, and with every setting spelled out
      env.json                   versions, device, threads, seed
      summary.txt                the model summary
      history.csv                one row per epoch: losses, metrics, learning rate, seconds
      metrics.json               test loss/accuracy, per-class precision/recall/F1, confusion matrix
      best/  last/               model folders (config.json + model.safetensors): load_model(path)
      checkpoint/                state.json + state-*.safetensors: what --resume needs
      plots/*.png  report.html   the pictures and the one-page report

A checkpoint is tensors in safetensors (weights, optimizer state, RNG states) plus JSON
(epoch, step, optimizer settings, history); no pickle. ``state.json`` is written last and
atomically, so a run killed while saving resumes from the previous complete checkpoint.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import random
import re
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

__all__ = ["RunDir", "new_run_dir", "environment", "save_checkpoint", "load_checkpoint",
           "Checkpoint", "rng_state", "set_rng_state", "rank_local_tensors", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "cnnkit-checkpoint"
CHECKPOINT_VERSION = 1


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
    for mod in ("torchvision", "PIL", "matplotlib", "safetensors"):
        try:
            env[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - optional, informational
            pass
    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        env["cuda"] = torch.version.cuda
        env["gpu"] = torch.cuda.get_device_name(dev)
    git = _git_commit()
    if git:
        env["git_commit"] = git
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


# ---------------------------------------------------------------------------- RNG states

def rng_state(generators: dict[str, torch.Generator]) -> tuple[dict, dict]:
    """(tensors, json) snapshot of the global RNGs and the named generators."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    for name, gen in generators.items():
        if gen is not None:
            tensors[f"rng.gen.{name}"] = gen.get_state()
    np_state = np.random.get_state()
    tensors["rng.numpy.keys"] = torch.from_numpy(np_state[1].astype(np.int64))
    meta = {"numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
            "python": _py_state_to_json(random.getstate())}
    return tensors, meta


def set_rng_state(tensors: dict, meta: dict, generators: dict[str, torch.Generator]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[:torch.cuda.device_count()])
    for name, gen in generators.items():
        key = f"rng.gen.{name}"
        if gen is not None and key in tensors:
            gen.set_state(tensors[key])
    if "rng.numpy.keys" in tensors and meta.get("numpy"):
        kind, pos, has_gauss, cached = meta["numpy"]
        np.random.set_state((kind, tensors["rng.numpy.keys"].numpy().astype(np.uint32), pos,
                             has_gauss, cached))
    if meta.get("python"):
        random.setstate(_py_state_from_json(meta["python"]))


def _py_state_to_json(state):
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _py_state_from_json(data):
    version, internal, gauss = data
    return (version, tuple(internal), gauss)


# ---------------------------------------------------------------------------- checkpoints

class Checkpoint:
    """What ``load_checkpoint`` returns: ``tensors`` by group and the JSON ``meta``."""

    def __init__(self, tensors: dict, meta: dict, path: Path):
        self.tensors, self.meta, self.path = tensors, meta, path

    def group(self, prefix: str) -> dict[str, torch.Tensor]:
        n = len(prefix) + 1
        return {k[n:]: v for k, v in self.tensors.items() if k.startswith(prefix + ".")}

    @property
    def epoch(self) -> int:
        """Epochs fully done (the epoch to continue with, counted from 0)."""
        return int(self.meta["epoch"])

    @property
    def step(self) -> int:
        """Steps already done inside ``epoch`` (0 at an epoch boundary)."""
        return int(self.meta.get("step", 0))

    @property
    def world_size(self) -> int:
        """Processes the run trained on (1 unless data-parallel)."""
        return int(self.meta.get("world_size", 1))

    def for_rank(self, rank: int) -> "Checkpoint":
        """This checkpoint as rank ``rank`` of a data-parallel job sees it: its own RNG states,
        buffers (BatchNorm statistics) and other per-rank tensors in place of rank 0's."""
        prefix = f"rank{rank}."
        mine = {k[len(prefix):]: v for k, v in self.tensors.items() if k.startswith(prefix)}
        base = {k: v for k, v in self.tensors.items() if not re.match(r"rank\d+\.", k)}
        return Checkpoint({**base, **mine}, self.meta, self.path)


def _optimizer_parts(optimizer) -> tuple[dict, dict]:
    state = optimizer.state_dict()
    tensors, plain_state = {}, {}
    for idx, per_param in state["state"].items():
        plain = {}
        for key, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{idx}.{key}"] = value.detach().cpu().contiguous().clone()
            else:
                plain[key] = value
        if plain:
            plain_state[str(idx)] = plain
    groups = []
    for g in state["param_groups"]:
        groups.append({k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in g.items()})
    return tensors, {"param_groups": groups, "plain_state": plain_state}


def _load_optimizer(optimizer, tensors: dict, meta: dict) -> None:
    # state_dict numbers the parameters group by group, in order
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        idx, _, name = key.partition(".")
        idx = int(idx)
        if idx < len(params) and value.shape == params[idx].shape and value.dim() > 1:
            # safetensors gives contiguous tensors; a channels_last parameter's moments must be
            # channels_last too: fused CPU kernels (Adam, SGD) walk parameter, gradient and
            # state as flat memory, and silently mix up elements when the layouts differ
            value = torch.empty_like(params[idx], dtype=value.dtype).copy_(value)
        state.setdefault(idx, {})[name] = value
    for idx, plain in meta.get("plain_state", {}).items():
        state.setdefault(int(idx), {}).update(plain)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if "betas" in g and isinstance(g["betas"], list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def rank_local_tensors(model, generators: dict[str, torch.Generator] | None = None,
                       tensors: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The checkpoint tensors that can differ between the ranks of a data-parallel job, under
    the keys ``save_checkpoint`` gives them: RNG states, the model's buffers (BatchNorm
    statistics are per rank) and ``tensors`` (e.g. a lookahead average of those buffers).
    Parameters and optimizer state are kept equal by DistributedDataParallel."""
    params = {name for name, _ in model.named_parameters()}
    out = {f"model.{k}": v.detach().cpu() for k, v in model.state_dict().items() if k not in params}
    # torch's (and CUDA's) RNGs and the named generators; NumPy's and Python's come from
    # rank 0 (their JSON part is not per rank, and training draws from neither)
    out.update({k: v for k, v in rng_state(generators or {})[0].items() if k != "rng.numpy.keys"})
    out.update({k: v.detach().cpu() for k, v in (tensors or {}).items()})
    return out


def save_checkpoint(run: RunDir, *, model, optimizer, epoch: int, step: int = 0,
                    generators: dict[str, torch.Generator] | None = None,
                    loader_state: torch.Tensor | None = None, scheduler=None,
                    extra: dict | None = None, tensors: dict[str, torch.Tensor] | None = None,
                    ranks: list[dict[str, torch.Tensor]] | None = None) -> Path:
    """Write a resumable checkpoint; ``state.json`` is the commit point.

    ``epoch``/``step``: where training continues (``step`` > 0 only mid-epoch, after Ctrl-C).
    ``loader_state``: the shuffle generator's state at the start of ``epoch`` (so the same
    order is drawn again); ``generators``: other generators at their current state.
    ``tensors``: more tensors to keep (``extra`` is their JSON side). ``ranks``: in a
    data-parallel job, every rank's ``rank_local_tensors`` (index = rank); ranks 1.. are stored
    as ``rank{r}.<key>`` and ``Checkpoint.for_rank`` gives each rank its own back.
    """
    folder = run.checkpoint
    folder.mkdir(parents=True, exist_ok=True)
    extra_tensors = tensors
    tensors = {f"model.{k}": v.detach().cpu().contiguous().clone()
               for k, v in model.state_dict().items()}
    opt_tensors, opt_meta = _optimizer_parts(optimizer)
    tensors.update(opt_tensors)
    rng_tensors, rng_meta = rng_state(generators or {})
    tensors.update(rng_tensors)
    if loader_state is not None:
        tensors["loader.epoch_start"] = loader_state.clone()
    for key, value in (extra_tensors or {}).items():
        tensors[key] = value.detach().cpu().contiguous().clone()
    for r, per_rank in enumerate(ranks or []):
        if r:
            tensors.update({f"rank{r}.{k}": v.contiguous().clone() for k, v in per_rank.items()})
    tag = f"e{epoch:04d}-s{step:06d}-{time.time_ns() % 10**9:09d}"
    weights_file = f"state-{tag}.safetensors"
    tmp = folder / f".{weights_file}.tmp"
    save_file(tensors, str(tmp), metadata={"format": CHECKPOINT_FORMAT})
    os.replace(tmp, folder / weights_file)
    meta = {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
        "epoch": int(epoch), "step": int(step), "tensors": weights_file,
        "optimizer": opt_meta, "rng": rng_meta,
        "scheduler": _scheduler_state(scheduler),
        "world_size": max(1, len(ranks or [])),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **(extra or {}),
    }
    run.write_json(folder / "state.json", meta)
    for old in folder.glob("state-*.safetensors"):  # older checkpoints are now superseded
        if old.name != weights_file:
            old.unlink(missing_ok=True)
    return folder / "state.json"


def _scheduler_state(scheduler) -> dict | None:
    if scheduler is None:
        return None
    state = scheduler.state_dict()
    return json.loads(json.dumps({k: v for k, v in state.items() if k != "lr_lambdas"},
                                 default=_json_default))


def load_checkpoint(run: RunDir) -> Checkpoint:
    """Read ``run``'s checkpoint; a missing or corrupt one is refused with a clear message."""
    state = run.checkpoint / "state.json"
    if not state.is_file():
        raise FileNotFoundError(
            f"{run.path} has no checkpoint to resume from ({state} is missing): the run was "
            "stopped before its first checkpoint, or was started with checkpoint_every=0")
    try:
        meta = json.loads(state.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{state} is corrupt ({err})") from err
    if meta.get("format") != CHECKPOINT_FORMAT or meta.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{state} is not a cnnkit checkpoint of version {CHECKPOINT_VERSION}")
    weights = run.checkpoint / meta["tensors"]
    try:
        tensors = load_file(str(weights))
    except Exception as err:  # noqa: BLE001 - safetensors raises several kinds
        raise ValueError(f"{weights} is missing or corrupt ({err})") from err
    return Checkpoint(tensors, meta, state)


def restore_training_state(ckpt: Checkpoint, *, model, optimizer, scheduler=None) -> None:
    """Load weights, optimizer and scheduler state from ``ckpt`` (RNGs are restored separately,
    just before training continues, so that building things in between cannot disturb them)."""
    from .models.weights import WeightsMismatchError, dtype_mismatches
    state = ckpt.group("model")
    wrong = dtype_mismatches(model.state_dict(), state)
    if wrong:
        raise WeightsMismatchError(f"{ckpt.path}: the checkpoint's tensors do not fit the model: "
                                   f"{'; '.join(wrong[:8])} (not cast)")
    model.load_state_dict(state)
    _load_optimizer(optimizer, ckpt.group("optimizer"), ckpt.meta["optimizer"])
    if scheduler is not None and ckpt.meta.get("scheduler"):
        scheduler.load_state_dict({**ckpt.meta["scheduler"],
                                   "lr_lambdas": [None] * len(optimizer.param_groups)})
