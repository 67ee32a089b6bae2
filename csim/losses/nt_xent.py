"""NT-Xent, SimCLR's normalised temperature-scaled cross-entropy (Chen et al. 2020, Eq. 1), over 2N views."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from csim.losses import Loss, positive
from csim.losses.gather import gather_across_devices, gathers


class NTXent(Loss):
    """The symmetric 2N-view contrastive loss.

    Inputs: emb_a [N, d] and emb_b [N, d], two views of the same N examples (row i of each). Labels and hard
    negatives are not used (the other 2N - 2 views of the batch are the negatives).
    With z = [a; b] (2N rows, L2-normalised) and s_ij = cos(z_i, z_j) / temperature, each of the 2N views is an anchor
    whose positive is the other view of its example and whose denominator runs over all k != i (2N - 1 terms):
        l(i, j) = -log( exp(s_ij) / sum_{k != i} exp(s_ik) ),   loss = mean over the 2N anchors
    i.e. both directions, (a -> b) and (b -> a), averaged. Unlike SimCSE's InfoNCE (N x N), the anchor's own side of
    the batch also supplies negatives.
    gather_across_devices: under data parallelism, the local 2N anchors are scored against every rank's 2N views;
    null (default): on when there is more than one rank; false: the local batch only.
    """

    in_batch_negatives = True

    def __init__(self, temperature: float = 0.5, gather_across_devices: bool | None = None):
        super().__init__()
        self.gather_across_devices = gather_across_devices
        self.temperature = positive("loss.temperature", temperature, " (SimCLR uses 0.5 at batch 4096; SimCSE 0.05)")

    def forward(self, emb_a, emb_b, labels=None, emb_neg=None):
        n, offset = emb_a.shape[0], 0
        all_a, all_b = emb_a, emb_b
        if gathers(self.gather_across_devices):  # every rank's views as candidates (csim.losses.gather)
            all_a, offset = gather_across_devices(emb_a)
            all_b = gather_across_devices(emb_b)[0]
        m = all_a.shape[0]  # examples in the (global) batch: z = [all a; all b], 2m rows
        z = F.normalize(torch.cat([all_a, all_b], dim=0), dim=-1)
        local = torch.arange(offset, offset + n, device=z.device)
        rows = torch.cat([local, local + m])  # this rank's 2n anchors: its a's, then its b's
        sim = z[rows] @ z.T / self.temperature
        sim = sim.masked_fill(F.one_hot(rows, 2 * m).bool(), float("-inf"))  # k != i
        target = torch.cat([local + m, local])
        return F.cross_entropy(sim, target)  # the mean over the local anchors
