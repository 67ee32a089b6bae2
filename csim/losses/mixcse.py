"""MixCSE (Zhang et al., "Unsupervised Sentence Representation via Contrastive Learning with Mixing Negatives", AAAI
2022): SimCSE's InfoNCE with extra hard negatives mixed from positive and negative features, under stop-gradient."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from csim.errors import CsimError
from csim.losses import Loss, positive

FORMS = ("code", "paper")


class MixCSE(Loss):
    """InfoNCE over [in-batch positives | mixed negatives].

    Inputs: emb_a [N, d] = h (anchors), emb_b [N, d] = h+ (positives). Labels and hard negatives are not used.
    Everything is scored by cosine / temperature; "sg" is stop-gradient (detach), and mixing is on the raw (not
    normalised) features, as in the official code.

    form: "paper" (§3, Eq. 6-7): anchor i gets one extra negative, h~_i = sg(lambda h+_i + (1 - lambda) h+_{i+1}),
        the mix of its own positive with another example's feature (the next row, as the code chooses it):
            logits_i = [s(h_i, h+_1..h+_N), s(h_i, h~_i)]
    form: "code" (official code, mixcse/models_mix.py `cl_forward`, which produced the published figures): two blocks
        of N columns are appended to the N x N in-batch block,
            m_j = sg(lambda h+_j + (1 - lambda) h+_{j+1})   block 1 [i, j] = s(h_i, m_j)
            n_i = sg(lambda h_i  + (1 - lambda) h_{i+1})    block 2 [i, j] = s(n_i, h+_j)
        and the entries that mix in row i's own pair, block 1 [i, i-1] and block 2 [i, i+1], are set to 0 (the code
        multiplies by a mask, so they stay in the denominator as exp(0) = 1; kept here as written). Block 1's column i
        is the paper's h~_i. Indices wrap around (torch.roll).
    `hard_negative_weight` is added to the diagonal of each mixed block (the code's z3_weight; 0 by default).
    """

    in_batch_negatives = True

    def __init__(self, temperature: float = 0.05, lam: float = 0.6, form: str = "code",
                 hard_negative_weight: float = 0.0):
        super().__init__()
        self.temperature = positive("loss.temperature", temperature, " (MixCSE uses SimCSE's 0.05)")
        if not 0.0 <= float(lam) <= 1.0:
            raise CsimError(f"loss.lam={lam!r} is the mixing weight of the positive feature and must be in [0, 1] "
                            f"(MixCSE's run_unsup_example.sh uses --lambdas 0.6).")
        if form not in FORMS:
            raise CsimError(f"loss.form={form!r}: choose 'code' (the official implementation) or 'paper' (§3, one "
                            f"mixed negative per anchor).")
        self.lam, self.form, self.hard_negative_weight = float(lam), form, float(hard_negative_weight)

    def forward(self, emb_a, emb_b, labels=None, emb_neg=None):
        n = emb_a.shape[0]
        if n < 2:
            raise CsimError("MixCSE mixes each positive with another example's feature: the batch needs >= 2 pairs.")
        # --- the candidate set: the batch's positives (a multi-device run gathers emb_a and emb_b here, before the
        # mixed features are formed from them) ---
        h, hp = emb_a, emb_b
        a = F.normalize(h, dim=-1)
        blocks = [a @ F.normalize(hp, dim=-1).T]
        m = (self.lam * hp + (1 - self.lam) * hp.roll(-1, dims=0)).detach()
        if self.form == "paper":
            blocks.append((a * F.normalize(m, dim=-1)).sum(-1, keepdim=True))
        else:
            eye = torch.eye(n, dtype=a.dtype, device=a.device)
            b1 = (a @ F.normalize(m, dim=-1).T) * (1 - eye.roll(-1, dims=1))       # zero at [i, i-1]
            mix_a = (self.lam * h + (1 - self.lam) * h.roll(-1, dims=0)).detach()
            b2 = (F.normalize(mix_a, dim=-1) @ F.normalize(hp, dim=-1).T) * (1 - eye.roll(1, dims=1))  # zero at [i, i+1]
            blocks += [b1 + self.hard_negative_weight * self.temperature * eye,
                       b2 + self.hard_negative_weight * self.temperature * eye]
        logits = torch.cat(blocks, dim=1) / self.temperature
        return F.cross_entropy(logits, torch.arange(n, device=a.device))
