"""A cross-encoder (SBERT Table 2's BERT-STSb / BERT-NLI-STSb rows; Devlin et al. 2019's sentence-pair setup): one
transformer reads the pair as a single sequence ([CLS] s1 [SEP] s2 [SEP]) and a head on top scores it
(AutoModelForSequenceClassification: num_labels=1 a regression score, 3 the NLI classes).

It is not a bi-encoder: it has no sentence embedding, so it has no `encode`; it scores pairs directly through
`score_pairs`, which is all the STS evaluator calls. Because a pair is tokenised as one sequence (the tokenizer's own
pair template and pair truncation), `tokenize` only carries the text through the per-column step of the data module and
`tokenize_pairs` does the tokenisation, once, in csim.data.module.PairDataModule and in `score_pairs` alike.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

from csim.encoders import fast_dropout
from csim.encoders.tokenizer import get_tokenizer
from csim.encoders.transformer import NO_LIMIT, pretrained_config, usable_length
from csim.errors import CsimError
from csim.runs.files import atomic_dir
from csim.hub import resolve_model



class CrossEncoder(nn.Module):
    """model_name: a hub name or local folder (any encoder: the head is added, or replaced when its number of labels
    differs, e.g. an NLI cross-encoder continued on STS-B); random_init: a BERT config dict (smoke scale).
    score_label: with num_labels > 1, the class whose probability is the pair's similarity score (0 = entailment).
    max_length: the pair's training truncation; eval_max_length: at scoring (`score_pairs`), null = every token the
    model reads, as sentence-transformers' CrossEncoder with max_length=None (the official STS example).
    segment_b: "keep" the checkpoint's token-type embedding of the second segment, or start it "from_a" (a copy of
    the first segment's row) for an encoder pretrained on single sentences, whose row 1 never trained (the cpu-scale
    mini encoder: MLM without next-sentence prediction).
    head: "cls", BERT's head (the pooler on [CLS], then a linear layer: AutoModelForSequenceClassification, the
    papers' cross-encoder), or "segments": a linear layer on [u, v, |u - v|, u * v], where u and v are the means of
    the last layer's states over the first and the second segment of the same pair sequence (the features of
    SBERT's classification head, Reimers & Gurevych 2019 §3, read from one joint pass instead of two). It is for an
    encoder whose [CLS] and pooler were never trained (the cpu scale's mini encoder); saved beside the weights as
    csim_pair_head.pt.
    segment_positions: "continue", BERT's position ids through the whole pair sequence, or "restart": the second
    segment's tokens take the positions they would have as a sentence of their own (1, 2, ... after the [CLS] slot),
    for an encoder pretrained on single sentences, whose positions past one sentence never trained (the mini
    encoder's 32-64).
    """

    def __init__(self, model_name: str | None = None, num_labels: int = 1, max_length: int = 128,
                 dropout: float | None = None, random_init: dict | None = None, tokenizer: dict | None = None,
                 score_label: int = 0, data_dir: str = "data", cache_dir: str = "cache",
                 eval_max_length: int | None = None, segment_b: str = "keep", head: str = "cls",
                 segment_positions: str = "continue"):
        super().__init__()
        if num_labels < 1:
            raise CsimError(f"encoder.num_labels={num_labels} must be >= 1 (1: a regression score, 3: NLI).")
        if not (0 <= score_label < max(num_labels, 1)):
            raise CsimError(f"encoder.score_label={score_label} must be a class index below num_labels={num_labels}.")
        if dropout is not None and not (0.0 <= dropout < 1.0):
            raise CsimError(f"encoder.dropout={dropout} must be in [0, 1).")
        self.num_labels, self.max_length, self.score_label = num_labels, max_length, score_label
        if model_name:
            path = resolve_model(str(model_name))
            config = pretrained_config(path, dropout, num_labels=num_labels)
            # a head of another size (3 NLI classes -> 1 score) is replaced by a new one, as transformers reports
            self.model = AutoModelForSequenceClassification.from_pretrained(path, config=config,
                                                                            ignore_mismatched_sizes=True)
            self.model.train()  # from_pretrained returns eval mode; training needs dropout on
            self.tokenizer = get_tokenizer(path)
        elif random_init:
            self.tokenizer = get_tokenizer(data_dir=data_dir, cache_dir=cache_dir, **dict(tokenizer or {}))
            kw = dict(random_init)
            if dropout is not None:
                kw.update(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
            config = BertConfig(vocab_size=len(self.tokenizer), max_position_embeddings=max(64, max_length),
                                num_labels=num_labels, **kw)
            self.model = BertForSequenceClassification(config)
        else:
            raise CsimError("The cross-encoder needs encoder.model_name (a hub name or local folder) or "
                            "encoder.random_init (a BERT config to initialise randomly).")
        if segment_b not in ("keep", "from_a"):
            raise CsimError(f"encoder.segment_b={segment_b!r}: choose keep or from_a.")
        types = getattr(getattr(self.model.base_model, "embeddings", None), "token_type_embeddings", None)
        if segment_b == "from_a" and types is not None and types.num_embeddings > 1:
            with torch.no_grad():
                types.weight[1].copy_(types.weight[0])
        if head not in ("cls", "segments"):
            raise CsimError(f"encoder.head={head!r}: choose cls (BERT's pooler on [CLS]) or segments (the two "
                            f"segments' mean states).")
        if segment_positions not in ("continue", "restart"):
            raise CsimError(f"encoder.segment_positions={segment_positions!r}: choose continue (BERT's) or restart.")
        self.head, self.pair_head, self.restart_positions = head, None, segment_positions == "restart"
        if head == "segments":
            p = self.model.config.hidden_dropout_prob
            self.pair_head = nn.Sequential(nn.Dropout(p), nn.Linear(4 * self.model.config.hidden_size, num_labels))
            for unused in (self.model.classifier, getattr(self.model.base_model, "pooler", None)):
                if unused is not None:  # frozen, so that data parallelism does not wait for their gradients
                    unused.requires_grad_(False)
            saved = Path(str(path)) / "csim_pair_head.pt" if model_name else None
            if saved is not None and saved.is_file():
                state = torch.load(saved, map_location="cpu")
                if state["1.weight"].shape == self.pair_head[1].weight.shape:  # NLI's 3 classes -> 1 score: new
                    self.pair_head.load_state_dict(state)
        fast_dropout.swap(self.model)  # same dropout, its masks drawn faster on CPU
        self.max_length = usable_length(self.model, self.tokenizer, max_length)
        self.eval_max_length = usable_length(self.model, self.tokenizer, eval_max_length or NO_LIMIT)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # --- tokenisation ---------------------------------------------------------------------------------------------
    def tokenize(self, texts: list[str]) -> dict[str, list]:
        """The per-sentence step: the text itself (a pair is tokenised as one sequence by tokenize_pairs)."""
        return {"text": list(texts)}

    def tokenize_pairs(self, s1: list[str], s2: list[str], max_length: int | None = None) -> dict[str, list]:
        """Pair sequences, truncated (longest side first) at `max_length` (default: the training max_length)."""
        enc = self.tokenizer(list(s1), list(s2), truncation=True, max_length=max_length or self.max_length)
        return {k: enc[k] for k in ("input_ids", "token_type_ids") if k in enc}

    def token_key(self) -> str:
        from datasets.fingerprint import Hasher

        return Hasher.hash((self.tokenizer, self.max_length, "pairs"))

    def collate(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        keys = [k for k in ("input_ids", "token_type_ids") if k in rows[0]]
        return dict(self.tokenizer.pad([{k: r[k] for k in keys} for r in rows], return_tensors="pt"))

    # --- scoring --------------------------------------------------------------------------------------------------
    def forward(self, batch: dict[str, torch.Tensor], head: bool = False) -> torch.Tensor:
        """-> logits [n, num_labels] (num_labels=1: [n], the predicted score)."""
        inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        if self.restart_positions:
            inputs["position_ids"] = restarted_positions(inputs["token_type_ids"])
        if self.pair_head is None:
            logits = self.model(**inputs).logits
        else:
            states = self.model.base_model(**inputs).last_hidden_state
            present = inputs.get("attention_mask", torch.ones_like(inputs["input_ids"])).bool()
            second = inputs["token_type_ids"].bool()
            u, v = (_mean(states, present & ~second), _mean(states, present & second))
            logits = self.pair_head(torch.cat([u, v, (u - v).abs(), u * v], dim=-1))
        return logits.squeeze(-1) if self.num_labels == 1 else logits

    def pair_scores(self, logits: torch.Tensor) -> torch.Tensor:
        return logits if self.num_labels == 1 else logits.softmax(-1)[:, self.score_label]

    @torch.inference_mode()
    def score_pairs(self, s1: list[str], s2: list[str], batch_size: int = 128) -> np.ndarray:
        """One score per pair: the regression output, or the probability of class `score_label`. Pairs are sorted by
        length and padded per batch."""
        was_training = self.training
        self.eval()
        tok = self.tokenize_pairs(s1, s2, max_length=self.eval_max_length)
        keys = list(tok)
        order = sorted(range(len(s1)), key=lambda i: len(tok["input_ids"][i]))
        out = np.zeros(len(s1), dtype=np.float64)
        for start in range(0, len(order), batch_size):
            idx = order[start: start + batch_size]
            batch = {k: v.to(self.device) for k, v in self.collate([{k: tok[k][i] for k in keys} for i in idx]).items()}
            out[idx] = self.pair_scores(self.forward(batch)).float().cpu().numpy()
        self.train(was_training)
        return out

    # --- export ---------------------------------------------------------------------------------------------------
    def save(self, directory) -> None:
        """A Hugging Face sequence-classification folder (config, weights, tokenizer), which is also what
        sentence-transformers' CrossEncoder loads; written to a temporary name and renamed."""
        with atomic_dir(directory) as tmp:
            self.model.save_pretrained(str(tmp))
            self.tokenizer.save_pretrained(str(tmp))
            if self.pair_head is not None:
                torch.save(self.pair_head.state_dict(), tmp / "csim_pair_head.pt")
            with open(tmp / "csim_cross_encoder.json", "w") as f:
                json.dump({"num_labels": self.num_labels, "max_length": self.eval_max_length,
                           "train_max_length": self.max_length,
                           "score_label": self.score_label, "head": self.head}, f)


def restarted_positions(token_type_ids: torch.Tensor) -> torch.Tensor:
    """Position ids [n, L] that restart at the second segment: [CLS] a [SEP] -> 0..len_a-1, b [SEP] -> 1..len_b
    (padding, segment 0 after the pair, keeps counting from its index)."""
    index = torch.arange(token_type_ids.shape[1], device=token_type_ids.device).expand_as(token_type_ids)
    second = token_type_ids.bool()
    start = torch.where(second, index, torch.full_like(index, index.shape[1])).min(1, keepdim=True).values
    return torch.where(second, index - start + 1, index)


def _mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean of `states` [n, L, d] over the positions where `mask` [n, L] is true (at least one counted)."""
    weights = mask.to(states.dtype).unsqueeze(-1)
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)
