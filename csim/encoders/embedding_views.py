"""ConSERT's embedding-level views (Yan et al., ACL 2021, §3.2 "Data Augmentation Strategies"): token shuffling,
token / feature cutoff and span cutoff, applied inside a BERT forward to its embedding layer.

Transcribed from the official code (yym6472/ConSERT, transformers/modeling_bert.py, BertModel.forward:
`_replace_position_ids`, `_cutoff_embeddings`, `_sample_span`):
  shuffle        the position ids of each row's n real tokens ([CLS] and [SEP] included) are permuted; padding keeps
                 its positions
  token_cutoff   int(n * rate) of the n real-token rows of the embedding output are set to 0
  feature_cutoff int(d * rate) of the d feature columns of the embedding output are set to 0, for every position
  span           a contiguous span of max(int(n * (1 - rate)), 1) real tokens is kept, its start uniform in
                 [0, n - kept]; the rest is masked out. ConSERT zeroes the other ids and their attention mask in place;
                 here the span is moved to the front of its row with its original position ids, which is the same
                 computation for a mean pooler (ConSERT's) and keeps the batch right-padded.
The embedding output is BERT's word + position + token-type sum after LayerNorm and dropout. Hooks on
`model.embeddings` make the same views in HF's padded forward and csim's packed one (csim/encoders/unpadded.py),
which both call it once with input_ids [B, L]. Randomness comes from torch's generator (seeded per run, restored on
resume), one draw per row.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from csim.errors import CsimError

OPS = ("none", "shuffle", "token_cutoff", "feature_cutoff", "span")


def check_view(op: str, rate: float, field: str) -> tuple[str, float]:
    if op not in OPS:
        raise CsimError(f"{field}={op!r} is not a ConSERT view; choose one of {', '.join(OPS)}.")
    rate = float(rate or 0.0)
    if op in ("token_cutoff", "feature_cutoff", "span") and not 0.0 < rate < 1.0:
        raise CsimError(f"{field} {op} needs a rate in (0, 1) (ConSERT uses 0.2 for feature cutoff, §4.2 / "
                        f"scripts/unsup-consert-base.sh), got {rate}.")
    return op, rate


def shuffled_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, L] position ids: each row's real positions 0..n-1 in a random order, then n..L-1 for the padding."""
    B, L = attention_mask.shape
    pos = torch.arange(L).repeat(B, 1)
    for b, n in enumerate(attention_mask.sum(1).tolist()):
        pos[b, :n] = torch.randperm(n)
    return pos.to(attention_mask.device)


def cutoff(emb: torch.Tensor, attention_mask: torch.Tensor, direction: str, rate: float) -> torch.Tensor:
    """emb [B, L, d] with int(n * rate) real-token rows (direction 'row') or int(d * rate) columns ('column') of each
    row set to 0."""
    B, L, d = emb.shape
    keep = torch.ones(B, L, d, dtype=emb.dtype)
    for b, n in enumerate(attention_mask.sum(1).tolist()):
        if direction == "row":
            keep[b, torch.randperm(n)[: int(n * rate)], :] = 0
        else:
            keep[b, :, torch.randperm(d)[: int(d * rate)]] = 0
    return emb * keep.to(emb.device)


def span(tokens: dict[str, torch.Tensor], rate: float) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Each row's kept span moved to the front (right-padded), and the [B, L'] position ids it had."""
    ids, mask = tokens["input_ids"], tokens["attention_mask"]
    B = ids.shape[0]
    lengths = mask.sum(1).tolist()
    kept = [max(int(n * (1 - rate)), 1) for n in lengths]
    starts = [int(torch.randint(0, n - k + 1, ())) for n, k in zip(lengths, kept)]
    L = max(kept)
    new_ids = torch.zeros(B, L, dtype=ids.dtype, device=ids.device)
    new_mask = torch.zeros(B, L, dtype=mask.dtype, device=mask.device)
    pos = torch.arange(L).repeat(B, 1)
    for b, (s, k) in enumerate(zip(starts, kept)):
        new_ids[b, :k] = ids[b, s: s + k]
        new_mask[b, :k] = 1
        pos[b, :k] = torch.arange(s, s + k)
    return {"input_ids": new_ids, "attention_mask": new_mask}, pos.to(ids.device)


@contextmanager
def embedding_view(model, op: str, rate: float, attention_mask: torch.Tensor, position_ids: torch.Tensor | None = None):
    """Within the block, `model.embeddings` (a BERT embedding layer) makes the view `op` of the batch whose attention
    mask is given (position_ids: ids to use instead of 0..L-1, e.g. a span's)."""
    if op == "shuffle":
        position_ids = shuffled_positions(attention_mask)

    def pre(module, args, kwargs):
        if position_ids is not None:
            kwargs["position_ids"] = position_ids
        return args, kwargs

    def post(module, args, kwargs, out):
        if op in ("token_cutoff", "feature_cutoff"):
            return cutoff(out, attention_mask, "row" if op == "token_cutoff" else "column", rate)
        return out

    handles = [model.embeddings.register_forward_pre_hook(pre, with_kwargs=True),
               model.embeddings.register_forward_hook(post, with_kwargs=True)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def encode_view(encoder, tokens: dict[str, torch.Tensor], op: str, rate: float, head: bool = True) -> torch.Tensor:
    """encoder(tokens) with ConSERT's view `op` applied to its transformer's embedding layer."""
    if op == "none":
        return encoder(tokens, head=head)
    position_ids = None
    if op == "span":
        tokens, position_ids = span(tokens, rate)
    with embedding_view(encoder.model, op, rate, tokens["attention_mask"], position_ids):
        return encoder(tokens, head=head)
