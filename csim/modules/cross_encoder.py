"""Training a cross-encoder (csim.encoders.cross_encoder.CrossEncoder) on pair sequences (csim.data.module.PairDataModule).

CrossEncoderModule scores each pair and fits the gold. A regression head (num_labels=1) fits score / score_scale with
`regression_loss`: "bce", binary cross-entropy with logits against the score scaled to [0, 1] (sentence-transformers'
CrossEncoder.fit with num_labels=1, its official STS example), or "mse", mean-squared error (BERT's STS-B
regression, Devlin et al. 2019). Classes (NLI) use cross-entropy. The optimiser and schedule are SentenceModule's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from csim.errors import CsimError
from csim.modules.sentence import SentenceModule


class CrossEncoderModule(SentenceModule):
    """score_scale: the regression target is score / score_scale (5: [0, 1], the official STS example; 1: the raw 0-5
    score, BERT's GLUE fine-tuning). regression_loss: bce (needs targets in [0, 1]) | mse."""

    def __init__(self, encoder, loss=None, lr: float = 2e-5, weight_decay: float = 0.0, warmup_ratio: float = 0.0,
                 score_scale: float = 5.0, fused_adamw: bool = False, regression_loss: str = "bce"):
        if loss is not None:
            raise CsimError("A cross-encoder's objective comes from its head (regression or classes), not from a "
                            "loss config; set loss=null (as the cross_encoder_* experiments do).")
        super().__init__(encoder, None, lr=lr, weight_decay=weight_decay, warmup_ratio=warmup_ratio,
                         fused_adamw=fused_adamw)
        if regression_loss not in ("bce", "mse"):
            raise CsimError(f"module.regression_loss={regression_loss!r}: choose bce (sentence-transformers' "
                            f"CrossEncoder) or mse (BERT's STS-B regression).")
        if not score_scale > 0:
            raise CsimError(f"module.score_scale={score_scale} must be positive (5 maps STS-B's 0-5 onto [0, 1]).")
        self.score_scale, self.regression_loss = score_scale, regression_loss

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
            target = labels.to(out.dtype) / self.score_scale
            if self.regression_loss == "mse":
                loss = F.mse_loss(out, target)
            else:
                if float(target.min()) < 0.0 or float(target.max()) > 1.0:
                    raise CsimError(f"module.regression_loss=bce needs targets in [0, 1], but score / score_scale "
                                    f"spans [{float(target.min()):g}, {float(target.max()):g}]; set module.score_scale "
                                    f"to the score's maximum (STS-B: 5) or use regression_loss=mse.")
                loss = F.binary_cross_entropy_with_logits(out, target)
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
