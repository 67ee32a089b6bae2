"""InfoNCE as in SimCSE (Gao et al. 2021, Eq. 1 and 5), and supervised SimCSE (the same objective with required hard
negatives)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from csim.errors import CsimError
from csim.losses import Loss
from csim.losses.gather import gather_across_devices, gathers


class InfoNCE(Loss):
    """SimCSE's contrastive objective.

    Inputs: emb_a [N, d] (anchors), emb_b [N, d] (positives, row i pairs with anchor i); optional emb_neg [N, d]
    (hard negatives, supervised SimCSE). Labels are not used.
    logits[i, j] = cos(a_i, b_j) / temperature  (N x N; with hard negatives N x 2N, SimCSE's `hard_negative_weight`
    added to the logit of each anchor's own hard negative, SimCSE's code, default 0);
    loss = cross-entropy(logits, arange(N)).
    gather_across_devices: under data parallelism, score each local anchor against every rank's positives (and hard
    negatives), as SimCSE's cl_forward; null (default): on when there is more than one rank; false: local batch only.
    """

    in_batch_negatives = True

    def __init__(self, temperature: float = 0.05, hard_negative_weight: float = 0.0,
                 gather_across_devices: bool | None = None):
        super().__init__()
        self.gather_across_devices = gather_across_devices
        if temperature <= 0:
            raise CsimError(f"loss.temperature={temperature} must be > 0 (SimCSE uses 0.05).")
        self.temperature = temperature
        self.hard_negative_weight = hard_negative_weight

    def forward(self, emb_a, emb_b, labels=None, emb_neg=None):
        a, offset = F.normalize(emb_a, dim=-1), 0
        if gathers(self.gather_across_devices):  # local anchors x every rank's candidates (csim.losses.gather)
            emb_b, offset = gather_across_devices(emb_b)
            emb_neg = gather_across_devices(emb_neg)[0] if emb_neg is not None else None
        target = torch.arange(offset, offset + a.shape[0], device=a.device)  # each anchor's own positive
        logits = a @ F.normalize(emb_b, dim=-1).T / self.temperature
        if emb_neg is not None:
            neg = a @ F.normalize(emb_neg, dim=-1).T / self.temperature
            if self.hard_negative_weight:
                # SimCSE adds the weight to the logit of each anchor's own hard negative (the block's diagonal)
                own = F.one_hot(target, neg.shape[1]).to(neg.dtype)
                neg = neg + self.hard_negative_weight * own
            logits = torch.cat([logits, neg], dim=1)
        return F.cross_entropy(logits, target)  # the mean over the local anchors


class SupervisedSimCSE(InfoNCE):
    """Supervised SimCSE (Gao et al. 2021, §4, Eq. 5): InfoNCE over NLI triplets, the entailment hypothesis as the
    positive and the contradiction hypothesis as a hard negative, so each anchor is scored against N positives and N
    hard negatives (N x 2N logits).

    Inputs: emb_a [N, d] premises, emb_b [N, d] entailment hypotheses, emb_neg [N, d] contradiction hypotheses
    (required). Labels are not used. `hard_negative_weight` is added to the logit of each anchor's own hard negative
    (SimCSE's code; Appendix B's ablation, 0 by default).
    """

    needs_negatives = True

    def forward(self, emb_a, emb_b, labels=None, emb_neg=None):
        if emb_neg is None:
            raise CsimError("The supervised SimCSE loss needs hard negatives (emb_neg), but the batch has none; use "
                            "NLI triplets (data=nli with data.source.form=triplets) or loss=infonce.")
        return super().forward(emb_a, emb_b, labels=labels, emb_neg=emb_neg)
