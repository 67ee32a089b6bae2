"""Symmetric InfoNCE, CLIP's objective (Radford et al. 2021, Figure 3's pseudocode): one softmax per direction over the
same N x N cosine matrix, a -> b (rows) and b -> a (columns), averaged."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from csim.losses import Loss, positive


class SymmetricInfoNCE(Loss):
    """CLIP's symmetric contrastive loss on two views.

    Inputs: emb_a [N, d], emb_b [N, d] (row i of each is one example's two views). Labels and hard negatives are not
    used. With s_ij = cos(a_i, b_j) / temperature:
        loss_ab = cross-entropy over rows (anchor a_i, candidates b_1..b_N, target b_i)   (SimCSE's InfoNCE)
        loss_ba = cross-entropy over columns (anchor b_j, candidates a_1..a_N, target a_j)
        loss    = (loss_ab + loss_ba) / 2
    CLIP learns the temperature (log-parametrised, initialised at 0.07); here it is fixed, as in SimCSE's setup, unless
    `learn_temperature` is true (then log(1/temperature) is a parameter, CLIP's `logit_scale`, clipped at 100).
    Unlike NT-Xent, an anchor's own side of the batch supplies no negatives.
    """

    in_batch_negatives = True

    def __init__(self, temperature: float = 0.05, learn_temperature: bool = False):
        super().__init__()
        t = positive("loss.temperature", temperature, " (SimCSE uses 0.05; CLIP initialises it at 0.07)")
        self.learn_temperature = bool(learn_temperature)
        scale = torch.tensor(1.0 / t).log()
        self.log_scale = torch.nn.Parameter(scale) if self.learn_temperature else None
        self.register_buffer("_fixed_log_scale", scale, persistent=False)

    def scale(self) -> torch.Tensor:
        if self.log_scale is None:
            return self._fixed_log_scale.exp()
        return self.log_scale.exp().clamp(max=100.0)  # CLIP §2.5: clipped to prevent scaling the logits by > 100

    def forward(self, emb_a, emb_b, labels=None, emb_neg=None):
        a, b = F.normalize(emb_a, dim=-1), F.normalize(emb_b, dim=-1)
        # --- the candidate set: both directions score the batch's own other view (a multi-device run gathers
        # a and b here, before the similarity matrix) ---
        logits = self.scale().to(a.dtype) * (a @ b.T)
        target = torch.arange(a.shape[0], device=a.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
