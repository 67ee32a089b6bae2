"""GS-InfoNCE (Wu et al., "Smoothed Contrastive Learning for Unsupervised Sentence Embedding", COLING 2022): SimCSE's
InfoNCE with Gaussian noise vectors appended to the negatives of every anchor."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from csim.errors import CsimError
from csim.losses import Loss, positive


class GaussianSmoothedInfoNCE(Loss):
    """InfoNCE plus `noise_size` random negatives drawn from N(0, noise_std^2 I) at every step.

    Inputs: emb_a [N, d] (anchors), emb_b [N, d] (positives); optional emb_neg [N, d] (hard negatives, appended as in
    SimCSE). Labels are not used. With g_1..g_M ~ N(0, noise_std^2 I_d) drawn afresh each call (torch's generator, so
    the run's seed fixes them):
        logits_i = [cos(a_i, b_1..b_N), cos(a_i, g_1..g_M)(, cos(a_i, neg_1..neg_N))] / temperature
        loss     = cross-entropy(logits, arange(N))
    Official code (caskcsg/sentemb, gsInfoNCE/gsInfoNCE/models.py, cl_forward): `torch.normal(0, random_std,
    size=(random_size, d))`, cosine to z1 only, concatenated after the in-batch block. The noise carries no gradient.
    """

    in_batch_negatives = True

    def __init__(self, temperature: float = 0.05, noise_size: int = 192, noise_std: float = 0.5):
        super().__init__()
        self.temperature = positive("loss.temperature", temperature, " (SimCSE and GS-InfoNCE use 0.05)")
        if isinstance(noise_size, bool) or not isinstance(noise_size, int) or noise_size < 0:
            raise CsimError(f"loss.noise_size={noise_size!r} must be a whole number >= 0 (the number of Gaussian "
                            f"negatives per step; GS-InfoNCE uses 192 for BERT-base, run.sh `random_size`).")
        self.noise_size = noise_size
        self.noise_std = positive("loss.noise_std", noise_std, " (GS-InfoNCE run.sh: 0.5 for BERT-base)")

    def noise(self, d: int, like: torch.Tensor) -> torch.Tensor:
        """The step's Gaussian negatives [noise_size, d]."""
        return torch.randn(self.noise_size, d, dtype=like.dtype).to(like.device) * self.noise_std

    def forward(self, emb_a, emb_b, labels=None, emb_neg=None):
        a = F.normalize(emb_a, dim=-1)
        # --- the candidate set: the batch's positives (a multi-device run gathers emb_b here), then the noise ---
        parts = [F.normalize(emb_b, dim=-1)]
        if self.noise_size:
            parts.append(F.normalize(self.noise(a.shape[1], a), dim=-1))
        if emb_neg is not None:
            parts.append(F.normalize(emb_neg, dim=-1))
        logits = a @ torch.cat(parts).T / self.temperature
        return F.cross_entropy(logits, torch.arange(a.shape[0], device=a.device))
