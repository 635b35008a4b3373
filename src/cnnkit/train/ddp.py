"""Data-parallel training as a plug-in to the unchanged loop: the process group, the
collectives a run needs, and the callbacks that make ranks train as one.

    from cnnkit.train import ddp
    ddp.init()                                   # torchrun's env; gloo on CPU, NCCL on GPU
    model.fit(loader, callbacks=[ddp.StopTogether(flag), ddp.ReduceLogs(),
                                 ddp.DataParallel(), ...])

- ``DataParallel``: rank 0's weights are broadcast when training begins, its buffers
  before every training step (as ``DistributedDataParallel(broadcast_buffers=True)``
  does), and after every backward pass the gradients are averaged over the ranks (one
  coalesced all-reduce per dtype) before the optimizer steps. The model is never wrapped:
  its ``forward``, state-dict keys and saved files stay those of the plain model.
- ``ReduceLogs``: the epoch's training logs averaged over the ranks.
- ``StopTogether``: a stop request on any rank stops every rank after the same step.
- The loader shards each global batch (``cnnkit.run.loader.ResumableLoader``), so the
  ranks together take exactly one process's batches and the averaged gradient is the
  full batch's mean gradient.

BatchNorm statistics are per rank between steps (as with plain DDP); convert with
``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` for global statistics.
"""

from __future__ import annotations

import gc
import os
from datetime import timedelta
from typing import NoReturn

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from .callbacks import Callback

__all__ = ["init", "is_distributed", "rank", "world_size", "local_rank", "is_main_process",
           "device", "barrier", "shutdown", "launched_as_rank", "exit_rank", "all_reduce_sum",
           "any_rank", "gather_tensors", "broadcast_seed", "DataParallel", "ReduceLogs",
           "StopTogether", "fit"]


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else int(os.environ.get("RANK", 0))


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
        from ..speed import perf
        perf.configure("cpu")  # physical cores // LOCAL_WORLD_SIZE threads per rank
    return True


def shutdown() -> None:
    """Leave the job. A barrier first: a rank that tears its gloo pairs down while a peer is
    still using them can abort the peer ("terminate called without an active exception").
"""
    if dist.is_available() and dist.is_initialized():
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
    from ..process_exit import exit_now
    exit_now(code, run_exit_handlers=False)


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


class DataParallel(Callback):
    """Average gradients over the ranks after each backward pass; keep the ranks' weights
    (and, with ``broadcast_buffers``, BatchNorm buffers before each step) equal to rank 0's.
    A no-op in a single process. Needs the loop's ``on_after_backward`` event."""

    def __init__(self, broadcast_buffers: bool = True):
        super().__init__()
        self.broadcast_buffers = broadcast_buffers

    def _broadcast(self, tensors) -> None:
        with torch.no_grad():
            for t in tensors:
                dist.broadcast(t.data, src=0)

    def on_train_begin(self, logs=None):
        if is_distributed():
            self._broadcast(list(self.model.parameters()) + list(self.model.buffers()))

    def on_train_batch_begin(self, batch, logs=None):
        if self.broadcast_buffers and is_distributed():
            self._broadcast(list(self.model.buffers()))

    def on_after_backward(self, batch, logs=None):
        if not is_distributed():
            return
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        world = world_size()
        by_kind: dict = {}
        for g in grads:
            by_kind.setdefault((g.dtype, g.device), []).append(g)
        with torch.no_grad():
            for group in by_kind.values():
                flat = _flatten_dense_tensors(group)
                dist.all_reduce(flat, op=dist.ReduceOp.SUM)
                flat.div_(world)
                for g, mean in zip(group, _unflatten_dense_tensors(flat, group)):
                    g.copy_(mean)


class ReduceLogs(Callback):
    """Average the numbers in the epoch logs over the ranks (before the callbacks that read
    them). Training loss/metrics are means over equal-sized local shards, so their mean is
    the global mean. Put it before ``run.evaluate.Validate``: validation sums its counts over
    the ranks itself, so its ``val_*`` keys are global already."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or not is_distributed():
            return
        keys = sorted(k for k, v in logs.items() if isinstance(v, (int, float)))
        sums = all_reduce_sum([float(logs[k]) / world_size() for k in keys])
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
    from ..run.evaluate import Validate
    from ..run.loader import ResumableLoader, shard
    model._require_compiled()
    dev = model.device or next(model.parameters()).device
    images, labels = model._images_labels(x, y)
    model._check_labels(labels)
    seed = broadcast_seed(seed)
    train = ResumableLoader(images, labels, batch_size, shuffle=shuffle, seed=seed, device=dev)
    cbs = [ReduceLogs(), DataParallel()]
    v_labels = None
    if validation_data is not None:
        vx, vy = (validation_data, None) if hasattr(validation_data, "images") else validation_data
        v_images, v_labels = model._images_labels(vx, vy)
        model._check_labels(v_labels)
        mine = shard(len(v_images), rank(), world_size())
        cbs.append(Validate(v_images[mine], v_labels[mine], reduce_ranks=len(v_images) >= world_size(),
                            batch_size=max(batch_size // world_size(), 256)))
    cbs += list(callbacks) + (list(main_callbacks) if is_main_process() else [])
    verbose = fit_kwargs.pop("verbose", "auto") if is_main_process() else 0
    fit_kwargs.pop("verbose", None)
    # a model whose class count is only known by running it (a wrapped module) checks
    # the labels on its first batch; every rank holds all labels, so all refuse together
    with model._labels_checked_on_first_batch(labels, v_labels):
        return model.fit(train, epochs=epochs, callbacks=cbs, verbose=verbose, **fit_kwargs)
