"""A sampler that continues the epoch's permutation where a checkpoint left it (resumed runs see the same batches)."""

from __future__ import annotations

import torch
from torch.utils.data import Sampler


class ResumableRandomSampler(Sampler[int]):
    """A seeded permutation per epoch (seed, epoch) that can start part-way through `start_epoch`."""

    def __init__(self, n: int, seed: int, start_epoch: int = 0, skip: int = 0):
        self.n, self.seed, self.start_epoch, self.skip = n, seed, start_epoch, skip
        self.epoch = start_epoch

    def set_epoch(self, epoch: int) -> None:  # Lightning calls this at every epoch start
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator()
        g.manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        skip = self.skip if self.epoch == self.start_epoch else 0
        return iter(order[skip:])

    def __len__(self) -> int:
        # the full epoch: Lightning sizes every epoch by this, and its restored batch counter already accounts for
        # the part of the resumed epoch that was done before the checkpoint
        return self.n
