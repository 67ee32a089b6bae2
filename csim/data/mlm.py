"""The data of masked-language-model pretraining (csim.modules.mlm): corpus lines tokenised once, 15% masking with
80/10/10 per batch (transformers' DataCollatorForLanguageModeling), and a held-out slice with fixed masks."""

from __future__ import annotations

import hashlib

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader
from transformers import DataCollatorForLanguageModeling

from csim.data.module import resumable_sampling
from csim.data.nli import eval_sentences, normalise_sentence
from csim.data.tasks import TASKS


class MLMDataModule(pl.LightningDataModule):
    """Corpus lines -> tokenised once (datasets.map, cached); masks drawn per batch by the collator; a held-out slice
    with fixed masks gives the masked-token accuracy curve."""

    def __init__(self, source, encoder=None, augment=None, batch_size: int = 128, seed: int = 42,
                 heldout: int = 2000, max_train_examples: int | None = None, data_dir: str = "data",
                 num_workers: int = 0, provides=("text",)):
        super().__init__()
        self.source, self.encoder, self.batch_size, self.seed = source, encoder, batch_size, seed
        self.heldout, self.max_train_examples, self.data_dir, self.num_workers = heldout, max_train_examples, data_dir, num_workers
        self.collator = DataCollatorForLanguageModeling(encoder.tokenizer, mlm_probability=0.15)
        self.train_set = None

    def setup(self, stage=None):
        if self.train_set is not None:
            return
        raw = self.source()
        # never train on an evaluation sentence (STS-B, STS12-16, SICK), compared after normalisation
        banned = eval_sentences(self.data_dir, list(TASKS))
        # explicit fingerprint: hashing the closure's set is not stable across processes (string hash seeds)
        key = hashlib.sha256("\n".join(sorted(banned)).encode()).hexdigest()[:16]
        columns = [c for c in ("text", "text_b") if c in raw.column_names]
        raw = raw.filter(lambda b: [all(normalise_sentence(t) not in banned for t in ts)
                                    for ts in zip(*(b[c] for c in columns))], batched=True,
                         new_fingerprint=f"{raw._fingerprint}-no-eval-{key}-{len(columns)}")
        split = raw.train_test_split(test_size=self.heldout, seed=self.seed, shuffle=True)
        train = split["train"]
        if self.max_train_examples is not None and len(train) > self.max_train_examples:
            train = train.select(range(self.max_train_examples))
        enc = self.encoder
        if "text_b" in columns:  # sentence pairs (next-sentence prediction): [CLS] a [SEP] b [SEP], token types 0/1
            def tok(b):
                out = enc.tokenizer(b["text"], b["text_b"], truncation="longest_first", max_length=enc.max_length,
                                    return_attention_mask=False)
                return {"input_ids": out["input_ids"], "token_type_ids": out["token_type_ids"]}
        else:
            tok = lambda b: enc.tokenize(b["text"])  # noqa: E731
        self.train_set = train.map(tok, batched=True, remove_columns=columns, desc="tokenize",
                                   new_fingerprint=f"{train._fingerprint}-{enc.token_key()}")
        val = split["test"].map(tok, batched=True, remove_columns=columns,
                                new_fingerprint=f"{split['test']._fingerprint}-{enc.token_key()}")
        # fixed masks for the held-out set, so its curve compares like with like
        g = torch.get_rng_state()
        torch.manual_seed(self.seed)
        self.val_batches = [self._collate([val[j] for j in range(i, min(i + 256, len(val)))])
                            for i in range(0, len(val), 256)]
        torch.set_rng_state(g)

    def _collate(self, rows):
        keys = [k for k in ("input_ids", "token_type_ids") if k in rows[0]]
        b = self.collator([{k: r[k] for k in keys} for r in rows])  # right-padded (token type 0), then masked
        # the mask comes from the lengths, not from input_ids != [PAD]: the 10% random replacements can draw [PAD]
        lengths = torch.tensor([len(r["input_ids"]) for r in rows])
        b["attention_mask"] = (torch.arange(b["input_ids"].shape[1])[None, :] < lengths[:, None]).long()
        if "next_sentence_label" in rows[0]:
            b["next_sentence_label"] = torch.tensor([r["next_sentence_label"] for r in rows])
        return b

    def train_dataloader(self):
        return DataLoader(self.train_set, collate_fn=self._collate,
                          num_workers=self.num_workers, **resumable_sampling(self))

    def val_dataloader(self):
        return DataLoader(self.val_batches, batch_size=None)
