"""Resumable checkpoints: tensors in safetensors plus JSON, no pickle.

A checkpoint is tensors in safetensors plus JSON (epoch, step, optimizer settings, history):
``model-*.safetensors`` holds the model's weights exactly as a model folder's
``model.safetensors`` does (so ``best/`` and ``last/`` can be hard links to it instead of a
second serialisation), ``state-*.safetensors`` the optimizer state, RNG states and callback
tensors. ``state.json`` is written last and atomically, so a run killed while saving resumes
from the previous complete checkpoint. Version 1 checkpoints (weights inside the state
file) still load.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .directory import RunDir, _json_default

__all__ = ["save_checkpoint", "load_checkpoint", "Checkpoint", "rng_state", "set_rng_state",
           "rank_local_tensors", "restore_training_state", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "cnnkit-checkpoint"
CHECKPOINT_VERSION = 2
READABLE_VERSIONS = (1, 2)  # 1: the model's weights as ``model.*`` inside the state file


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
    def model_file(self) -> Path | None:
        """The checkpoint's model weights file (a model folder's ``model.safetensors`` to the
        byte), or None for a version 1 checkpoint."""
        name = self.meta.get("model_tensors")
        return self.path.parent / name if name else None

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
    from ..models.saving import FORMAT as MODEL_FORMAT
    folder = run.checkpoint
    folder.mkdir(parents=True, exist_ok=True)
    extra_tensors = tensors
    tag = f"e{epoch:04d}-s{step:06d}-{time.time_ns() % 10**9:09d}"
    model_file = f"model-{tag}.safetensors"  # the one serialisation of the weights
    weights = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    tmp = folder / f".{model_file}.tmp"
    save_file(weights, str(tmp), metadata={"format": MODEL_FORMAT})  # as Model.save writes it
    os.replace(tmp, folder / model_file)
    del weights
    opt_tensors, opt_meta = _optimizer_parts(optimizer)
    tensors = dict(opt_tensors)
    rng_tensors, rng_meta = rng_state(generators or {})
    tensors.update(rng_tensors)
    if loader_state is not None:
        tensors["loader.epoch_start"] = loader_state.clone()
    for key, value in (extra_tensors or {}).items():
        tensors[key] = value.detach().cpu().contiguous().clone()
    for r, per_rank in enumerate(ranks or []):
        if r:
            tensors.update({f"rank{r}.{k}": v.contiguous().clone() for k, v in per_rank.items()})
    weights_file = f"state-{tag}.safetensors"
    tmp = folder / f".{weights_file}.tmp"
    save_file(tensors, str(tmp), metadata={"format": CHECKPOINT_FORMAT})
    os.replace(tmp, folder / weights_file)
    meta = {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
        "epoch": int(epoch), "step": int(step), "tensors": weights_file,
        "model_tensors": model_file,
        "optimizer": opt_meta, "rng": rng_meta,
        "scheduler": _scheduler_state(scheduler),
        "world_size": max(1, len(ranks or [])),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **(extra or {}),
    }
    run.write_json(folder / "state.json", meta)
    for old in [*folder.glob("state-*.safetensors"), *folder.glob("model-*.safetensors")]:
        if old.name not in (weights_file, model_file):  # older checkpoints are now superseded
            old.unlink(missing_ok=True)  # (a best/ or last/ linked to one keeps its data)
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
    if meta.get("format") != CHECKPOINT_FORMAT or meta.get("version") not in READABLE_VERSIONS:
        raise ValueError(f"{state} is not a cnnkit checkpoint of version "
                         f"{' or '.join(map(str, READABLE_VERSIONS))}")
    tensors = _read_tensors(run.checkpoint / meta["tensors"])
    if meta.get("model_tensors"):
        model = _read_tensors(run.checkpoint / meta["model_tensors"])
        tensors.update({f"model.{k}": v for k, v in model.items()})
    return Checkpoint(tensors, meta, state)


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except Exception as err:  # noqa: BLE001 - safetensors raises several kinds
        raise ValueError(f"{path} is missing or corrupt ({err})") from err


def restore_training_state(ckpt: Checkpoint, *, model, optimizer, scheduler=None) -> None:
    """Load weights, optimizer and scheduler state from ``ckpt`` (RNGs are restored separately,
    just before training continues, so that building things in between cannot disturb them)."""
    from ..models.weights import WeightsMismatchError, dtype_mismatches
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
