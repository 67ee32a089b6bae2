"""Training a cross-encoder (csim.encoders.cross_encoder.CrossEncoder) on pair sequences (csim.data.module.PairDataModule).

CrossEncoderModule scores each pair and fits the gold: mean-squared error against score / score_scale for a regression
head (num_labels=1; BERT's STS-B setup, Devlin et al. 2019), cross-entropy for classes (NLI). The optimiser and
schedule are SentenceModule's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from csim.errors import CsimError
from csim.modules.sentence import SentenceModule


class CrossEncoderModule(SentenceModule):
    """score_scale: the regression target is score / score_scale (1: the raw 0-5 STS-B score, as BERT's GLUE
    fine-tuning; 5: [0, 1])."""

    def __init__(self, encoder, loss=None, lr: float = 2e-5, weight_decay: float = 0.0, warmup_ratio: float = 0.0,
                 score_scale: float = 1.0, fused_adamw: bool = False):
        if loss is not None:
            raise CsimError("A cross-encoder's objective comes from its head (regression or classes), not from a "
                            "loss config; set loss=null (as the cross_encoder_* experiments do).")
        super().__init__(encoder, None, lr=lr, weight_decay=weight_decay, warmup_ratio=warmup_ratio,
                         fused_adamw=fused_adamw)
        self.score_scale = score_scale

    def training_step(self, batch, batch_idx):
        labels = batch.get("labels")
        if labels is None:
            raise CsimError("Cross-encoder training needs a gold score or class per pair; use data=stsb_train or "
                            "data=nli.")
        out = self.encoder(batch["tokens"])
        if self.encoder.num_labels == 1:
            if not labels.is_floating_point():
                raise CsimError("A regression cross-encoder (encoder.num_labels=1) needs scores, but the data has "
                                "class labels; set encoder.num_labels to the number of classes (NLI: 3).")
            loss = F.mse_loss(out, labels.to(out.dtype) / self.score_scale)
        else:
            if labels.is_floating_point():
                raise CsimError(f"A classifier cross-encoder (encoder.num_labels={self.encoder.num_labels}) needs "
                                f"class labels, but the data has scores; set encoder.num_labels=1 for regression.")
            loss = F.cross_entropy(out, labels.long())
        if not torch.isfinite(loss):
            raise CsimError(f"The loss became {loss.item()} at step {self.global_step}; training stopped. Lower the "
                            f"learning rate (lr) or check the data.")
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=out.shape[0])
        return loss
