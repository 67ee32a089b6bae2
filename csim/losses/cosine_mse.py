"""SBERT's regression objective (Reimers & Gurevych 2019, §3): MSE between cos(u, v) and the gold score."""

from __future__ import annotations

import torch.nn.functional as F

from csim.errors import CsimError
from csim.losses import Loss, positive


class CosineMSE(Loss):
    """loss = mean_i (cos(u_i, v_i) - score_i / max_score)^2.

    Inputs: emb_a [N, d] (u), emb_b [N, d] (v), labels [N] gold similarity scores in [0, max_score] (STS-B: 0-5, so
    the target is in [0, 1], as sentence-transformers' CosineSimilarityLoss with STS-B labels divided by 5).
    emb_neg is not used.
    """

    needs_labels = True

    def __init__(self, max_score: float = 5.0):
        super().__init__()
        self.max_score = positive("loss.max_score", max_score, " (STS-B scores are 0-5)")

    def forward(self, emb_a, emb_b, labels=None, emb_neg=None):
        if labels is None:
            raise CsimError("The cosine_mse loss needs gold scores; use data=stsb_train (pairs with a 0-5 score).")
        target = labels.to(emb_a.dtype) / self.max_score
        return F.mse_loss(F.cosine_similarity(emb_a, emb_b, dim=-1), target)
