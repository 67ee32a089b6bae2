"""A sampler that continues the epoch's permutation where a checkpoint left it (resumed runs see the same batches),
on one process or as one rank of a data-parallel run.

Hand-written on purpose: torch's DistributedSampler cannot start part-way through an epoch, and torchdata's
StatefulDataLoader is not a dependency of csim; Lightning keeps a DistributedSampler that it is given (it wraps any
other sampler in its DistributedSamplerWrapper, whose index arithmetic ignores a partial first epoch)."""

from __future__ import annotations

import torch
from torch.utils.data import DistributedSampler


class ResumableRandomSampler(DistributedSampler):
    """A seeded permutation of n examples per epoch (seed, epoch), the same on every rank; rank r of W takes every
    W-th index from position r of its first n // W * W entries (as DistributedSampler with drop_last), and in
    `start_epoch` skips the first `skip` of its own indices (those its batches used before the checkpoint)."""

    def __init__(self, n: int, seed: int, start_epoch: int = 0, skip: int = 0, rank: int = 0, world_size: int = 1):
        super().__init__(range(n), num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.n, self.start_epoch, self.skip = n, start_epoch, skip
        self.epoch = start_epoch

    def __iter__(self):
        g = torch.Generator()
        g.manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()[: self.total_size][self.rank :: self.num_replicas]
        skip = self.skip if self.epoch == self.start_epoch else 0
        return iter(order[skip:])

    def __len__(self) -> int:
        # the rank's full epoch: Lightning sizes every epoch by this, and its restored batch counter already
        # accounts for the part of the resumed epoch that was done before the checkpoint
        return self.num_samples
