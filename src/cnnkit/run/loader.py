"""The one training loader of a run: shuffled in-memory batches, sharded over ranks, resumable.

``shard(n, rank, world)`` is the one rule for splitting samples among the ranks of a
data-parallel job (training batches and held-out images alike): rank ``r`` takes every
``world``-th sample from ``r``. With fewer samples than ranks every rank takes them all.
"""

from __future__ import annotations

import warnings

import torch

from ..data.loader import InMemoryLoader

__all__ = ["shard", "share", "ResumableLoader"]


def shard(n: int, rank: int, world: int) -> torch.Tensor:
    """Indices of the samples out of ``n`` that rank ``rank`` of ``world`` takes."""
    if world <= 1 or n < world:
        return torch.arange(n)
    return torch.arange(rank, n, world)


def share(x: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """The samples of ``x`` that :func:`shard` gives rank ``rank``, as a view (a strided
    slice: no copy of the images; in one process ``x`` itself)."""
    if world <= 1 or len(x) < world:
        return x
    return x[rank::world]


def _process_group() -> tuple[int, int]:
    from ..train import ddp
    return ddp.rank(), ddp.world_size()


class ResumableLoader(InMemoryLoader):
    """``InMemoryLoader`` batches that a run can stop inside an epoch and continue.

    - Sharded: ``batch_size`` is the GLOBAL batch (rounded up to a multiple of ``world``);
      every rank draws the same permutation (one shared ``seed``) and takes its
      :func:`shard` of each global batch, so the ranks together see exactly the batches one
      process would. The permutation wraps round to a multiple of ``world`` so every rank
      has the same number of samples in every step. ``len()`` counts global steps. In one
      process (``world`` 1) the batches are those of ``InMemoryLoader``.
    - Resumable: ``epoch_start_state`` is the shuffle generator's state when the current
      epoch began; set ``generator`` back to it and ``skip`` to the steps done, and the next
      epoch draws the same order and leaves the done steps out. ``yielded`` counts the
      steps of the current epoch so far (skipped ones included).
    - ``sampling_weights`` (N,): each epoch's order is N draws with replacement in
      proportion to them (``run.sampler.balanced_sample_weights``: every class equally
      often), from the same seeded generator, so it resumes the same way.
    """

    def __init__(self, images, labels, batch_size: int = 32, shuffle: bool = False,
                 seed: int | None = None, device=None, drop_last: bool = False,
                 sample_weight=None, rank: int | None = None, world: int | None = None,
                 sampling_weights: torch.Tensor | None = None):
        group_rank, group_world = _process_group() if rank is None or world is None else (0, 1)
        self.rank = group_rank if rank is None else int(rank)
        self.world = group_world if world is None else int(world)
        if not 0 <= self.rank < self.world:
            raise ValueError(f"rank {self.rank} is outside a world of {self.world}")
        if batch_size % self.world:
            rounded = -(-batch_size // self.world) * self.world
            warnings.warn(f"global batch {batch_size} is not a multiple of {self.world} ranks; "
                          f"using {rounded}", UserWarning, stacklevel=2)
            batch_size = rounded
        super().__init__(images, labels, batch_size, shuffle, seed if seed is not None else 0,
                         device, drop_last, sample_weight)
        self.sampling_weights = (None if sampling_weights is None else
                                 torch.as_tensor(sampling_weights, dtype=torch.float64).cpu())
        self.skip = 0
        self.yielded = 0
        self.epoch_start_state = self.generator.get_state()

    def _padded(self) -> int:
        return -(-len(self.images) // self.world) * self.world

    def __len__(self) -> int:
        if self.drop_last:
            return len(self.images) // self.batch_size
        return -(-self._padded() // self.batch_size)

    @property
    def local_batch_size(self) -> int:
        return self.batch_size // self.world

    @property
    def epoch_complete(self) -> bool:
        """Whether the epoch being (or last) iterated yielded all its steps."""
        return self.yielded >= len(self)

    def __iter__(self):
        self.epoch_start_state = self.generator.get_state()
        skip, self.skip = self.skip, 0
        self.yielded = skip
        n = len(self.images)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        if self.sampling_weights is not None:
            order = torch.multinomial(self.sampling_weights, n, replacement=True,
                                      generator=self.generator)
        total = self._padded()
        if total > n:  # wrap round so every rank has the same number of samples
            order = torch.cat([order, order[: total - n]])
        order = order.to(self.images.device)
        for step in range(skip, len(self)):
            lo, hi = step * self.batch_size, min((step + 1) * self.batch_size, total)
            idx = order[lo:hi]
            if self.world > 1:
                idx = idx[shard(len(idx), self.rank, self.world).to(idx.device)]
            self.yielded += 1
            ordered = self.shuffle or self.world > 1 or self.sampling_weights is not None
            yield self._batch(idx if ordered else slice(lo, hi))
