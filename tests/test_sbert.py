"""Sentence-BERT's Table 2 systems and the loss family end to end: NLI / STS-B training data, the experiments' paper
recipes, every new experiment and every loss config at smoke scale (two-stage runs included), and the cross-encoder's
pair data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import DATA, compose
from csim.errors import CsimError

FAST = ["threads=1"]  # one thread: two threads are many times slower on a busy 2-core machine (results are the same)


# --- data ------------------------------------------------------------------------------------------------------------

def test_offline_nli_pairs_exclude_every_stsb_eval_sentence(tmp_path):
    from csim.data.nli import normalise_sentence, eval_sentences, nli, read_sick_nli, read_snli_split

    ds = nli(str(DATA), str(tmp_path), form="pairs", exclude_eval=["stsb_dev", "stsb_test"])
    banned = eval_sentences(DATA, ["stsb_dev", "stsb_test"])
    raw = [read_snli_split(DATA, "dev"), read_snli_split(DATA, "test"),
           read_sick_nli(DATA / "sick/senteval/SICK_train.txt")]
    raw_pairs = {(p, h): lab for part in raw for p, h, lab in zip(part["premise"], part["hypothesis"], part["label"])}
    hit = sum(1 for p, h in raw_pairs if normalise_sentence(p) in banned or normalise_sentence(h) in banned)
    assert hit > 100  # STS-B's track5 came from SNLI and its images pairs overlap SICK: there is something to drop
    text, pos, label = list(ds["text"]), list(ds["text_pos"]), list(ds["label"])
    assert not any(normalise_sentence(s) in banned for s in text + pos)
    assert set(label) == {0, 1, 2} and ds.column_names == ["text", "text_pos", "label"]
    # every kept pair is a raw pair with its own label (0 entailment, 1 neutral, 2 contradiction)
    assert all(raw_pairs[(p, h)] == lab for p, h, lab in zip(text, pos, label))
    rows = [(p, h) for part in raw for p, h in zip(part["premise"], part["hypothesis"])]
    assert len(ds) == sum(1 for p, h in rows if normalise_sentence(p) not in banned and normalise_sentence(h) not in banned)  # only those


def test_offline_nli_triplets_pair_entailment_with_contradiction(tmp_path):
    from csim.data.nli import nli

    pairs = nli(str(DATA), str(tmp_path), form="pairs", shuffle_seed=None)
    label = {(p, h): lab for p, h, lab in zip(pairs["text"], pairs["text_pos"], pairs["label"])}
    assert len(pairs) == 24166  # nothing filtered by default: SNLI dev 9,842 + test 9,824 + SICK train 4,500
    trip = nli(str(DATA), str(tmp_path), form="triplets")
    assert trip.column_names == ["text", "text_pos", "text_neg"] and len(trip) > 1000
    for a, pos, neg in zip(trip["text"], trip["text_pos"], trip["text_neg"]):
        assert label[(a, pos)] == 0 and label[(a, neg)] == 2


def test_nli_is_unfiltered_in_the_paper_recipes_and_filtered_offline():
    """Neither paper filters its NLI data; the offline scales, whose SNLI dev/test + SICK pairs share sentences with
    STS-B dev/test, drop those pairs (conf/scale/cpu.yaml)."""
    for exp in ("simcse_sup", "sbert_nli", "cross_encoder_nli"):  # the NLI stages of every NLI row
        assert list(compose([f"+exp={exp}"]).data.source.exclude_eval) == [], exp
        for scale in ("cpu", "smoke"):
            assert list(compose([f"+exp={exp}", f"scale={scale}"]).data.source.exclude_eval) == \
                ["stsb_dev", "stsb_test"], (exp, scale)


def test_nli_reader_refusals(tmp_path):
    from csim.data.nli import nli, read_snli_split

    bad = tmp_path / "data" / "snli"
    bad.mkdir(parents=True)
    (bad / "s1.dev").write_text("A man sleeps .\nA dog runs .\n")
    (bad / "s2.dev").write_text("Someone sleeps .\nA cat runs .\n")
    (bad / "labels.dev").write_text("entailment\nmaybe\n")
    with pytest.raises(CsimError) as e:
        read_snli_split(tmp_path / "data", "dev")
    assert "labels.dev:2" in str(e.value) and "maybe" in str(e.value)
    with pytest.raises(CsimError, match="form"):
        nli(str(DATA), str(tmp_path), form="quads")
    # the hub (paper scale) cannot be reached here: one paragraph that says how to go offline
    with pytest.raises(CsimError, match="scale=cpu"):
        nli(str(DATA), str(tmp_path), hub={"path": "sentence-transformers/all-nli", "name": "pair-class"})


def test_stsb_train_pairs():
    from csim.data.nli import stsb_pairs

    ds = stsb_pairs(str(DATA))
    assert len(ds) == 5749 and ds.column_names == ["text", "text_pos", "score"]
    assert 0.0 <= min(ds["score"]) and max(ds["score"]) <= 5.0


# --- configs: the paper recipes and the scale layer ------------------------------------------------------------------

def test_sbert_recipes_as_the_paper_says():
    nli_cfg = compose(["+exp=sbert_nli"])
    assert (nli_cfg.batch_size, nli_cfg.lr, nli_cfg.warmup_ratio, nli_cfg.trainer.max_epochs) == (16, 2e-5, 0.1, 1)
    assert nli_cfg.encoder.model_name == "bert-base-uncased" and nli_cfg.encoder.pooler == "mean"
    assert list(nli_cfg.loss.concat) == ["u", "v", "|u-v|"] and nli_cfg.loss.num_labels == 3
    assert nli_cfg.data.source.hub.path == "sentence-transformers/all-nli"  # SNLI + MultiNLI at paper scale
    for exp in ("sbert_stsb", "sbert_nli_stsb", "cross_encoder_stsb", "cross_encoder_nli_stsb"):
        cfg = compose([f"+exp={exp}"])
        assert (cfg.batch_size, cfg.trainer.max_epochs) == (16, 4), exp
    assert list(compose(["+exp=sbert_nli_stsb"]).init_from) == ["+exp=sbert_nli"]
    assert list(compose(["+exp=cross_encoder_nli_stsb"]).init_from) == ["+exp=cross_encoder_nli"]
    sup = compose(["+exp=simcse_sup"])
    recipe = (sup.batch_size, sup.lr, sup.max_length, sup.trainer.max_epochs, sup.loss.temperature)
    assert recipe == (512, 5e-5, 32, 3, 0.05)
    assert sup.data.source.form == "triplets" and sup.encoder.mlp == "always"


def test_scale_layer_leaves_encoders_without_the_key_alone():
    cpu = compose(["+exp=avg_glove", "scale=cpu"])
    assert "model_name" not in cpu.encoder and "random_init" not in cpu.encoder
    assert cpu.trainer.max_steps == 0 and compose(["+exp=avg_glove", "scale=smoke"]).trainer.max_steps == 0
    assert compose(["+exp=sbert_nli", "scale=cpu"]).encoder.model_name.endswith("mini-bert")
    assert compose(["+exp=sbert_nli", "scale=cpu"]).data.source.hub is None  # offline NLI
    assert compose(["+exp=infersent", "scale=smoke"]).encoder.hidden == 16


def test_labels_are_checked_before_any_work(run_smoke):
    with pytest.raises(CsimError, match="needs labels"):
        run_smoke(["+exp=sbert_nli", "data=wiki1m", "augment=dropout", *FAST])
    with pytest.raises(CsimError, match="hard negatives"):
        run_smoke(["+exp=simcse_sup", "data.source.form=pairs", "data.provides=[text,text_pos,label]", *FAST])


def test_softmax_classifier_is_trained_with_the_encoder():
    from csim.encoders.static import StaticAverage
    from csim.losses.softmax_nli import SoftmaxNLI
    from csim.modules.sentence import SentenceModule

    loss = SoftmaxNLI(concat=["u", "v", "|u-v|", "u*v"])
    module = SentenceModule(StaticAverage(), loss)
    assert loss.classifier.in_features == 4 * 50
    assert any(p is loss.classifier.weight for p in module.parameters())  # in the optimiser's parameter list


# --- every new experiment at smoke scale ---------------------------------------------------------------------------

def _finished(metrics, steps):
    assert metrics["steps"] == steps
    for k in ("best_stsb_dev_spearman", "stsb_test_spearman"):
        assert -100.0 <= metrics[k] <= 100.0
    return Path(metrics["run_dir"])


@pytest.mark.parametrize("exp", ["avg_glove", "avg_bert"])
def test_no_training_systems_evaluate_directly(run_smoke, exp):
    m = run_smoke([f"+exp={exp}", *FAST])
    run = _finished(m, 0)
    assert m["best_step"] == 0 and (run / "model").is_dir()
    if exp == "avg_glove":  # GloVe is not random: the first 200 STS-B pairs are clearly correlated
        assert m["stsb_test_spearman"] > 40


@pytest.mark.parametrize("exp", ["sbert_nli", "sbert_stsb", "infersent", "dan", "simcse_sup", "cross_encoder_stsb"])
def test_experiment_trains_at_smoke_scale(run_smoke, exp):
    run = _finished(run_smoke([f"+exp={exp}", "trainer.max_steps=6", "eval.every_n_steps=3", *FAST]), 6)
    cfg = (run / "config.yaml").read_text()
    assert f"name: {exp}" in cfg


@pytest.mark.parametrize("exp,first", [("sbert_nli_stsb", "sbert_nli"),
                                       ("cross_encoder_nli_stsb", "cross_encoder_nli")])
def test_two_stage_experiment_starts_from_its_first_stage(run_smoke, tmp_path, exp, first):
    from safetensors.torch import load_file

    # max_steps=0: the second stage exports the weights it starts from, which must be the first stage's
    _finished(run_smoke([f"+exp={exp}", "trainer.max_steps=0", *FAST]), 0)
    runs = tmp_path / "outputs" / "runs"
    firsts = [p for p in runs.iterdir() if p.name.startswith(first + "-")]
    assert len(firsts) == 1 and json.loads((firsts[0] / "metrics.json").read_text())["steps"] == 20
    second = next(p for p in runs.iterdir() if p.name.startswith(exp + "-"))
    w1, w2 = (load_file(str(p / "model" / "model.safetensors")) for p in (firsts[0], second))
    shared = [k for k in w1 if k in w2 and w1[k].shape == w2[k].shape]
    assert len(shared) > 20 and all(torch.equal(w1[k], w2[k]) for k in shared)
    if first == "cross_encoder_nli":  # the 3-class NLI head was replaced by a 1-output regression head
        assert w1["classifier.weight"].shape[0] == 3 and w2["classifier.weight"].shape[0] == 1
    # and the second stage trains, reusing the finished first stage
    _finished(run_smoke([f"+exp={exp}", "trainer.max_steps=4", "eval.every_n_steps=2", *FAST]), 4)
    assert len([p for p in runs.iterdir() if p.name.startswith(first + "-")]) == 1


LOSS_RUNS = {  # each loss config on an experiment whose data gives what it needs
    "nt_xent": ["+exp=simcse_unsup", "loss=nt_xent"],
    "triplet": ["+exp=simcse_sup", "loss=triplet"],                       # NLI triplets: the given negative
    "triplet_semi_hard": ["+exp=sbert_stsb", "loss=triplet", "loss.mining=batch_semi_hard"],  # mined in the batch
    "soft_nn": ["+exp=simcse_sup", "loss=soft_nn"],
    "infonce_on_pairs": ["+exp=sbert_stsb", "loss=infonce"],
}


@pytest.mark.parametrize("case", sorted(LOSS_RUNS))
def test_every_loss_config_runs_at_smoke_scale(run_smoke, case):
    _finished(run_smoke([*LOSS_RUNS[case], "trainer.max_steps=4", "eval.every_n_steps=2", *FAST]), 4)


# --- the cross-encoder's pair data ---------------------------------------------------------------------------------

def test_pair_data_module_batches_one_sequence_per_pair(tmp_path):
    from hydra.utils import instantiate

    cfg = compose(["+exp=cross_encoder_stsb", "scale=smoke"], tmp_path / "out", tmp_path / "cache")
    encoder = instantiate(cfg.encoder)
    data = instantiate(cfg.data, encoder=encoder, augment=instantiate(cfg.augment))
    data.setup()
    batch = next(iter(data.train_dataloader()))
    tokens = batch["tokens"]
    assert batch["n_views"] == 1 and batch["labels"].dtype == torch.float32 and len(batch["labels"]) == cfg.batch_size
    assert tokens["input_ids"].shape[0] == cfg.batch_size
    sep = encoder.tokenizer.sep_token_id
    assert ((tokens["input_ids"] == sep).sum(1) == 2).all()          # [CLS] s1 [SEP] s2 [SEP]
    assert (tokens["token_type_ids"].max(1).values == 1).all()       # the second sentence is segment 1
    assert torch.isfinite(encoder(tokens)).all() and encoder(tokens).shape == (cfg.batch_size,)


def test_segments_head_scores_the_two_segments_mean_states_and_reloads(tmp_path):
    """encoder.head=segments: a linear layer on [u, v, |u-v|, u*v] of each segment's mean last-layer state (padding
    and the other segment excluded); saved beside the weights, it reloads to the same scores; NLI's 3-class head is
    not loaded into a 1-score model."""
    from hydra.utils import instantiate

    from csim.encoders.cross_encoder import CrossEncoder

    cfg = compose(["+exp=cross_encoder_stsb", "scale=smoke", "encoder.head=segments"], tmp_path / "o", tmp_path / "c")
    encoder = instantiate(cfg.encoder).eval()
    # BERT's head is not used: frozen, so that data parallelism does not wait for gradients it never gets
    assert not any(p.requires_grad for p in [*encoder.model.classifier.parameters(),
                                             *encoder.model.base_model.pooler.parameters()])
    s1, s2 = ["a man plays the guitar .", "a dog runs"], ["a woman is slicing an onion in the kitchen .", "dogs run"]
    batch = encoder.collate([dict(zip(("input_ids", "token_type_ids"), r))
                             for r in zip(*encoder.tokenize_pairs(s1, s2).values())])
    with torch.no_grad():
        states = encoder.model.base_model(**batch).last_hidden_state
        n_a = [len(encoder.tokenizer(a)["input_ids"]) for a in s1]  # [CLS] a [SEP]
        n_b = [len(encoder.tokenizer(b)["input_ids"]) - 1 for b in s2]  # b [SEP]
        u = torch.stack([states[i, :n_a[i]].mean(0) for i in range(2)])
        v = torch.stack([states[i, n_a[i]: n_a[i] + n_b[i]].mean(0) for i in range(2)])
        expected = encoder.pair_head(torch.cat([u, v, (u - v).abs(), u * v], -1)).squeeze(-1)
        assert torch.allclose(encoder(batch), expected, atol=1e-5)
    encoder.save(tmp_path / "model")
    again = CrossEncoder(model_name=str(tmp_path / "model"), head="segments")
    assert (again.score_pairs(s1, s2) == encoder.score_pairs(s1, s2)).all()
    nli = CrossEncoder(model_name=str(tmp_path / "model"), head="segments", num_labels=3)
    assert nli.pair_head[1].weight.shape[0] == 3
    with pytest.raises(CsimError, match="encoder.head"):
        CrossEncoder(model_name=str(tmp_path / "model"), head="pooler")


def test_segments_head_two_stage_cross_encoder_trains_at_smoke_scale(run_smoke, tmp_path):
    run = _finished(run_smoke(["+exp=cross_encoder_nli_stsb", "encoder.head=segments", "trainer.max_steps=4",
                               "eval.every_n_steps=2", *FAST]), 4)
    assert (run / "model" / "csim_pair_head.pt").is_file()
    assert json.loads((run / "model" / "csim_cross_encoder.json").read_text())["head"] == "segments"


def test_restarted_positions_give_the_second_segment_its_own_sentence_positions():
    """encoder.segment_positions=restart: b's tokens take positions 1.. (after the [CLS] slot), as when b is encoded
    alone; the first segment keeps BERT's."""
    from csim.encoders.cross_encoder import restarted_positions

    types = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 0], [0, 0, 0, 1, 1, 0, 0, 0], [0] * 8])
    assert restarted_positions(types).tolist() == [[0, 1, 2, 3, 1, 2, 3, 7], [0, 1, 2, 1, 2, 5, 6, 7],
                                                   list(range(8))]
