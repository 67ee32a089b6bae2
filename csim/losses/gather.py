"""In-batch negatives across devices: gather every rank's embeddings, keeping the gradient of each rank's own rows.

With data parallelism (DDP, W processes) each rank embeds its own slice of the global batch. An in-batch loss must
see the global batch, or each anchor gets N_local - 1 negatives instead of N_global - 1 (SimCSE's `cl_forward`
all-gathers z1/z2/z3; sentence-transformers' MultipleNegativesRankingLoss has `gather_across_devices`).

`torch.distributed.nn.functional.all_gather` is differentiable: its backward sums, over every rank, the gradient
that rank's loss sends to each gathered row and returns to each rank the rows it contributed. So with each rank's
loss the mean over its *local* anchors (scored against the global candidates), DDP's gradient average over W ranks
gives exactly the gradient of the single-process loss on the concatenated batch (tests/test_distributed.py):
  (1/W) sum_k d(loss_k)/d theta = d/d theta [ (1/W) sum_k mean_local_k ] = d(mean over all anchors)/d theta
(for equal local batch sizes, which the training loader gives: every rank the same batch size, drop_last).
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, world size) of the default process group; (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gathers(setting: bool | None) -> bool:
    """A loss's `gather_across_devices` setting: None (default) gathers whenever there is more than one rank."""
    return world()[1] > 1 and (setting is None or bool(setting))


def gather_across_devices(t: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(every rank's rows concatenated in rank order, the index of this rank's first row in it).

    Rows of this rank keep their autograd graph; rows of other ranks carry the gradient back to their owner
    (torch.distributed.nn.functional.all_gather). Ranks may hold different numbers of rows (padded for the
    collective, trimmed after). Without a process group (or with one rank) returns (t, 0)."""
    rank, size = world()
    if size == 1:
        return t, 0
    n = torch.tensor([t.shape[0]], device=t.device)
    counts = [torch.zeros_like(n) for _ in range(size)]
    dist.all_gather(counts, n)
    counts = [int(c) for c in counts]
    longest = max(counts)
    padded = t if t.shape[0] == longest else torch.cat([t, t.new_zeros(longest - t.shape[0], *t.shape[1:])])
    if t.requires_grad:
        import warnings

        from torch.distributed.nn.functional import all_gather

        with warnings.catch_warnings():  # deprecated for the private _functional_collectives; still the public API
            warnings.simplefilter("ignore", FutureWarning)
            parts = all_gather(padded.contiguous())
    else:  # labels, or embeddings without a graph: the plain collective
        parts = [torch.empty_like(padded) for _ in range(size)]
        dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:c] for p, c in zip(parts, counts)]), sum(counts[:rank])


def pairwise_sq_dist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """||x_i - y_j||^2 as [len(x), len(y)] from ||x||^2 + ||y||^2 - 2 x.y (one matmul, no [N, M, d] difference
    tensor: at batch 512, d 768 that tensor is 0.8-4.8 GB), clamped at 0 against rounding."""
    d2 = x.pow(2).sum(-1, keepdim=True) + y.pow(2).sum(-1).unsqueeze(0) - 2.0 * (x @ y.T)
    return d2.clamp_min(0.0)
