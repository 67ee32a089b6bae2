"""NT-Xent, SimCLR's normalised temperature-scaled cross-entropy (Chen et al. 2020, Eq. 1), over 2N views."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from csim.losses import Loss, positive


class NTXent(Loss):
    """The symmetric 2N-view contrastive loss.

    Inputs: emb_a [N, d] and emb_b [N, d], two views of the same N examples (row i of each). Labels and hard
    negatives are not used (the other 2N - 2 views of the batch are the negatives).
    With z = [a; b] (2N rows, L2-normalised) and s_ij = cos(z_i, z_j) / temperature, each of the 2N views is an anchor
    whose positive is the other view of its example and whose denominator runs over all k != i (2N - 1 terms):
        l(i, j) = -log( exp(s_ij) / sum_{k != i} exp(s_ik) ),   loss = mean over the 2N anchors
    i.e. both directions, (a -> b) and (b -> a), averaged. Unlike SimCSE's InfoNCE (N x N), the anchor's own side of
    the batch also supplies negatives.
    """

    in_batch_negatives = True

    def __init__(self, temperature: float = 0.5):
        super().__init__()
        self.temperature = positive("loss.temperature", temperature, " (SimCLR uses 0.5 at batch 4096; SimCSE 0.05)")

    def forward(self, emb_a, emb_b, labels=None, emb_neg=None):
        n = emb_a.shape[0]
        z = F.normalize(torch.cat([emb_a, emb_b], dim=0), dim=-1)
        sim = z @ z.T / self.temperature
        self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
        sim = sim.masked_fill(self_mask, float("-inf"))  # k != i
        target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
        return F.cross_entropy(sim, target)
