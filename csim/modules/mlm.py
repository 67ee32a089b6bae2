"""Masked-language-model pretraining of the cpu-scale mini encoder (`csim train +exp=mlm_pretrain`).

A BERT built from a config, 15% masking with 80/10/10 (transformers' DataCollatorForLanguageModeling), the vocabulary
projection computed only at masked positions (projecting every position onto a 30k vocabulary costs several times
the rest of the step on a CPU); with `encoder.unpad` the body runs over the real tokens only and its last layer at the
masked positions only (csim/encoders/unpadded.py). Token embeddings can start from GloVe: each whole-word WordPiece
token that GloVe knows gets its vector through a fixed random orthonormal projection to the hidden size, and
`word_embedding_lr_scale` sets their learning rate relative to the rest. With `next_sentence` the batches are
sentence pairs (csim.data.corpus.sentence_pairs, token types 0/1) and BERT's next-sentence head trains [CLS] through
the pooler beside MLM (Devlin et al. 2019, §3.1), as BertForPreTraining; `start` continues an earlier build (a second
phase, as BERT's 128 -> 512 tokens) instead of a new model: what a cross-encoder's head reads
([CLS] -> pooler -> classifier) and segment B's token type are then trained, not random. Saved as a normal HF folder
with its MLM head (BertForMaskedLM or BertForPreTraining), so AutoModel, AutoModelForMaskedLM and
AutoModelForSequenceClassification all load it.
"""

from __future__ import annotations


import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from transformers import BertForMaskedLM, BertForPreTraining, get_linear_schedule_with_warmup

from csim.encoders import fast_dropout, unpadded
from csim.encoders.transformer import TransformerEncoder
from csim.errors import CsimError
from csim.runs.files import atomic_dir


def glove_init(embeddings: torch.nn.Embedding, tokenizer, glove_path: str | None, seed: int) -> int:
    """Overwrite rows of whole-word tokens with projected GloVe vectors; returns how many rows were set."""
    from csim.encoders.glove import load_glove

    index, vectors = load_glove(glove_path)
    d_in, d_out = vectors.shape[1], embeddings.weight.shape[1]
    g = np.random.default_rng(seed)
    if d_out >= d_in:
        q, _ = np.linalg.qr(g.standard_normal((d_out, d_in)))  # d_out x d_in, orthonormal columns
        proj = q.T.astype(np.float32)                         # d_in -> d_out, norm-preserving
    else:  # a model narrower than GloVe (the smoke scale's): onto a random d_out-dimensional subspace
        q, _ = np.linalg.qr(g.standard_normal((d_in, d_out)))  # d_in x d_out, orthonormal columns
        proj = q.astype(np.float32)
    n = 0
    with torch.no_grad():
        for token, tid in tokenizer.get_vocab().items():
            if token.startswith("##") or token.startswith("[") or token not in index:
                continue
            embeddings.weight[tid] = torch.from_numpy(vectors[index[token]] @ proj)
            n += 1
    return n


class MLMModule(pl.LightningModule):
    """`encoder` is a TransformerEncoder sharing the BERT body, so STS evaluation and export work as for any run."""

    def __init__(self, encoder: TransformerEncoder, lr: float = 1e-3, weight_decay: float = 0.01,
                 warmup_ratio: float = 0.06, glove_init: bool = True, glove_path: str | None = None, seed: int = 42,
                 word_embedding_lr_scale: float = 1.0, next_sentence: bool = False, start: str | None = None,
                 loss=None):
        super().__init__()
        self.encoder = encoder
        self.next_sentence = next_sentence
        head = BertForPreTraining if next_sentence else BertForMaskedLM
        if start:  # continue an earlier build (its body and MLM head; a new next-sentence head and pooler if it had none)
            from csim.hub import resolve_model

            self.mlm = fast_dropout.swap(head.from_pretrained(resolve_model(str(start), field="module.start")))
            self.mlm.train()
            if self.mlm.config.vocab_size != len(encoder.tokenizer):
                raise CsimError(f"module.start={start}: its vocabulary ({self.mlm.config.vocab_size} tokens) is not the "
                                f"encoder's tokenizer's ({len(encoder.tokenizer)}); continue a build made with the "
                                f"same tokenizer.")
            glove_init = False  # its word embeddings are trained already
        else:
            self.mlm = fast_dropout.swap(head(encoder.model.config))  # the shape: encoder.random_init
        encoder.model = self.mlm.bert  # one body: what the encoder evaluates is what MLM trains
        self.lr, self.weight_decay, self.warmup_ratio = lr, weight_decay, warmup_ratio
        if word_embedding_lr_scale < 0:
            raise CsimError(f"module.word_embedding_lr_scale={word_embedding_lr_scale}: the word embeddings' learning "
                            "rate is lr times this factor, so it must be >= 0 (0 freezes them, 1 trains them like the "
                            "rest).")
        self.word_embedding_lr_scale = word_embedding_lr_scale
        self.mlm.bert.embeddings.word_embeddings.weight.requires_grad_(word_embedding_lr_scale > 0)
        self.glove_rows = glove_init and glove_init_rows(self.mlm, encoder.tokenizer, glove_path, seed) or 0

    def mlm_loss(self, batch):
        """(MLM loss, MLM accuracy); with next_sentence also (NSP loss, NSP accuracy)."""
        ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
        types = batch.get("token_type_ids")
        where = labels != -100
        B, L = ids.shape
        if self.next_sentence:  # [CLS] is never masked: its states ride along with the masked positions'
            where_or_cls = where.clone()
            where_or_cls[:, 0] = True
        else:
            where_or_cls = where
        if self.encoder.unpad and unpadded.applies(self.mlm.bert, mask):
            # packed forward (encoder.unpad): real tokens only, the last layer at the chosen positions only
            hidden = unpadded.last_states(self.mlm.bert, ids, mask, where_or_cls.reshape(-1).nonzero().squeeze(1),
                                          token_type_ids=types)
        else:
            hidden = self.mlm.bert(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
            hidden = hidden[where_or_cls]
        heads = self.mlm.cls
        if self.next_sentence:
            is_cls = (where_or_cls.nonzero()[:, 1] == 0)
            cls, hidden = hidden[is_cls], hidden[~is_cls]
            logits = heads.predictions(hidden)
        else:
            logits = heads(hidden)
        target = labels[where]
        out = (F.cross_entropy(logits, target), (logits.argmax(-1) == target).float().mean())
        if self.next_sentence:
            pooler = self.mlm.bert.pooler
            nsp = heads.seq_relationship(pooler.activation(pooler.dense(cls)))
            y = batch["next_sentence_label"]
            out += (F.cross_entropy(nsp, y), (nsp.argmax(-1) == y).float().mean())
        return out

    def training_step(self, batch, batch_idx):
        loss, acc, *nsp = self.mlm_loss(batch)
        logs = {"train/mlm_loss": loss, "train/mlm_acc": acc}
        if nsp:
            logs |= {"train/nsp_loss": nsp[0], "train/nsp_acc": nsp[1]}
            loss = loss + nsp[0]  # BERT's pretraining loss: the sum of the two (BertForPreTraining)
        self.log_dict(logs, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, acc, *nsp = self.mlm_loss(batch)
        n = int((batch["labels"] != -100).sum())
        self.log_dict({"val/mlm_loss": loss, "val/mlm_acc": acc}, on_epoch=True, batch_size=n)
        if nsp:
            self.log_dict({"val/nsp_loss": nsp[0], "val/nsp_acc": nsp[1]}, on_epoch=True,
                          batch_size=len(batch["input_ids"]))

    def configure_optimizers(self):
        """AdamW, no decay on biases/LayerNorm; the word embeddings (tied to the MLM decoder) at lr x
        word_embedding_lr_scale (0: frozen, so the GloVe geometry they start from is kept)."""
        words = self.mlm.bert.embeddings.word_embeddings.weight
        named = [(n, p) for n, p in self.mlm.named_parameters() if p.requires_grad and p is not words]
        decay = [p for n, p in named if p.ndim >= 2 and "LayerNorm" not in n]
        rest = [p for n, p in named if not (p.ndim >= 2 and "LayerNorm" not in n)]
        groups = [{"params": decay, "weight_decay": self.weight_decay}, {"params": rest, "weight_decay": 0.0}]
        if words.requires_grad:
            groups.append({"params": [words], "weight_decay": self.weight_decay,
                           "lr": self.lr * self.word_embedding_lr_scale})
        opt = torch.optim.AdamW(groups, lr=self.lr)
        total = int(self.trainer.estimated_stepping_batches)
        sched = get_linear_schedule_with_warmup(opt, int(self.warmup_ratio * total), total)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def export(self, directory) -> None:
        """The HF folder with the MLM head (BertForMaskedLM, or BertForPreTraining with next_sentence) + tokenizer,
        written atomically."""
        with atomic_dir(directory) as tmp:
            self.mlm.save_pretrained(str(tmp))
            self.encoder.tokenizer.save_pretrained(str(tmp))


def glove_init_rows(mlm: BertForMaskedLM, tokenizer, glove_path, seed) -> int:
    return glove_init(mlm.bert.embeddings.word_embeddings, tokenizer, glove_path, seed)
