"""Data-parallel training on PyTorch's own machinery: torchrun + DistributedDataParallel.

    torchrun --nproc-per-node 2 -m cnnkit train ...      # or: cnnkit train --nproc 2 ...
    python -c "from cnnkit import distributed; distributed.launch(2, ['train', ...])"

Inside each process:

    from cnnkit import distributed
    distributed.init()                      # reads torchrun's env; gloo on CPU, NCCL on GPU
    model = ...compile(...)
    distributed.fit(model, x, y, batch_size=256, epochs=5, validation_data=(vx, vy),
                    main_callbacks=[ModelCheckpoint(...)])   # rank 0 only: it writes files

How it works:

- ``ShardedLoader``: every rank draws the same permutation each epoch (one seed, shared) and
  takes its share of each global batch: global batch k is ``order[k*B:(k+1)*B]`` and rank r
  trains on its ``r::world`` slice, so the ranks together see exactly the batches one
  process would, and the gradients DDP averages are the full batch's mean gradient. The
  permutation is padded by wrapping round to a multiple of ``world`` so every rank gets the
  same number of samples in every step (DistributedSampler does the same).
- ``wrap(model)``: the model's ``forward`` (and ``forward_logits``) run through a
  ``DistributedDataParallel`` wrapper held outside the module tree, so gradients are
  all-reduced during backward while ``state_dict`` keys, ``save`` and every callback see the
  plain model. ``unwrap(model)`` undoes it. Rank 0's weights are broadcast at wrap time.
- ``ReduceLogs``: at each epoch end the training and validation logs are averaged across
  ranks with ``all_reduce`` (each rank's val shard is the same size, give or take one), so
  every rank's History, EarlyStopping and LR schedule see the same numbers.
- Only rank 0 should write: pass writing callbacks as ``main_callbacks`` (or filter with
  ``is_main_process()``); the CLI writes its run directory only when ``is_main_process()``.

BatchNorm statistics are per rank (as with plain DDP); convert with
``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` for global statistics.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import subprocess
import sys
import threading
import warnings
import weakref
from datetime import timedelta
from typing import NoReturn

import torch
import torch.distributed as dist
from torch import nn

from .data.loader import InMemoryLoader, Resumable
from .train.callbacks import Callback

__all__ = ["init", "is_distributed", "rank", "world_size", "local_rank", "is_main_process",
           "device", "barrier", "ShardedLoader", "ResumableShardedLoader", "wrap", "unwrap",
           "ReduceLogs", "StopTogether", "fit", "launch", "launch_command", "shutdown",
           "all_reduce_sum", "any_rank", "gather_tensors", "broadcast_seed", "launched_as_rank",
           "exit_rank"]


# -- the process group ------------------------------------------------------------------
def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else int(os.environ.get("RANK", 0))


_current_rank = rank  # ShardedLoader's ``rank`` argument shadows the function


def world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", 1))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main_process() -> bool:
    """True on rank 0 (and in a plain single process): the one that writes output."""
    return rank() == 0


def device(prefer: str | None = None) -> torch.device:
    """This rank's device: ``cuda:LOCAL_RANK`` when CUDA is there (and not refused), else CPU."""
    if prefer not in (None, "auto"):
        dev = torch.device(prefer)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", local_rank())
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank())
    return torch.device("cpu")


def init(backend: str | None = None, device_type: str | None = None,
         timeout_s: float = 600.0) -> bool:
    """Join the torchrun job described by the environment; False (and nothing done) outside one.

    ``backend`` defaults to NCCL when this rank trains on CUDA, gloo otherwise. On the CPU the
    intra-op threads are split among the ranks of this host (see ``cnnkit.perf.configure``).
    """
    if dist.is_initialized():
        return dist.get_world_size() > 1
    if not launched_as_rank():
        return False
    if not dist.is_available():
        raise RuntimeError("torch.distributed is not available in this PyTorch build")
    dev_type = device_type or ("cuda" if torch.cuda.is_available() else "cpu")
    if dev_type == "cuda":
        torch.cuda.set_device(local_rank())
    backend = backend or ("nccl" if dev_type == "cuda" else "gloo")
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    if dev_type == "cpu":
        from . import perf
        perf.configure("cpu")  # physical cores // LOCAL_WORLD_SIZE threads per rank
    return True


def shutdown() -> None:
    """Leave the job. A barrier first: a rank that tears its gloo pairs down while a peer is
    still using them can abort the peer ("terminate called without an active exception").

    The DDP wrappers of the models :func:`wrap` touched are dropped first: each sits in a
    reference cycle with its model and holds the process group, so otherwise the group
    would be freed whenever the garbage collector ran, possibly while the interpreter shuts
    down, when gloo's threads can no longer release their tensors and the process aborts."""
    if dist.is_available() and dist.is_initialized():
        for model in list(_WRAPPED):
            unwrap(model)
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()
        gc.collect()


def launched_as_rank() -> bool:
    """True in a process torchrun (or another launcher) started as one rank of several."""
    return int(os.environ.get("WORLD_SIZE", 1)) > 1


def exit_rank(code: int = 0) -> NoReturn:
    """End this rank's process now: leave the job, flush the output, skip Python's finalization.

    After the process group is destroyed, a C++ thread of torch.distributed can still try to
    take the GIL while the interpreter finalizes; the thread is then unwound and the process
    aborts with "terminate called without an active exception" (SIGABRT) after all its work
    is done, so the launcher reports a failed job (seen rarely here with gloo; pytorch#179291
    describes the likely mechanism). Call it last in a rank's script; ``cnnkit train`` under
    torchrun does. Files cnnkit writes are closed before this point."""
    shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or broken: nothing left to save
            pass
    logging.shutdown()
    os._exit(code)


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def _comm_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" \
        else torch.device("cpu")


def all_reduce_sum(values: list[float]) -> list[float]:
    """Sum a list of numbers over the ranks (identity in a single process)."""
    if not is_distributed():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().tolist()


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on at least one (``flag`` in a single process)."""
    if not is_distributed():
        return bool(flag)
    return all_reduce_sum([float(bool(flag))])[0] > 0


def gather_tensors(tensors: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """Every rank's ``tensors`` (same keys, shapes and dtypes on all ranks), as a list indexed
    by rank, on CPU; ``[tensors]`` in a single process. A collective: all ranks must call it."""
    if not is_distributed():
        return [tensors]
    dev, world = _comm_device(), world_size()
    out: list[dict[str, torch.Tensor]] = [{} for _ in range(world)]
    for key in sorted(tensors):
        t = tensors[key].detach()
        wire = t.to(dev).contiguous()
        if wire.dtype == torch.bool:
            wire = wire.to(torch.uint8)
        parts = [torch.empty_like(wire) for _ in range(world)]
        dist.all_gather(parts, wire)
        for r, part in enumerate(parts):
            out[r][key] = part.to("cpu", t.dtype)
    return out


def broadcast_seed(seed: int | None) -> int:
    """The same seed on every rank: rank 0's ``seed`` (or a fresh one when None)."""
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
    if not is_distributed():
        return int(seed)
    t = torch.tensor([int(seed)], dtype=torch.int64, device=_comm_device())
    dist.broadcast(t, src=0)
    return int(t.item())


# -- data -------------------------------------------------------------------------------
class ShardedLoader(InMemoryLoader):
    """An ``InMemoryLoader`` whose batches are this rank's share of each global batch.

    ``batch_size`` is the GLOBAL batch (rounded up to a multiple of ``world``); each step
    yields ``batch_size / world`` samples per rank. ``len()`` is the number of global steps,
    the same on every rank. ``seed`` must be the same on all ranks (``broadcast_seed``).
    """

    def __init__(self, images, labels, batch_size: int = 32, shuffle: bool = False,
                 seed: int | None = None, device=None, drop_last: bool = False,
                 sample_weight=None, rank: int | None = None, world: int | None = None):
        self.rank = _current_rank() if rank is None else int(rank)
        self.world = world_size() if world is None else int(world)
        if not 0 <= self.rank < self.world:
            raise ValueError(f"rank {self.rank} is outside a world of {self.world}")
        if batch_size % self.world:
            rounded = -(-batch_size // self.world) * self.world
            warnings.warn(f"global batch {batch_size} is not a multiple of {self.world} ranks; "
                          f"using {rounded}", UserWarning, stacklevel=2)
            batch_size = rounded
        super().__init__(images, labels, batch_size, shuffle, seed if seed is not None else 0,
                         device, drop_last, sample_weight)

    def _padded(self) -> int:
        n = len(self.images)
        return -(-n // self.world) * self.world

    def __len__(self) -> int:
        n = len(self.images) if self.drop_last else self._padded()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def local_batch_size(self) -> int:
        return self.batch_size // self.world

    def __iter__(self):
        n = len(self.images)
        dev = self.images.device
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        total = self._padded()
        if total > n:  # wrap round so every rank has the same number of samples
            order = torch.cat([order, order[: total - n]])
        order = order.to(dev)
        for step in range(len(self)):
            lo, hi = step * self.batch_size, min((step + 1) * self.batch_size, total)
            yield self._batch(order[lo:hi][self.rank::self.world])


class ResumableShardedLoader(Resumable, ShardedLoader):
    """A ``ShardedLoader`` that can continue inside an epoch (see ``cnnkit.data.loader.Resumable``);
    ``skip`` counts global steps, the same on every rank."""


# -- the model --------------------------------------------------------------------------
class _Forwards(nn.Module):
    """What DDP wraps: the model's class-level forward / forward_logits (not the instance's)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x, logits: bool = False):
        cls = type(self.model)
        return cls.forward_logits(self.model, x) if logits else cls.forward(self.model, x)


def wrap(model: nn.Module, find_unused_parameters: bool = False, **ddp_kwargs) -> nn.Module:
    """Route ``model``'s forward through DistributedDataParallel; returns the same object.

    A no-op outside a multi-process job. The DDP wrapper lives in a closure, not in the
    module tree, so the state dict and saved files are those of the plain model.
    """
    if not is_distributed() or getattr(model, "_ddp", None) is not None:
        return model
    # A one-channel conv weight (the first layer on grayscale images) is both contiguous and
    # channels_last, and autograd may hand DDP its gradient in the other spelling of the same
    # memory order; DDP then warns about a copy that costs nothing here.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    dev = next(model.parameters()).device
    ids = [dev.index if dev.index is not None else torch.cuda.current_device()] \
        if dev.type == "cuda" else None
    ddp = nn.parallel.DistributedDataParallel(
        _Forwards(model), device_ids=ids, find_unused_parameters=find_unused_parameters,
        **ddp_kwargs)
    cls = type(model)

    def forward(x):
        # Only training steps go through DDP (they are the ones whose gradients sync and
        # whose count is equal on every rank); evaluation runs the plain model.
        if model.training and torch.is_grad_enabled():
            return ddp(x)
        return cls.forward(model, x)

    def forward_logits(x):
        if model.training and torch.is_grad_enabled():
            return ddp(x, logits=True)
        return cls.forward_logits(model, x)

    object.__setattr__(model, "_ddp", ddp)
    _WRAPPED.add(model)
    object.__setattr__(model, "forward", forward)
    if hasattr(cls, "forward_logits"):
        object.__setattr__(model, "forward_logits", forward_logits)
    return model


def unwrap(model: nn.Module) -> nn.Module:
    """Undo :func:`wrap` (the model trains and runs as a plain module again)."""
    for name in ("_ddp", "forward", "forward_logits"):
        model.__dict__.pop(name, None)
    _WRAPPED.discard(model)
    return model


_WRAPPED: "weakref.WeakSet[nn.Module]" = weakref.WeakSet()  # models wrap() gave a DDP wrapper


class ReduceLogs(Callback):
    """Average every number in the epoch logs over the ranks (first in the callback list).

    Training loss/metrics are means over equal-sized local shards, so their mean is the
    global mean; validation logs are weighted by each rank's count of held-out samples.
    """

    def __init__(self, val_counts: tuple[int, int] | None = None):
        super().__init__()
        # (this rank's val samples, all ranks' val samples): weights for the val_* keys
        self.val_counts = val_counts

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or not is_distributed():
            return
        keys = sorted(k for k, v in logs.items() if isinstance(v, (int, float)))
        w = world_size()
        weights = []
        for k in keys:
            if k.startswith("val_") and self.val_counts:
                weights.append(self.val_counts[0] / max(self.val_counts[1], 1))
            else:
                weights.append(1.0 / w)
        sums = all_reduce_sum([float(logs[k]) * wt for k, wt in zip(keys, weights)])
        for k, v in zip(keys, sums):
            logs[k] = v


class StopTogether(Callback):
    """Make a stop request seen on any rank (``flag.hit``, e.g. Ctrl-C reaching one process)
    stop every rank after the same step: the ranks agree after each step, at each epoch end and
    at the end of training (before the callbacks that follow this one), then all set ``flag.hit`` and
    ``model.stop_training``. Without it one rank would leave the loop while its peers wait in
    the next step's all-reduce. Put it first; in a single process it is a plain relay."""

    def __init__(self, flag):
        super().__init__()
        self.flag = flag

    def agree(self) -> bool:
        hit = any_rank(self.flag.hit)
        if hit:
            self.flag.hit = True
            self.model.stop_training = True
        return hit

    def on_train_begin(self, logs=None):
        self.agree()

    def on_train_batch_end(self, batch, logs=None):
        self.agree()

    def on_epoch_end(self, epoch, logs=None):
        self.agree()

    def on_train_end(self, logs=None):
        self.agree()


def fit(model, x=None, y=None, *, batch_size: int = 32, epochs: int = 1, validation_data=None,
        callbacks=(), main_callbacks=(), seed: int | None = None, shuffle: bool = True,
        **fit_kwargs):
    """``model.fit`` across the ranks of the job (plain ``model.fit`` in a single process).

    ``x, y``: arrays/tensors or a dataset object, as ``Model.fit``. ``batch_size`` is the
    global batch. ``callbacks`` run on every rank (e.g. EarlyStopping: it sees the reduced
    logs, so all ranks stop together); ``main_callbacks`` only on rank 0 (anything writing
    files). Other keyword arguments go to ``Model.fit`` (augment, scheduler, verbose, ...).
    """
    if not is_distributed():
        return model.fit(x, y, batch_size=batch_size, epochs=epochs,
                         validation_data=validation_data, seed=seed, shuffle=shuffle,
                         callbacks=list(callbacks) + list(main_callbacks), **fit_kwargs)
    model._require_compiled()
    dev = model.device or next(model.parameters()).device
    images, labels = model._images_labels(x, y)
    model._check_labels(labels)
    seed = broadcast_seed(seed)
    train = ShardedLoader(images, labels, batch_size, shuffle=shuffle, seed=seed, device=dev)
    val, counts, v_labels = None, None, None
    if validation_data is not None:
        vx, vy = (validation_data, None) if hasattr(validation_data, "images") else validation_data
        v_images, v_labels = model._images_labels(vx, vy)
        model._check_labels(v_labels)
        mine = torch.arange(rank(), len(v_images), world_size())
        val = InMemoryLoader(v_images[mine], v_labels[mine], max(batch_size // world_size(), 256),
                             device=dev)
        counts = (len(mine), len(v_images))
    wrap(model)
    try:
        cbs = [ReduceLogs(counts)] + list(callbacks) + (list(main_callbacks) if is_main_process() else [])
        verbose = fit_kwargs.pop("verbose", "auto") if is_main_process() else 0
        fit_kwargs.pop("verbose", None)
        # a model whose class count is only known by running it (a wrapped module) checks
        # the labels on its first batch; every rank holds all labels, so all refuse together
        with model._labels_checked_on_first_batch(labels, v_labels):
            return model.fit(train, epochs=epochs, validation_data=val, callbacks=cbs,
                             verbose=verbose, **fit_kwargs)
    finally:
        unwrap(model)


# -- launching --------------------------------------------------------------------------
def launch_command(nproc: int, argv: list[str], module: str = "cnnkit",
                   nnodes: int = 1) -> list[str]:
    """The torchrun command line that runs ``python -m <module> <argv>`` on ``nproc`` ranks."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={int(nproc)}"]
    if nnodes == 1:
        cmd.append("--standalone")
    else:
        cmd.append(f"--nnodes={int(nnodes)}")
    return cmd + ["-m", module, *argv]


def launch(nproc: int, argv: list[str], module: str = "cnnkit", env: dict | None = None,
           check: bool = False) -> int:
    """Run ``python -m <module> <argv>`` under torchrun on ``nproc`` local processes.

    Returns the exit status (raises ``CalledProcessError`` when ``check`` and it fails).
    ``cnnkit train --nproc N ...`` calls this with its own argv minus ``--nproc``.
    """
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    run_env = dict(os.environ, **(env or {}))
    # one BLAS/OpenMP thread pool per rank, sized by cnnkit.perf.configure in each rank
    run_env.setdefault("OMP_NUM_THREADS", str(max(1, _physical_cores() // nproc)))
    cmd = launch_command(nproc, argv, module)
    # Ctrl-C reaches torchrun (same terminal process group), which passes it on to the ranks
    # (each in its own session) and waits for them to save and exit. This process must not
    # react itself: subprocess.run would SIGKILL torchrun a quarter second later. (A Python
    # handler, not SIG_IGN: an ignored signal would stay ignored in torchrun after exec.)
    main_thread = threading.current_thread() is threading.main_thread()
    interrupted = []
    old = signal.signal(signal.SIGINT, lambda *_: interrupted.append(1)) if main_thread else None
    try:
        proc = subprocess.Popen(cmd, env=run_env)
        code = proc.wait()
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, old)
    if interrupted and code:
        code = 130  # torchrun reports the ranks' orderly stop after Ctrl-C as its own failure
    if check and code:
        raise subprocess.CalledProcessError(code, cmd)
    return code


def _physical_cores() -> int:
    from .perf import physical_cores
    return physical_cores()
