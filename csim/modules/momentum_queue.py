"""A sentence module with a momentum encoder and a queue of its past embeddings as extra negatives (MoCo, He et al.
2020, §3.2; for sentences: ESimCSE, Wu et al. COLING 2022, §3.2 "Momentum Contrast")."""

from __future__ import annotations

import copy

import torch

from csim.errors import CsimError
from csim.modules.sentence import SentenceModule


class MomentumQueueModule(SentenceModule):
    """SentenceModule + a momentum encoder and a queue.

    momentum encoder: a copy of the encoder (its pooler head included), never trained by gradient; before each step's
        loss it moves towards the encoder, theta_m <- momentum * theta_m + (1 - momentum) * theta (ESimCSE §3.2,
        Eq. 4; the official code updates inside the forward, after the encoder's pass and before the loss).
    queue: the last `queue_size` embeddings the momentum encoder produced for view 1 (the sentence itself, ESimCSE's
        x) of the previous batches, encoded with dropout off (the official trainer puts the model in eval mode for
        that pass). The loss receives them as `emb_neg` (an [M, d] block of negatives after the in-batch block:
        InfoNCE's N x (N + M) logits); the current batch is enqueued only after its loss, so a sentence is never
        its own negative in the step that encodes it. The queue is a buffer (saved in checkpoints: a resumed run
        continues with the same queue) and carries no gradient.
    Official code: caskcsg/sentemb ESimCSE/esimcse/trainers.py `compute_loss` (pre_z1, neg_size) and models.py
    (momentum_model). Only the first encoder is evaluated and exported, as in SentenceModule.
    """

    def __init__(self, encoder, loss, queue_size: int = 160, momentum: float = 0.995, **kwargs):
        super().__init__(encoder, loss, **kwargs)
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise CsimError(f"module.queue_size={queue_size!r} must be a whole number >= 1 (ESimCSE: 2.5 x the "
                            f"batch size, 160 at batch 64).")
        if not 0.0 <= float(momentum) < 1.0:
            raise CsimError(f"module.momentum={momentum!r} must be in [0, 1) (ESimCSE: 0.995).")
        if getattr(loss, "hard_negative_weight", 0.0):
            raise CsimError("loss.hard_negative_weight must be 0 with the momentum queue: the queue's negatives "
                            "are not paired with the anchors, so there is no 'own' hard negative to weight.")
        if self.encoder2 is not None:
            raise CsimError("module.two_encoders=true does not combine with the momentum queue; choose one.")
        self.queue_size, self.momentum = queue_size, float(momentum)
        self.momentum_encoder = copy.deepcopy(encoder)
        for p in self.momentum_encoder.parameters():
            p.requires_grad_(False)
        self.register_buffer("queue", torch.zeros(queue_size, encoder.dim))
        self.register_buffer("queue_len", torch.zeros((), dtype=torch.long))

    def queued(self) -> torch.Tensor | None:
        """The current negatives, oldest first ([queue_len, d]); None while the queue is empty."""
        n = int(self.queue_len)
        return self.queue[:n] if n else None

    @torch.no_grad()
    def momentum_update(self) -> None:
        for p_m, p in zip(self.momentum_encoder.parameters(), self.encoder.parameters()):
            p_m.mul_(self.momentum).add_(p.detach(), alpha=1.0 - self.momentum)

    @torch.no_grad()
    def enqueue(self, emb: torch.Tensor) -> None:
        """Append emb [n, d] and keep the last queue_size rows (the official code's cat(...)[-neg_size:])."""
        kept = torch.cat([self.queue[: int(self.queue_len)], emb.detach().to(self.queue.dtype)])[-self.queue_size:]
        self.queue[: kept.shape[0]] = kept
        self.queue_len.fill_(kept.shape[0])

    @torch.no_grad()
    def encode_for_queue(self, batch) -> torch.Tensor:
        tokens, v = batch["tokens"], batch["n_views"]
        n = next(iter(tokens.values())).shape[0] // v
        first = {k: t[:n] for k, t in tokens.items()}
        was_training = self.momentum_encoder.training
        self.momentum_encoder.eval()  # dropout off for the queue's embeddings (the official trainer's model.eval())
        try:
            return self.momentum_encoder(first, head=True)
        finally:
            self.momentum_encoder.train(was_training)

    def training_step(self, batch, batch_idx):
        views = self.embed_views(batch)
        self.momentum_update()
        loss = self.loss(views[0], views[1], labels=batch.get("labels"), emb_neg=self.queued())
        if not torch.isfinite(loss):
            raise CsimError(f"The loss became {loss.item()} at step {self.global_step}; training stopped. The last good "
                            f"checkpoint is kept in the run directory. Lower the learning rate (lr) or check the data.")
        self.enqueue(self.encode_for_queue(batch))
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=views[0].shape[0])
        return loss
