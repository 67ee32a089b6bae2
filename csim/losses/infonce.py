"""InfoNCE as in SimCSE (Gao et al. 2021, Eq. 1 and 5), and supervised SimCSE (the same objective with required hard
negatives)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from csim.errors import CsimError
from csim.losses import Loss


class InfoNCE(Loss):
    """SimCSE's contrastive objective.

    Inputs: emb_a [N, d] (anchors), emb_b [N, d] (positives, row i pairs with anchor i); optional emb_neg [N, d]
    (hard negatives, supervised SimCSE). Labels are not used.
    logits[i, j] = cos(a_i, b_j) / temperature  (N x N; with hard negatives N x 2N, SimCSE's `hard_negative_weight`
    added to the logit of each anchor's own hard negative, SimCSE's code, default 0);
    loss = cross-entropy(logits, arange(N)).
    """

    in_batch_negatives = True

    def __init__(self, temperature: float = 0.05, hard_negative_weight: float = 0.0):
        super().__init__()
        if temperature <= 0:
            raise CsimError(f"loss.temperature={temperature} must be > 0 (SimCSE uses 0.05).")
        self.temperature = temperature
        self.hard_negative_weight = hard_negative_weight

    def forward(self, emb_a, emb_b, labels=None, emb_neg=None):
        a = F.normalize(emb_a, dim=-1)
        logits = a @ F.normalize(emb_b, dim=-1).T / self.temperature
        if emb_neg is not None:
            neg = a @ F.normalize(emb_neg, dim=-1).T / self.temperature
            if self.hard_negative_weight:
                # SimCSE adds the weight to the logits on the diagonal of the hard-negative block
                neg = neg + self.hard_negative_weight * torch.eye(neg.shape[0], device=neg.device, dtype=neg.dtype)
            logits = torch.cat([logits, neg], dim=1)
        target = torch.arange(a.shape[0], device=a.device)
        return F.cross_entropy(logits, target)


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
