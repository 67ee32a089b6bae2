"""Triplet loss (Schroff et al. 2015, FaceNet; SBERT §3 "Triplet Objective Function")."""

from __future__ import annotations

import torch

from csim.errors import CsimError
from csim.losses import Loss
from csim.losses.gather import gather_across_devices, gathers, pairwise_sq_dist

MINING = ("none", "batch_hard", "batch_semi_hard")
DISTANCES = ("euclidean", "squared_euclidean")


class Triplet(Loss):
    """max(||s_a - s_p|| - ||s_a - s_n|| + margin, 0), averaged over the anchors.

    Inputs: emb_a [N, d] anchors, emb_b [N, d] positives (row i of each is a pair); emb_neg [N, d] negatives (row i
    the negative of anchor i), required when mining="none", optional otherwise. Labels are not used.
    distance: "euclidean" (SBERT: ||.|| is the Euclidean distance, margin 1) or "squared_euclidean" (FaceNet's form).
    mining: which negative each anchor is scored against.
      - "none": its own negative, emb_neg[i].
      - "batch_hard": the closest candidate in the batch; the candidates of anchor i are every other example's
        positive (emb_b[j], j != i) and every given negative (all of emb_neg).
      - "batch_semi_hard": FaceNet §3.2's semi-hard negative: the closest candidate that is farther from the anchor
        than its positive (d_an > d_ap); when no candidate is, the farthest candidate (as TensorFlow Addons'
        triplet_semihard_loss).
    gather_across_devices (mining only): under data parallelism, the candidates are every rank's positives and
    negatives; null (default): on when there is more than one rank; false: the local batch only.
    Distances come from ||x||^2 + ||y||^2 - 2 x.y (csim.losses.gather.pairwise_sq_dist): no [N, M, d] tensor.
    """


    def __init__(self, margin: float = 1.0, distance: str = "euclidean", mining: str = "none",
                 gather_across_devices: bool | None = None):
        super().__init__()
        self.gather_across_devices = gather_across_devices
        if mining not in MINING:
            raise CsimError(f"loss.mining={mining!r} is not a mining strategy; choose one of {', '.join(MINING)}.")
        if distance not in DISTANCES:
            raise CsimError(f"loss.distance={distance!r}; choose one of {', '.join(DISTANCES)}.")
        if margin < 0:
            raise CsimError(f"loss.margin={margin} must be >= 0 (SBERT uses 1).")
        self.margin, self.distance, self.mining = margin, distance, mining
        # what the data must provide: a given negative without mining, otherwise the rest of the batch
        self.needs_negatives = mining == "none"
        self.in_batch_negatives = mining != "none"

    def _dist(self, x, y):
        """Pairwise distances [len(x), len(y)]."""
        return self._root(pairwise_sq_dist(x, y))

    def _root(self, d2):
        return d2 if self.distance == "squared_euclidean" else d2.clamp_min(1e-12).sqrt()

    def forward(self, emb_a, emb_b, labels=None, emb_neg=None):
        n = emb_a.shape[0]
        d_ap = self._root((emb_a - emb_b).pow(2).sum(-1))  # row i with row i: [N, d], no pairwise tensor
        if self.mining == "none":
            if emb_neg is None:
                raise CsimError("The triplet loss with loss.mining=none needs a negative for each anchor (emb_neg); "
                                "use data with hard negatives (NLI triplets) or set loss.mining=batch_hard or "
                                "batch_semi_hard to mine negatives in the batch.")
            d_an = self._root((emb_a - emb_neg).pow(2).sum(-1))
        else:
            offset = 0
            if gathers(self.gather_across_devices):  # every rank's candidates (csim.losses.gather)
                emb_b, offset = gather_across_devices(emb_b)
                emb_neg = gather_across_devices(emb_neg)[0] if emb_neg is not None else None
            cand = self._dist(emb_a, emb_b)
            own = torch.arange(offset, offset + n, device=emb_a.device)
            valid = ~torch.nn.functional.one_hot(own, emb_b.shape[0]).bool()  # another example's positive
            if emb_neg is not None:
                cand = torch.cat([cand, self._dist(emb_a, emb_neg)], dim=1)
                valid = torch.cat([valid, torch.ones(n, emb_neg.shape[0], dtype=torch.bool, device=emb_a.device)], 1)
            if not bool(valid.any(dim=1).all()):
                raise CsimError("In-batch negative mining needs at least 2 examples per batch; set batch_size>=2.")
            inf = torch.finfo(cand.dtype).max
            hardest = cand.masked_fill(~valid, inf).min(dim=1).values
            if self.mining == "batch_hard":
                d_an = hardest
            else:
                outside = valid & (cand > d_ap.unsqueeze(1))
                semi = cand.masked_fill(~outside, inf).min(dim=1).values
                farthest = cand.masked_fill(~valid, -inf).max(dim=1).values
                d_an = torch.where(outside.any(dim=1), semi, farthest)
        return torch.relu(d_ap - d_an + self.margin).mean()
