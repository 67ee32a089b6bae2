"""Any Hugging Face encoder (AutoModel) with a pooler: cls (+ SimCSE's Linear+Tanh MLP), cls_before_pooler, mean,
first_last_avg. `random_init` builds a randomly initialised BERT from a config instead (the smoke scale)."""

from __future__ import annotations

import json

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, BertConfig, BertModel

from csim.encoders import POOLERS, fast_dropout, unpadded  # POOLERS re-exported
from csim.encoders.base import SentenceEncoder, right_padded
from csim.encoders.tokenizer import get_tokenizer
from csim.errors import CsimError
from csim.runs.files import atomic_dir
from csim.hub import resolve_model

NO_LIMIT = 99_999  # a length no model reaches: usable_length then returns the model's own limit
_DROPOUT_FIELDS = ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout", "attention_dropout")


def pretrained_config(path: str, dropout: float | None, **kwargs):
    """The model's config, with every dropout probability it has set to `dropout` (None keeps the checkpoint's)."""
    config = AutoConfig.from_pretrained(path, **kwargs)
    for field in _DROPOUT_FIELDS if dropout is not None else ():
        if hasattr(config, field):
            setattr(config, field, dropout)
    return config


def usable_length(model, tokenizer, max_length: int) -> int:
    """max_length, capped at what the model can read: its position table (max_position_embeddings) and the tokenizer's
    model_max_length when that is set (RoBERTa's 514 positions hold 512 tokens). The cpu-scale mini encoder has 64
    positions, so recipes written for BERT-base (SBERT's 128) truncate at 64 there instead of failing."""
    limits = [max_length, getattr(model.config, "max_position_embeddings", None),
              getattr(tokenizer, "model_max_length", None)]
    return min(int(n) for n in limits if isinstance(n, int) and 0 < n <= NO_LIMIT)


class TransformerEncoder(SentenceEncoder):
    """A transformer + pooler.

    pooler: cls | cls_before_pooler | mean | first_last_avg
    mlp: for pooler=cls, SimCSE's randomly initialised Linear(d, d)+Tanh over [CLS]: "train_only" (unsup SimCSE:
         used in training, not at evaluation), "always" (sup SimCSE), or "none".
    mlp_type: null (SimCSE's Linear+Tanh) or "batchnorm": DiffCSE's --batchnorm head (voidism/DiffCSE,
         diffcse/models.py ProjectionMLP: Linear(d, 2d, no bias), BatchNorm, ReLU, Linear(2d, d, no bias),
         BatchNorm without affine); training only (mlp=train_only), as in DiffCSE's run_diffcse.sh.
    dropout: overrides the model's dropout probabilities (null keeps the checkpoint's).
    max_length: training truncation (the recipe's max_seq_length: SimCSE's 32).
    eval_max_length: truncation when embedding for evaluation (`encode`); null: every token the model can read (its
         position table, 512 for BERT), as SimCSE's evaluation (simcse/trainers.py: `padding=True`, no max length)
         and sentence-transformers' (the model's max_seq_length) do.
    unpad: run a plain BERT's linear layers on the real tokens only (csim/encoders/unpadded.py) for the cls,
           cls_before_pooler and mean poolers; the same embeddings as HF's padded forward, faster. Other models and
           poolers always take HF's forward.
    """

    def __init__(self, model_name: str | None = None, pooler: str = "cls", mlp: str = "train_only",
                 dropout: float | None = None, max_length: int = 32, random_init: dict | None = None,
                 tokenizer: dict | None = None, data_dir: str = "data", cache_dir: str = "cache",
                 unpad: bool = True, eval_max_length: int | None = None, mlp_type: str | None = None):
        super().__init__()
        if pooler not in POOLERS:
            raise CsimError(f"encoder.pooler={pooler!r} is not a pooler; choose one of {', '.join(POOLERS)}.")
        if mlp not in ("train_only", "always", "none"):
            raise CsimError(f"encoder.mlp={mlp!r}: choose train_only, always or none.")
        if mlp_type not in (None, "tanh", "batchnorm"):
            raise CsimError(f"encoder.mlp_type={mlp_type!r}: choose null (SimCSE's Linear+Tanh) or batchnorm "
                            f"(DiffCSE's projection head).")
        if mlp_type == "batchnorm" and mlp != "train_only":
            raise CsimError(f"encoder.mlp_type=batchnorm is a training-only head (DiffCSE's --batchnorm with "
                            f"--mlp_only_train); set encoder.mlp=train_only (got {mlp!r}).")
        if dropout is not None and not (0.0 <= dropout < 1.0):
            raise CsimError(f"encoder.dropout={dropout} must be in [0, 1).")
        self.pooler, self.mlp_mode, self.max_length = pooler, mlp, max_length
        drop = {} if dropout is None else {k: dropout for k in _DROPOUT_FIELDS}
        if model_name:
            path = resolve_model(str(model_name))
            config = pretrained_config(path, dropout)
            self.model = AutoModel.from_pretrained(path, config=config, add_pooling_layer=False) \
                if config.model_type == "bert" else AutoModel.from_pretrained(path, config=config)
            # from_pretrained returns the model in eval mode and Lightning keeps each module's mode: without this,
            # training would run with dropout off (and unsup SimCSE's only noise is dropout)
            self.model.train()
            self.tokenizer = get_tokenizer(path)
        elif random_init:
            tok = dict(tokenizer or {})
            self.tokenizer = get_tokenizer(data_dir=data_dir, cache_dir=cache_dir, **tok)
            kw = dict(random_init)
            kw.update({k: v for k, v in drop.items() if k in ("hidden_dropout_prob", "attention_probs_dropout_prob")})
            config = BertConfig(vocab_size=len(self.tokenizer), max_position_embeddings=max(64, max_length), **kw)
            self.model = BertModel(config, add_pooling_layer=False)
        else:
            raise CsimError("The encoder needs encoder.model_name (a hub name or local folder) or encoder.random_init "
                            "(a BERT config to initialise randomly).")
        fast_dropout.swap(self.model)  # same dropout, its masks drawn faster on CPU
        self.max_length = usable_length(self.model, self.tokenizer, max_length)
        self.eval_max_length = usable_length(self.model, self.tokenizer, eval_max_length or NO_LIMIT)
        d = self.model.config.hidden_size
        self.dim = d
        self.unpad = bool(unpad) and pooler != "first_last_avg" and unpadded.supports(self.model)
        self.mlp = nn.Sequential(nn.Linear(d, d), nn.Tanh()) if (pooler == "cls" and mlp != "none") else None
        if self.mlp is not None:  # SimCSE's MLPLayer is initialised by BERT's _init_weights (cl_init calls
            # init_weights, simcse/models.py:93-95): weights N(0, initializer_range = 0.02), bias 0
            nn.init.normal_(self.mlp[0].weight, std=float(getattr(self.model.config, "initializer_range", 0.02)))
            nn.init.zeros_(self.mlp[0].bias)
        if self.mlp is not None and mlp_type == "batchnorm":
            self.mlp = nn.Sequential(nn.Linear(d, 2 * d, bias=False), nn.BatchNorm1d(2 * d), nn.ReLU(inplace=True),
                                     nn.Linear(2 * d, d, bias=False), nn.BatchNorm1d(d, affine=False))
            for lin in (self.mlp[0], self.mlp[3]):  # BertForCL.init_weights (cl_init) reaches these Linear layers
                nn.init.normal_(lin.weight, std=float(getattr(self.model.config, "initializer_range", 0.02)))

    def tokenize(self, texts: list[str], max_length: int | None = None) -> dict[str, list]:
        """Token ids, truncated at `max_length` (default: the training max_length)."""
        enc = self.tokenizer(list(texts), truncation=True, max_length=max_length or self.max_length,
                             return_attention_mask=False, return_token_type_ids=False)  # only the ids are used
        return {"input_ids": enc["input_ids"]}

    def tokenize_eval(self, texts: list[str]) -> dict[str, list]:
        return self.tokenize(texts, max_length=self.eval_max_length)

    def token_key(self) -> str:
        from datasets.fingerprint import Hasher

        return Hasher.hash((self.tokenizer, self.max_length))

    def collate(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        return right_padded([r["input_ids"] for r in rows], self.tokenizer.pad_token_id or 0)

    def forward(self, batch: dict[str, torch.Tensor], head: bool = False) -> torch.Tensor:
        if self.unpad and unpadded.applies(self.model, batch["attention_mask"]):
            emb = unpadded.bert_forward(self.model, batch["input_ids"], batch["attention_mask"],
                                        "mean" if self.pooler == "mean" else "cls")
            return emb if self.pooler == "mean" else self._head(emb, head)
        want_hidden = self.pooler == "first_last_avg"
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         output_hidden_states=want_hidden)
        mask = batch["attention_mask"].unsqueeze(-1).to(out.last_hidden_state.dtype)
        if self.pooler in ("cls", "cls_before_pooler"):
            return self._head(out.last_hidden_state[:, 0], head)
        if self.pooler == "mean":
            h = out.last_hidden_state
        else:  # first_last_avg, as SimCSE: first transformer layer and last layer
            h = (out.hidden_states[1] + out.hidden_states[-1]) / 2.0
        return (h * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def _head(self, cls: torch.Tensor, head: bool) -> torch.Tensor:
        """SimCSE's MLP over [CLS], when this pooler has one and it applies (always, or in training with head)."""
        if self.mlp is not None and (self.mlp_mode == "always" or head):
            return self.mlp(cls)
        return cls

    # --- export -------------------------------------------------------------------------------------------------
    def save(self, directory) -> None:
        """Write a Hugging Face folder (config, weights, tokenizer) plus a sentence-transformers folder whose pooling
        matches the pooler csim evaluates with. Written to a temporary name and renamed."""
        from csim.encoders.st_export import write_sentence_transformers

        with atomic_dir(directory) as tmp:
            self.model.save_pretrained(str(tmp))
            self.tokenizer.save_pretrained(str(tmp))
            with open(tmp / "csim_pooler.json", "w") as f:
                # max_length: what the folder is evaluated with (every token); train_max_length: the recipe's cut
                json.dump({"pooler": self.pooler, "mlp": self.mlp_mode, "max_length": self.eval_max_length,
                           "train_max_length": self.max_length}, f)
            if self.mlp is not None:
                torch.save(self.mlp.state_dict(), tmp / "csim_mlp.pt")
            write_sentence_transformers(tmp, self)
