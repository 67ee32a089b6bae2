"""BERT's forward over the real tokens only.

In a padded batch of short sentences, Q/K/V/O and the FFN (>95% of the step's FLOPs) also run over the padding: at
cpu scale (max length 32) about a quarter of the positions are pads (75-76% real tokens, results/bench.md). Here every
linear layer sees only the real tokens, packed into one (tokens, d) matrix; only attention itself works on the padded
(batch, heads, length, dh) layout (keys masked). With [CLS] pooling the last layer also computes queries, attention
output and FFN at [CLS] alone: nothing else of that layer reaches the embedding (or its gradient); and since a few
queries need no keys or values of their own, that layer's attention is reassociated (_few_query_attention).

The maths is BERT's (HF's own modules do the projections, residuals, LayerNorms and FFN); only self-attention is
restated: as two batched matmuls, which at these lengths run faster on CPU than the SDPA call HF makes. Dropout masks
are drawn over different shapes than HF's, so training runs with dropout are statistically, not bitwise, the same as
the padded path. `supports()` says when the model is a plain BERT encoder (absolute positions, no
decoder/cross-attention, no FFN chunking); otherwise the caller uses HF's forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import BertModel

from csim.encoders import fast_dropout


def supports(model) -> bool:
    cfg = model.config
    return (isinstance(model, BertModel) and not cfg.is_decoder and not getattr(cfg, "add_cross_attention", False)
            and getattr(cfg, "position_embedding_type", "absolute") == "absolute"
            and not getattr(cfg, "chunk_size_feed_forward", 0))


def applies(model, attention_mask: torch.Tensor) -> bool:
    """Whether this forward can take the batch: a plain BERT (supports) and right padding ([CLS] at position 0 of
    every row; a left-padded batch takes HF's forward)."""
    return supports(model) and bool(attention_mask[:, 0].all())


def _fusable(*linears) -> bool:
    """Plain nn.Linear layers with biases: their projections can run as one GEMM over concatenated weights (not when a
    wrapper such as a LoRA adapter replaces them: that module's own forward must run)."""
    return all(type(m) is torch.nn.Linear and m.bias is not None for m in linears)


def _project(x: torch.Tensor, linears) -> torch.Tensor | list[torch.Tensor]:
    """x through each of `linears`: one (T, n*d) output of a single GEMM over concatenated weights when they are
    fusable (a wider GEMM uses the cores better than n narrow ones: the attention projections are a quarter of an
    encoder layer's FLOPs), otherwise the list of their n (T, d) outputs."""
    if not _fusable(*linears):
        return [m(x) for m in linears]
    if len(linears) == 1:
        return linears[0](x)
    return F.linear(x, torch.cat([m.weight for m in linears]), torch.cat([m.bias for m in linears]))


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None, drop: float,
               scale: float) -> torch.Tensor:
    """softmax(q k^T scale, keys masked) v, dropout on the attention weights: what HF's SDPA call computes, as two
    batched matmuls. At these lengths (L <= 32) this is faster on CPU than SDPA's flash kernel: 2x in inference
    (0.5-1.7 vs 1.4-3.1 ms per MiniLM layer at batch 64), 5-20% in training. On a GPU, SDPA's fused kernels."""
    if q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, dropout_p=drop, scale=scale)
    s = torch.matmul(q, k.transpose(-1, -2)).mul_(scale)
    if key_mask is not None:
        s = s.masked_fill_(~key_mask, float("-inf"))
    return torch.matmul(fast_dropout.dropout(s.softmax(-1), drop), v)


def reassociates(queries_per_row: int, heads: int, length: int, d: int) -> bool:
    """Whether a layer computed at `queries_per_row` positions per row takes _few_query_attention: its cost per row,
    about queries (heads length + d) d multiply-adds, is below the L d^2 of projecting the keys (or values)."""
    return queries_per_row * (heads * length + d) < length * d


def _few_query_attention(q: torch.Tensor, x: torch.Tensor, key, value, key_mask: torch.Tensor | None, drop: float,
                         scale: float) -> torch.Tensor:
    """Attention of a few queries q (B, H, Lq, dh) over the layer inputs x (B, L, d), without projecting keys and
    values: with head h's key weights Wk_h (dh, d), q . (Wk_h x + bk_h) = (q Wk_h) . x + q . bk_h, and since the
    attention weights p of a query sum to s (1, or less/more after dropout), sum_t p_t (Wv_h x_t + bv_h) =
    Wv_h (sum_t p_t x_t) + s bv_h. That costs about Lq (H L + d) d multiply-adds per row instead of the 2 L d^2 of
    the key and value projections: with [CLS] pooling (Lq = 1) the last layer's keys and values are never formed."""
    B, H, Lq, dh = q.shape
    wk, wv = key.weight.view(H, dh, -1), value.weight.view(H, dh, -1)
    qk = torch.einsum("bhqe,hed->bhqd", q, wk)  # (B, H, Lq, d)
    scores = torch.matmul(qk.flatten(1, 2), x.transpose(1, 2)).view(B, H, Lq, -1)  # (B, H, Lq, L)
    scores = (scores + torch.einsum("bhqe,he->bhq", q, key.bias.view(H, dh)).unsqueeze(-1)) * scale
    if key_mask is not None:
        scores = scores.masked_fill(~key_mask, float("-inf"))
    p = fast_dropout.dropout(scores.softmax(-1), drop)
    z = torch.matmul(p.flatten(1, 2), x).view(B, H, Lq, -1)  # (B, H, Lq, d): the weighted sums of the inputs
    return torch.einsum("bhqd,hed->bhqe", z, wv) + p.sum(-1, keepdim=True) * value.bias.view(1, H, 1, dh)


def _layer(layer, x: torch.Tensor, idx: torch.Tensor | None, shape: tuple[int, int], key_mask: torch.Tensor | None,
           queries: tuple[torch.Tensor, torch.Tensor, int] | None) -> torch.Tensor:
    """One BertLayer on packed tokens x (T, d); idx: packed token -> flat padded position (None: no padding, the
    packed rows are the (B, L) layout itself). queries = (rows, grid, Lq): compute the layer's output only at the
    packed rows `rows`, whose queries sit at slots `grid` (b * Lq + j) of a (B, Lq) query layout."""
    sa = layer.attention.self
    B, L = shape
    H, dh = sa.num_attention_heads, sa.attention_head_size

    def heads(t, where: torch.Tensor | None, n: int) -> list[torch.Tensor]:
        """(T, k*H*dh) projections -> k tensors (B, H, n, dh), the packed rows scattered to their slots."""
        ts = t if isinstance(t, list) else [t]
        out = []
        for u in ts:  # fused: one scatter for Q, K and V together
            if where is not None:
                u = u.new_zeros(B * n, u.shape[1]).index_copy(0, where, u)
            # unbind, not k selects: its backward stacks the k gradients in one op (select's backward would build
            # k full-size zero tensors and add them)
            out += [h.transpose(1, 2) for h in u.view(B, n, u.shape[1] // (H * dh), H, dh).unbind(2)]
        return out

    drop = sa.dropout.p if sa.training else 0.0
    if queries is None:
        xq = x
        q, k, v = heads(_project(x, [sa.query, sa.key, sa.value]), idx, L)
        a = _attention(q, k, v, key_mask, drop, sa.scaling)
    else:  # queries at the chosen rows only
        rows, grid, Lq = queries
        xq = x.index_select(0, rows)
        (q,) = heads(sa.query(xq), grid, Lq)
        d = x.shape[1]
        if reassociates(Lq, H, L, d) and _fusable(sa.key, sa.value):
            xs = x if idx is None else x.new_zeros(B * L, d).index_copy(0, idx, x)
            a = _few_query_attention(q, xs.view(B, L, d), sa.key, sa.value, key_mask, drop, sa.scaling)
        else:  # keys and values over every token
            k, v = heads(_project(x, [sa.key, sa.value]), idx, L)
            a = _attention(q, k, v, key_mask, drop, sa.scaling)
    a = a.transpose(1, 2).reshape(-1, H * dh)
    where = idx if queries is None else grid
    if where is not None:
        a = a.index_select(0, where)
    h = layer.attention.output(a, xq)  # dense, dropout, LayerNorm(a + residual)
    return layer.output(layer.intermediate(h), h)


def last_states(model: BertModel, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                positions: torch.Tensor | None = None, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Last-layer states of a right-padded batch: of every real token, packed (T, d) in row-major order, or, given
    `positions` (ascending flat indices b * L + t of real tokens), of those tokens only, in that order — the last
    layer then computes its queries, attention output and FFN at those positions alone. token_type_ids: segment
    ids (None: all 0, one segment)."""
    B, L = input_ids.shape
    mask = attention_mask.bool()
    idx = mask.reshape(-1).nonzero().squeeze(1)  # packed token -> flat padded position
    x = model.embeddings(input_ids=input_ids, token_type_ids=token_type_ids).reshape(B * L, -1)
    if len(idx) == B * L:  # no padding (equal lengths, common in length-sorted encoding): no scatter, no mask
        key_mask, idx_or_none = None, None
    else:
        x, key_mask, idx_or_none = x.index_select(0, idx), mask[:, None, None, :], idx
    queries = None
    if positions is not None:
        rows = torch.searchsorted(idx, positions).clamp(max=max(len(idx) - 1, 0))
        if len(positions) and not torch.equal(idx[rows], positions):
            raise ValueError("last_states: positions must be ascending flat indices of real (unmasked) tokens")
        b = torch.div(positions, L, rounding_mode="floor")
        counts = torch.bincount(b, minlength=B)
        Lq = max(int(counts.max()) if len(positions) else 0, 1)
        j = torch.arange(len(positions), device=positions.device) - (torch.cumsum(counts, 0) - counts)[b]
        queries = (rows, b * Lq + j, Lq)
    layers = model.encoder.layer
    for i, layer in enumerate(layers):
        x = _layer(layer, x, idx_or_none, (B, L), key_mask, queries if i == len(layers) - 1 else None)
    return x


def bert_forward(model: BertModel, input_ids: torch.Tensor, attention_mask: torch.Tensor, pooler: str) -> torch.Tensor:
    """Pooled last-layer states (B, d) of a right-padded batch: pooler 'cls' ([CLS] = position 0) or 'mean' (over the
    real tokens)."""
    B, L = input_ids.shape
    if pooler == "cls":
        return last_states(model, input_ids, attention_mask, torch.arange(B, device=input_ids.device) * L)
    x = last_states(model, input_ids, attention_mask)
    mask = attention_mask.bool()
    rows = torch.div(mask.reshape(-1).nonzero().squeeze(1), L, rounding_mode="floor")
    sums = x.new_zeros(B, x.shape[1]).index_add(0, rows, x)
    return sums / mask.sum(1, keepdim=True).clamp(min=1).to(x.dtype)
