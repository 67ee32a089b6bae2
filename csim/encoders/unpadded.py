"""BERT's forward over the real tokens only.

In a padded batch of short sentences, Q/K/V/O and the FFN (>95% of the step's FLOPs) also run over the padding: at
cpu scale (max length 32) about a quarter of the positions are pads (75-76% real tokens, results/bench.md). Here every
linear layer sees only the real tokens, packed into one (tokens, d) matrix; only attention itself works on the padded
(batch, heads, length, dh) layout (SDPA with a key mask). With [CLS] pooling the last layer also computes queries,
attention output and FFN at [CLS] alone: nothing else of that layer reaches the embedding (or its gradient).

The maths is BERT's (HF's own modules do the projections, residuals, LayerNorms and FFN); only the self-attention call is
restated, as the SDPA call HF makes. Dropout masks are drawn over different shapes than HF's, so training runs with
dropout are statistically, not bitwise, the same as the padded path. `supports()` says when the model is a plain BERT
encoder (absolute positions, no decoder/cross-attention, no FFN chunking); otherwise the caller uses HF's forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import BertModel


def supports(model) -> bool:
    cfg = model.config
    return (isinstance(model, BertModel) and not cfg.is_decoder and not getattr(cfg, "add_cross_attention", False)
            and getattr(cfg, "position_embedding_type", "absolute") == "absolute"
            and not getattr(cfg, "chunk_size_feed_forward", 0))


def _layer(layer, x: torch.Tensor, idx: torch.Tensor, shape: tuple[int, int], key_mask: torch.Tensor,
           query_rows: torch.Tensor | None) -> torch.Tensor:
    """One BertLayer on packed tokens x (T, d). query_rows: compute the layer's output at these packed rows only."""
    sa = layer.attention.self
    B, L = shape
    H, dh = sa.num_attention_heads, sa.attention_head_size

    def padded(t: torch.Tensor) -> torch.Tensor:  # (T, H*dh) -> (B, H, L, dh)
        return t.new_zeros(B * L, t.shape[1]).index_copy(0, idx, t).view(B, L, H, dh).transpose(1, 2)

    k, v = padded(sa.key(x)), padded(sa.value(x))
    xq = x if query_rows is None else x.index_select(0, query_rows)
    q = padded(sa.query(x)) if query_rows is None else sa.query(xq).view(B, 1, H, dh).transpose(1, 2)
    a = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, dropout_p=sa.dropout.p if sa.training else 0.0,
                                       scale=sa.scaling)
    a = a.transpose(1, 2).reshape(-1, H * dh)
    if query_rows is None:
        a = a.index_select(0, idx)
    h = layer.attention.output(a, xq)  # dense, dropout, LayerNorm(a + residual)
    return layer.output(layer.intermediate(h), h)


def bert_forward(model: BertModel, input_ids: torch.Tensor, attention_mask: torch.Tensor, pooler: str) -> torch.Tensor:
    """Pooled last-layer states (B, d) of a right-padded batch: pooler 'cls' ([CLS] = position 0) or 'mean' (over the
    real tokens)."""
    B, L = input_ids.shape
    mask = attention_mask.bool()
    idx = mask.reshape(-1).nonzero().squeeze(1)  # packed token -> flat padded position
    x = model.embeddings(input_ids=input_ids).reshape(B * L, -1).index_select(0, idx)
    key_mask = mask[:, None, None, :]
    cls_rows = torch.searchsorted(idx, torch.arange(B, device=idx.device) * L) if pooler == "cls" else None
    layers = model.encoder.layer
    for i, layer in enumerate(layers):
        x = _layer(layer, x, idx, (B, L), key_mask, cls_rows if i == len(layers) - 1 else None)
    if pooler == "cls":
        return x
    rows = torch.div(idx, L, rounding_mode="floor")
    sums = x.new_zeros(B, x.shape[1]).index_add(0, rows, x)
    return sums / mask.sum(1, keepdim=True).clamp(min=1).to(x.dtype)
