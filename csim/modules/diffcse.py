"""DiffCSE (Chuang et al., NAACL 2022): unsupervised SimCSE + conditional replaced-token detection (RTD) on an
MLM-edited copy of each sentence, the discriminator conditioned on the sentence embedding.

Transcribed from the official code (voidism/DiffCSE):
  masking     train.py OurDataCollatorWithPadding.mask_tokens (lines ~515-540): every non-special token is chosen
              with probability `mask_ratio` (--masking_ratio, set as tokenizer.custom_mlm_prob by trainers.py:482);
              of the chosen, 80% become [MASK], half of the rest a random token id in [0, len(tokenizer)), the rest
              stay. Torch's global generator, draws in the collator's order (CPU tensors).
  generator   diffcse/models.py cl_forward (lines ~182-187): with no gradient, g_pred = generator(masked ids,
              attention_mask) argmax at EVERY position; g_pred[:, 0] = [CLS]; replaced = (g_pred != input_ids) *
              attention_mask (the RTD labels); the discriminator reads e_inputs = g_pred * attention_mask. The
              generator is a submodule of the trained model, so it runs in train mode (dropout on) while training.
  discriminator  aux_bert: a BertModel initialised from the encoder's checkpoint (train.py: aux_bert.load_state_dict
              (pretrained_model.bert.state_dict())), whose embedding output at position 0 is replaced by the sentence
              embedding h (modeling_bert.py:960-961, `cls_input`): h is the pooler output after the training MLP
              (--before_mlp unset), NOT detached, so the RTD gradient reaches the sentence encoder (paper §3);
              electra_head = Linear(d, 2) (train.py, PyTorch's default init).
  loss        models.py:262-273: InfoNCE + lambda_weight * CrossEntropy(electra_head(states).view(-1, 2),
              replaced.view(-1)), the mean over every position of the padded [2n, L] batch (padding and [CLS]
              included, label 0 there: the official loss has no ignore index).
Both copies of each sentence (the two dropout views) are edited and detected, each with its own h (num_sent = 2).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from csim.errors import CsimError
from csim.modules.sentence import SentenceModule


def mask_tokens(input_ids: torch.Tensor, special: torch.Tensor, mask_id: int, vocab_size: int,
                ratio: float) -> torch.Tensor:
    """The official collator's mask_tokens on CPU with torch's global generator: `special` [B, L] bool marks tokens
    never chosen ([CLS], [SEP], [PAD], ...)."""
    inputs = input_ids.clone()
    prob = torch.full(inputs.shape, ratio)
    prob.masked_fill_(special, 0.0)
    chosen = torch.bernoulli(prob).bool()
    to_mask = torch.bernoulli(torch.full(inputs.shape, 0.8)).bool() & chosen
    inputs[to_mask] = mask_id
    to_random = torch.bernoulli(torch.full(inputs.shape, 0.5)).bool() & chosen & ~to_mask
    random_words = torch.randint(vocab_size, inputs.shape, dtype=torch.long)
    inputs[to_random] = random_words[to_random]
    return inputs


class DiffCSEModule(SentenceModule):
    """SentenceModule + DiffCSE's conditional RTD.

    generator: the fill-in model of augment=mlm (csim/augment/mlm.py: `model_name` a masked-LM folder or hub name, or
        `random_init` + `tokenizer` + `init_seed`); frozen. Its vocabulary must be the encoder's (token ids are
        compared). DiffCSE's default generator is distilbert-base-uncased (models.py cl_init).
    lambda_weight: the RTD loss weight (--lambda_weight; 0.005 in run_diffcse.sh); mask_ratio: --masking_ratio (0.30).
    Only the encoder is evaluated and exported; the generator and discriminator are training machinery.
    """

    def __init__(self, encoder, loss, generator: dict | None = None, lambda_weight: float = 0.005,
                 mask_ratio: float = 0.30, **kwargs):
        super().__init__(encoder, loss, **kwargs)
        if self.encoder2 is not None:
            raise CsimError("module.two_encoders=true does not combine with module=diffcse; choose one.")
        if not hasattr(encoder, "model") or not hasattr(encoder, "tokenizer") or \
                not hasattr(getattr(encoder, "model"), "embeddings"):
            raise CsimError(f"module=diffcse conditions a transformer discriminator on the encoder's tokens; the "
                            f"encoder {type(encoder).__name__} has none. Use encoder=bert.")
        if not 0.0 < float(mask_ratio) < 1.0:
            raise CsimError(f"module.mask_ratio={mask_ratio!r} must be in (0, 1) (DiffCSE: 0.30, run_diffcse.sh).")
        if float(lambda_weight) < 0:
            raise CsimError(f"module.lambda_weight={lambda_weight!r} must be >= 0 (DiffCSE: 0.005, run_diffcse.sh).")
        self.lambda_weight, self.mask_ratio = float(lambda_weight), float(mask_ratio)
        self.generator = self._load_generator(dict(generator or {}), encoder.tokenizer)
        for p in self.generator.parameters():
            p.requires_grad_(False)
        # aux_bert starts from the encoder's checkpoint: a copy of its transformer before any training step
        self.discriminator = copy.deepcopy(encoder.model)
        self.rtd_head = nn.Linear(encoder.model.config.hidden_size, 2)
        self._cls_input: torch.Tensor | None = None
        self.discriminator.embeddings.register_forward_hook(self._condition_on_h)
        tok = encoder.tokenizer
        self.cls_id, self.mask_id, self.vocab_size = tok.cls_token_id, tok.mask_token_id, len(tok)
        self.special_ids = sorted(set(tok.all_special_ids))

    @staticmethod
    def _load_generator(spec: dict, tokenizer) -> nn.Module:
        from csim.augment.mlm import MLM

        known = {"model_name", "random_init", "tokenizer", "init_seed", "data_dir", "cache_dir"}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise CsimError(f"module.generator has unknown key(s) {unknown}; it takes {sorted(known)} (the fill-in "
                            f"model settings of augment=mlm).")
        fill_in = MLM(ratio=0.3, device="cpu", **spec)._load()
        if fill_in.tokenizer.get_vocab() != tokenizer.get_vocab():
            raise CsimError(f"module.generator's vocabulary ({len(fill_in.tokenizer)} tokens) is not the encoder's "
                            f"({len(tokenizer)}): DiffCSE compares the generator's token ids with the sentence's. "
                            f"Use a generator with the encoder's tokenizer (distilbert-base-uncased for "
                            f"bert-base-uncased; the mini encoder at scale=cpu; random_init with "
                            f"tokenizer=${{encoder.tokenizer}}).")
        generator = copy.deepcopy(fill_in.model)  # the cached fill-in model stays untouched (device, mode)
        # a submodule of the official BertForCL, so the Trainer's model.train() puts it in train mode (dropout on);
        # Lightning keeps each module's own mode, hence this
        return generator.train()

    def _condition_on_h(self, module, inputs, output):
        """modeling_bert.py:960-961: the embedding output's position 0 becomes the sentence embedding."""
        if self._cls_input is None:
            return output
        return torch.cat([self._cls_input.unsqueeze(1).to(output.dtype), output[:, 1:]], dim=1)

    def edit(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(e_inputs, replaced): the generator's edit of each row and the RTD labels (1 where it differs)."""
        special = torch.isin(input_ids.cpu(), torch.tensor(self.special_ids))
        masked = mask_tokens(input_ids.cpu(), special, self.mask_id, self.vocab_size, self.mask_ratio)
        with torch.no_grad():
            g_pred = self.generator(input_ids=masked.to(input_ids.device),
                                    attention_mask=attention_mask).logits.argmax(-1)
        g_pred[:, 0] = self.cls_id
        replaced = (g_pred != input_ids).long() * attention_mask
        return g_pred * attention_mask, replaced

    def rtd_loss(self, h: torch.Tensor, e_inputs: torch.Tensor, attention_mask: torch.Tensor,
                 replaced: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the discriminator's per-token replaced/original logits, conditioned on h [B, d]."""
        self._cls_input = h
        try:
            states = self.discriminator(input_ids=e_inputs, attention_mask=attention_mask).last_hidden_state
        finally:
            self._cls_input = None
        logits = self.rtd_head(states)
        return F.cross_entropy(logits.reshape(-1, 2).float(), replaced.reshape(-1))

    def training_step(self, batch, batch_idx):
        tokens = batch["tokens"]
        h = self.encoder(tokens, head=True)
        views = list(h.chunk(batch["n_views"], dim=0))
        contrastive = self.loss(views[0], views[1], labels=batch.get("labels"),
                                emb_neg=views[2] if len(views) > 2 else None)
        e_inputs, replaced = self.edit(tokens["input_ids"], tokens["attention_mask"])
        rtd = self.rtd_loss(h, e_inputs, tokens["attention_mask"], replaced)
        loss = contrastive + self.lambda_weight * rtd
        if not torch.isfinite(loss):
            raise CsimError(f"The loss became {loss.item()} at step {self.global_step}; training stopped. The last good "
                            f"checkpoint is kept in the run directory. Lower the learning rate (lr) or check the data.")
        n = views[0].shape[0]
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=n)
        self.log("train/rtd_loss", rtd.detach(), on_step=True, on_epoch=False, batch_size=n)
        self.log("train/replaced_fraction", replaced.sum() / tokens["attention_mask"].sum(), on_step=True,
                 on_epoch=False, batch_size=n)
        return loss
