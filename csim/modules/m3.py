"""M3-style multi-function training (BGE-M3, Chen et al. 2024, §3.3 "Self-Knowledge Distillation") on SimCSE's pairs:
the dense, sparse and multi-vector heads of one encoder (csim/encoders/m3.py) trained together.

With s_* the [n, n] score matrices of view 1 against view 2 divided by the temperature tau, and InfoNCE(s) the
cross-entropy of each row against its own pair:
  s_inter = w1 s_dense + w2 s_lex + w3 s_mul                                     (w = 1, 0.3, 1)
  L       = (l1 InfoNCE(s_dense) + l2 InfoNCE(s_lex) + l3 InfoNCE(s_mul) + InfoNCE(s_inter)) / 4   (l = 1, 0.1, 1)
  L'_*    = -sum_j softmax(s_inter)_j log softmax(s_*)_j, averaged over rows; the teacher s_inter is detached
  L'      = (l1 L'_dense + l2 L'_lex + l3 L'_mul) / 3
  loss    = (L + L') / 2            (self_distill: true; L alone otherwise)
Transcribed from the paper's §3.3 and the official code (FlagOpen/FlagEmbedding, FlagEmbedding/BGE_M3/modeling.py
`forward`: ensemble_scores = dense + 0.3 sparse + colbert; loss = (dense + ensemble + 0.1 sparse + colbert) / 4;
loss += (distill dense + 0.1 distill sparse + distill colbert) / 3; loss = loss / 2; teacher = softmax of the
detached ensemble scores). The official self_distill_start_step (-1: from the first step) is the default here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from csim.errors import CsimError
from csim.modules.sentence import SentenceModule


def m3_loss(scores: dict[str, torch.Tensor], lambdas: list[float], self_distill: bool = True) -> dict[str, torch.Tensor]:
    """The objective from temperature-scaled score matrices (keys dense, sparse, multivec, combined; row i's positive
    in column i). Returns the total and its parts."""
    n = scores["dense"].shape[0]
    target = torch.arange(n, device=scores["dense"].device)
    ce = {k: F.cross_entropy(v.float(), target) for k, v in scores.items()}
    l1, l2, l3 = lambdas
    loss = (l1 * ce["dense"] + l2 * ce["sparse"] + l3 * ce["multivec"] + ce["combined"]) / 4
    out = {f"infonce_{k}": v.detach() for k, v in ce.items()}
    if self_distill:
        teacher = torch.softmax(scores["combined"].detach().float(), dim=-1)
        kd = {k: -(teacher * torch.log_softmax(scores[k].float(), dim=-1)).sum(-1).mean()
              for k in ("dense", "sparse", "multivec")}
        loss = (loss + (l1 * kd["dense"] + l2 * kd["sparse"] + l3 * kd["multivec"]) / 3) / 2
        out.update({f"distill_{k}": v.detach() for k, v in kd.items()})
    out["loss"] = loss
    return out


class M3Module(SentenceModule):
    """SentenceModule for an M3Encoder: view 1 of each sentence is the query side, view 2 the positive, the rest of
    the batch the negatives, for every head. `temperature` divides every head's scores (the official code divides
    dense, sparse and colbert scores by the same temperature). Only InfoNCE-style in-batch pairs: the configured
    loss is not used and must be infonce (its temperature is read)."""

    def __init__(self, encoder, loss, lambdas: list[float] | None = None, self_distill: bool = True, **kwargs):
        super().__init__(encoder, loss, **kwargs)
        if not hasattr(encoder, "score_matrices"):
            raise CsimError(f"module=m3 trains BGE-M3's three heads; it needs encoder=m3, not {type(encoder).__name__}.")
        if self.encoder2 is not None:
            raise CsimError("module.two_encoders=true does not combine with module=m3; choose one.")
        if type(loss).__name__ != "InfoNCE" or getattr(loss, "hard_negative_weight", 0.0):
            raise CsimError("module=m3 computes each head's InfoNCE itself; use loss=infonce (its temperature is "
                            "read) without hard_negative_weight.")
        self.temperature = float(loss.temperature)
        self.lambdas = [float(x) for x in (lambdas if lambdas is not None else [1.0, 0.1, 1.0])]
        if len(self.lambdas) != 3:
            raise CsimError(f"module.lambdas={lambdas!r} must be three numbers: [dense, sparse, multivec].")
        self.self_distill = bool(self_distill)

    def scores(self, batch) -> dict[str, torch.Tensor]:
        tokens, v = batch["tokens"], batch["n_views"]
        reps = self.encoder.heads(tokens)
        n = tokens["input_ids"].shape[0] // v
        q = {k: t[:n] for k, t in reps.items()}
        p = {k: t[n:2 * n] for k, t in reps.items()}
        return {k: s / self.temperature for k, s in self.encoder.score_matrices(q, p).items()}

    def training_step(self, batch, batch_idx):
        parts = m3_loss(self.scores(batch), self.lambdas, self.self_distill)
        loss = parts.pop("loss")
        if not torch.isfinite(loss):
            raise CsimError(f"The loss became {loss.item()} at step {self.global_step}; training stopped. The last good "
                            f"checkpoint is kept in the run directory. Lower the learning rate (lr) or check the data.")
        n = batch["tokens"]["input_ids"].shape[0] // batch["n_views"]
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=n)
        for k, val in parts.items():
            self.log(f"train/{k}", val, on_step=True, on_epoch=False, batch_size=n)
        return loss
