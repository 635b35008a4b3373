"""Run directories and checkpoints (moved to ``cnnkit.run.directory`` and
``cnnkit.run.checkpoint``; this module keeps the old import path)."""

from .run.checkpoint import (CHECKPOINT_FORMAT, CHECKPOINT_VERSION, Checkpoint,  # noqa: F401
                             load_checkpoint, rank_local_tensors, restore_training_state,
                             rng_state, save_checkpoint, set_rng_state)
from .run.directory import (RunDir, _atomic_write_text, environment, new_run_dir,  # noqa: F401
                            remove_stale_temporaries)

__all__ = ["RunDir", "new_run_dir", "environment", "save_checkpoint", "load_checkpoint",
           "Checkpoint", "rng_state", "set_rng_state", "rank_local_tensors", "CHECKPOINT_FORMAT",
           "restore_training_state", "remove_stale_temporaries"]
