"""Data-parallel training (moved: the plug-in is ``cnnkit.train.ddp``, the launcher
``cnnkit.run.launch``, the sharded resumable loader ``cnnkit.run.loader``). This module keeps
the old import path::

    from cnnkit import distributed
    distributed.init(); distributed.fit(model, x, y, batch_size=256, epochs=5)
    distributed.launch(2, ["train", ...])
"""

from .run.launch import launch, launch_command  # noqa: F401
from .run.loader import ResumableLoader, shard  # noqa: F401
from .train.ddp import (DataParallel, ReduceLogs, StopTogether, all_reduce_sum,  # noqa: F401
                        any_rank, barrier, broadcast_seed, device, exit_rank, fit, gather_tensors,
                        init, is_distributed, is_main_process, launched_as_rank, local_rank, rank,
                        shutdown, world_size)

ShardedLoader = ResumableShardedLoader = ResumableLoader  # the one loader (old names)

__all__ = ["init", "is_distributed", "rank", "world_size", "local_rank", "is_main_process",
           "device", "barrier", "ShardedLoader", "ResumableShardedLoader", "ResumableLoader",
           "shard", "DataParallel", "ReduceLogs", "StopTogether", "fit", "launch",
           "launch_command", "shutdown", "all_reduce_sum", "any_rank", "gather_tensors",
           "broadcast_seed", "launched_as_rank", "exit_rank"]
