"""The Lightning module that composes encoder + loss (the augmentation lives in the data module).

One training step, as SimCSE's `cl_forward`: every view of the batch goes through the encoder in one forward pass
(so two copies of the same sentence get different dropout masks), the embeddings are split back into views, and
the loss turns them into a scalar.
"""

from __future__ import annotations

import copy
import math

import pytorch_lightning as pl
import torch
from transformers import get_linear_schedule_with_warmup

from csim.errors import CsimError


class SentenceModule(pl.LightningModule):
    """two_encoders: SimCSE Table 2's (f_theta1, f_theta2) column: view 2 (and hard negatives) go through a second copy
    of the encoder, initialised from the same checkpoint. The first encoder (the one that reads the original
    sentence, view 1) is the one evaluated and saved: it is the encoder of the anchor side, which is what a user
    embeds sentences with."""

    def __init__(self, encoder, loss, lr: float = 3e-5, weight_decay: float = 0.0, warmup_ratio: float = 0.0,
                 two_encoders: bool = False, fused_adamw: bool = False):
        super().__init__()
        self.encoder, self.loss = encoder, loss
        if hasattr(loss, "bind"):  # a loss with parameters sized by the encoder (SBERT's softmax classifier)
            loss.bind(encoder.dim)
        self.encoder2 = copy.deepcopy(encoder) if two_encoders else None
        self.lr, self.weight_decay, self.warmup_ratio, self.fused_adamw = lr, weight_decay, warmup_ratio, fused_adamw

    def embed_views(self, batch) -> list[torch.Tensor]:
        tokens, v = batch["tokens"], batch["n_views"]
        if self.encoder2 is None:
            emb = self.encoder(tokens, head=True)
            return list(emb.chunk(v, dim=0))
        n = tokens["input_ids"].shape[0] // v if "input_ids" in tokens else None
        first = {k: t[:n] for k, t in tokens.items()}
        rest = {k: t[n:] for k, t in tokens.items()}
        return [self.encoder(first, head=True)] + list(self.encoder2(rest, head=True).chunk(v - 1, dim=0))

    def training_step(self, batch, batch_idx):
        views = self.embed_views(batch)
        loss = self.loss(views[0], views[1], labels=batch.get("labels"), emb_neg=views[2] if len(views) > 2 else None)
        if not torch.isfinite(loss):
            raise CsimError(f"The loss became {loss.item()} at step {self.global_step}; training stopped. The last good "
                            f"checkpoint is kept in the run directory. Lower the learning rate (lr) or check the data.")
        # each rank's loss is the mean over its own anchors (csim.losses.gather); the logged value is their mean
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=views[0].shape[0],
                 sync_dist=self.trainer.world_size > 1)
        return loss

    def configure_optimizers(self):
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            if p.requires_grad:
                (no_decay if (p.ndim < 2 or "LayerNorm" in name or "bias" in name) else decay).append(p)
        groups = [{"params": decay, "weight_decay": self.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        opt = torch.optim.AdamW(groups, lr=self.lr, fused=self.fused_adamw or None)
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total):
            raise CsimError("trainer.max_steps or trainer.max_epochs must bound the run (the LR schedule decays linearly to 0).")
        # warm-up steps rounded up, as HF Trainer (get_warmup_steps: math.ceil(steps * warmup_ratio)) and
        # sentence-transformers' examples (math.ceil(len(train_dataloader) * num_epochs * 0.1)) do
        sched = get_linear_schedule_with_warmup(opt, math.ceil(self.warmup_ratio * total), int(total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def export(self, directory) -> None:
        """The trained encoder as a folder others can load (the encoder's own `save`: HF + sentence-transformers for a
        transformer, csim_encoder.json for word-vector encoders); a second encoder (two_encoders) is not exported."""
        self.encoder.save(directory)
