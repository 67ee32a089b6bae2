"""M3-style multi-function encoder (BGE-M3: Chen et al., "M3-Embedding: Multi-Linguality, Multi-Functionality,
Multi-Granularity Text Embeddings Through Self-Knowledge Distillation", 2024, §3.2 "Hybrid Retrieval"): one
transformer, three ways to score a pair of texts q, p from its last hidden states H.

  dense     e = normalize(H[0]) ([CLS]); s_dense = <e_q, e_p>
  sparse    w_t = ReLU(W_lex^T H[t]) per token (W_lex: Linear(d, 1)); a term that occurs more than once keeps its
            largest weight; s_lex = sum over the terms t shared by q and p of w_qt * w_pt. [CLS], [SEP], [PAD] and
            [UNK] carry no weight (the official code zeroes cls, eos, pad and unk).
  multivec  E = normalize(W_mul^T H[1:]) (W_mul: Linear(d, d); [CLS] excluded); s_mul = (1/N) sum_{i=1..N}
            max_{j=1..M} E_q[i] . E_p[j] over q's N and p's M real tokens
  combined  s = w_dense s_dense + w_lex s_lex + w_mul s_mul (the paper's s_rank / s_inter; 1, 0.3, 1)
Transcribed from the paper and the official code (FlagOpen/FlagEmbedding, FlagEmbedding/BGE_M3/modeling.py:
dense_embedding, sparse_embedding, colbert_embedding, colbert_score). One difference: the official colbert_score
takes the max over p's padded positions too (zero vectors, similarity 0); here the max runs over p's real tokens
only, as the paper's formula.

`score_head` (dense | sparse | multivec | combined) is what `score_pairs`, and so STS evaluation, uses; `forward`
and `encode` give the dense embedding (alignment / uniformity, export).
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from csim.encoders.transformer import TransformerEncoder
from csim.errors import CsimError

HEADS = ("dense", "sparse", "multivec", "combined")


def dense_scores(e_q: torch.Tensor, e_p: torch.Tensor) -> torch.Tensor:
    """[n_q, n_p] inner products of normalized [CLS] vectors."""
    return e_q @ e_p.T


def lexical_vectors(ids: torch.Tensor, weights: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """[B, V]: each term's largest weight in its row (weights >= 0 and 0 for unused positions)."""
    out = torch.zeros(ids.shape[0], vocab_size, dtype=weights.dtype, device=weights.device)
    return out.scatter_reduce(1, ids, weights, reduce="amax", include_self=True)


def sparse_scores(lex_q: torch.Tensor, lex_p: torch.Tensor) -> torch.Tensor:
    """[n_q, n_p]: sum over shared terms of the weight products (the dot product of the lexical vectors)."""
    return lex_q @ lex_p.T


def multivec_scores(E_q: torch.Tensor, m_q: torch.Tensor, E_p: torch.Tensor, m_p: torch.Tensor) -> torch.Tensor:
    """[n_q, n_p] late interaction: for each query token its best match among p's real tokens, averaged over q's real
    tokens. E: [n, L, d] normalized token vectors, m: [n, L] real-token mask."""
    sim = torch.einsum("qid,pjd->qipj", E_q, E_p)
    sim = sim.masked_fill(~m_p.bool()[None, None, :, :], float("-inf"))
    best = sim.max(-1).values.masked_fill(~m_q.bool()[:, :, None], 0.0)  # [n_q, L_q, n_p]
    return best.sum(1) / m_q.sum(1, keepdim=True).clamp(min=1).to(best.dtype)


class M3Encoder(TransformerEncoder):
    """TransformerEncoder ([CLS], no SimCSE MLP) + BGE-M3's sparse and multi-vector heads.

    score_head: the head STS is scored with (dense | sparse | multivec | combined).
    weights: [w_dense, w_lex, w_mul] of the combined score (BGE-M3 §3.2/§3.3 and modeling.py: 1, 0.3, 1).
    """

    def __init__(self, score_head: str = "combined", weights: list[float] | None = None, **kwargs):
        if score_head not in HEADS:
            raise CsimError(f"encoder.score_head={score_head!r}: choose one of {', '.join(HEADS)}.")
        kwargs.update(pooler="cls", mlp="none")
        super().__init__(**kwargs)
        self.score_head = score_head
        self.weights = [float(w) for w in (weights if weights is not None else [1.0, 0.3, 1.0])]
        if len(self.weights) != 3:
            raise CsimError(f"encoder.weights={weights!r} must be three numbers: [w_dense, w_lex, w_mul].")
        d = self.dim
        self.sparse_linear = nn.Linear(d, 1)   # modeling.py load_model: torch.nn.Linear(hidden, 1), default init
        self.colbert_linear = nn.Linear(d, d)  # torch.nn.Linear(hidden, hidden) (colbert_dim -1)
        tok = self.tokenizer
        self.unused_ids = sorted({i for i in (tok.cls_token_id, tok.sep_token_id, tok.eos_token_id,
                                              tok.pad_token_id, tok.unk_token_id) if i is not None})
        self.vocab_size = max(len(tok), int(self.model.config.vocab_size))
        # STS scores with the chosen head; the evaluator's cosine of `encode` embeddings is the dense head only
        self.pair_scores_are_cosine = score_head == "dense"

    def heads(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """dense [B, d]; lex [B, V] (lexical weight per vocabulary term); multivec [B, L-1, d] and its mask."""
        ids, mask = batch["input_ids"], batch["attention_mask"]
        H = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        dense = F.normalize(H[:, 0], dim=-1)
        w = torch.relu(self.sparse_linear(H)).squeeze(-1) * mask.to(H.dtype)
        w = w.masked_fill(torch.isin(ids, torch.tensor(self.unused_ids, device=ids.device)), 0.0)
        lex = lexical_vectors(ids, w, self.vocab_size)
        m = mask[:, 1:]
        E = F.normalize(self.colbert_linear(H[:, 1:]) * m[:, :, None].to(H.dtype), dim=-1)
        return {"dense": dense, "lex": lex, "multivec": E, "multivec_mask": m}

    def score_matrices(self, q: dict, p: dict) -> dict[str, torch.Tensor]:
        """[n_q, n_p] scores of every head (before any temperature) and their weighted sum."""
        s = {"dense": dense_scores(q["dense"], p["dense"]), "sparse": sparse_scores(q["lex"], p["lex"]),
             "multivec": multivec_scores(q["multivec"], q["multivec_mask"], p["multivec"], p["multivec_mask"])}
        s["combined"] = self.weights[0] * s["dense"] + self.weights[1] * s["sparse"] + self.weights[2] * s["multivec"]
        return s

    def forward(self, batch: dict[str, torch.Tensor], head: bool = False) -> torch.Tensor:
        """The dense embedding (normalized [CLS])."""
        return F.normalize(super().forward(batch, head=False), dim=-1)

    @torch.inference_mode()
    def score_pairs(self, s1: list[str], s2: list[str], batch_size: int = 128) -> np.ndarray:
        """Each pair's score under `score_head`: both sides encoded in batches, each pair scored on its own."""
        if self.score_head == "dense":
            return super().score_pairs(s1, s2, batch_size=batch_size)
        was_training = self.training
        self.eval()
        out = []
        try:
            for start in range(0, len(s1), batch_size):
                a, b = list(s1[start:start + batch_size]), list(s2[start:start + batch_size])
                tok = self.tokenize_eval(a + b)
                batch = self.collate([{"input_ids": i} for i in tok["input_ids"]])
                reps = self.heads({k: v.to(self.device) for k, v in batch.items()})
                n = len(a)
                q = {k: v[:n] for k, v in reps.items()}
                p = {k: v[n:] for k, v in reps.items()}
                dense = (q["dense"] * p["dense"]).sum(-1)
                sparse = (q["lex"] * p["lex"]).sum(-1)
                multi = torch.stack([multivec_scores(q["multivec"][i:i + 1], q["multivec_mask"][i:i + 1],
                                                     p["multivec"][i:i + 1], p["multivec_mask"][i:i + 1])[0, 0]
                                     for i in range(n)]) if n else dense
                s = {"dense": dense, "sparse": sparse, "multivec": multi}
                s["combined"] = self.weights[0] * dense + self.weights[1] * sparse + self.weights[2] * multi
                out.append(s[self.score_head].float().cpu())
        finally:
            self.train(was_training)
        return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.float32)

    def save(self, directory) -> None:
        """The transformer folder (dense: [CLS], as TransformerEncoder) + the two heads in csim_m3_heads.pt (the
        official save writes colbert_linear.pt and sparse_linear.pt)."""
        super().save(directory)
        path = os.path.join(str(directory), "csim_m3_heads.pt")
        torch.save({"sparse_linear": self.sparse_linear.state_dict(), "colbert_linear": self.colbert_linear.state_dict(),
                    "weights": self.weights}, path + ".tmp")
        os.replace(path + ".tmp", path)
