"""Encoders beyond transformers: word-vector tokenisation against sentence-transformers' WhitespaceTokenizer, average
GloVe (and its STS-B protocol numbers against an independent computation), BiLSTM-max, DAN, and the cross-encoder
(pairs tokenised as one sequence, scores independent of batching, a folder sentence-transformers' CrossEncoder
loads)."""

from __future__ import annotations

import json
import logging
import warnings

import numpy as np
import pytest
import torch

from conftest import DATA
from csim.errors import CsimError

SENTENCES = ["A man is playing a guitar.", "The Dog's ball, (red) — rolled away!", "xqzt vbnm", "",
             "Two women are embracing while holding to go packages .", "It is what it is."]


@pytest.fixture(scope="module")
def glove():
    from csim.encoders.glove import load_glove

    return load_glove(None)


@pytest.fixture(scope="module")
def st_tokenizer(glove):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sentence_transformers.sentence_transformer.modules.tokenizer import ENGLISH_STOP_WORDS, WhitespaceTokenizer
    index, _ = glove
    words = [None] * len(index)
    for w, i in index.items():
        words[i] = w

    def make(stop_words, lowercase):
        return WhitespaceTokenizer(words, stop_words=ENGLISH_STOP_WORDS if stop_words else [], do_lower_case=lowercase)

    return make


# --- word tokenisation and average GloVe ---------------------------------------------------------------------------

@pytest.mark.parametrize("stop_words", ["sentence_transformers", "none"])
@pytest.mark.parametrize("lowercase", [False, True])
def test_word_ids_follow_sentence_transformers_whitespace_tokenizer(st_tokenizer, stop_words, lowercase):
    from csim.data.sts import read_stsb
    from csim.encoders.static import StaticAverage

    enc = StaticAverage(stop_words=stop_words, lowercase=lowercase)
    ref = st_tokenizer(stop_words != "none", lowercase)
    texts = SENTENCES + list(read_stsb(DATA, "test")["s1"][:300])
    assert [enc.word_ids(t) for t in texts] == [ref.tokenize(t) for t in texts]


def test_static_average_is_the_mean_and_empty_is_zero(glove, caplog):
    from csim.encoders.static import StaticAverage

    index, vectors = glove
    enc = StaticAverage(stop_words="none")
    with caplog.at_level(logging.WARNING, logger="csim.encoders.words"):
        emb = enc.encode(SENTENCES, batch_size=4)
    assert "2 of 6 sentences have no word" in caplog.text  # "xqzt vbnm" and ""
    ids = [index[w] for w in ("a", "man", "is", "playing", "a", "guitar")]
    assert torch.allclose(emb[0], torch.from_numpy(vectors[ids].mean(0)), atol=1e-6)
    assert emb.shape == (6, 50) and torch.count_nonzero(emb[2]) == 0 and torch.count_nonzero(emb[3]) == 0
    assert enc.score_pairs(["xqzt"], ["A man"])[0] == 0.0  # a zero vector has cosine 0 with everything


def test_avg_glove_stsb_protocols_match_an_independent_computation(st_tokenizer, glove):
    """STS-B test Spearman of avg_glove (both protocols) equals the same numbers computed with sentence-transformers'
    tokenizer and numpy; removing stop words is the large effect the issue measured (55.6 vs 39.4 there)."""
    from csim.data.sts import read_stsb
    from csim.encoders.static import StaticAverage
    from csim.evaluation.sts import evaluate_sts, spearman_x100

    _, vectors = glove
    test = read_stsb(DATA, "test")
    got = {}
    for stop in ("sentence_transformers", "none"):
        tok = st_tokenizer(stop != "none", False)

        def emb(s):
            ids = tok.tokenize(s)
            return vectors[ids].mean(0) if ids else np.zeros(vectors.shape[1], np.float32)

        a, b = np.stack([emb(s) for s in test["s1"]]), np.stack([emb(s) for s in test["s2"]])
        cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
        ref = spearman_x100(cos, test["score"])
        got[stop] = evaluate_sts(StaticAverage(stop_words=stop), test, "stsb_test")["stsb_test_spearman"]
        # equal up to the ranking of float-rounding ties (pairs of identical sentences: cosine 1 +- 1e-7)
        assert got[stop] == pytest.approx(ref, abs=0.02)
    assert got["sentence_transformers"] > got["none"] + 10


def test_stop_word_options(tmp_path):
    from csim.encoders.words import resolve_stop_words

    assert len(resolve_stop_words("sentence_transformers")) == 386 and resolve_stop_words("none") == frozenset()
    f = tmp_path / "stop.txt"
    f.write_text("the\n a \n\n")
    assert resolve_stop_words(str(f)) == {"the", "a"} and resolve_stop_words(["x"]) == {"x"}
    with pytest.raises(CsimError, match="stop_words"):
        resolve_stop_words(str(tmp_path / "missing.txt"))


# --- BiLSTM-max and DAN ----------------------------------------------------------------------------------------------

def _batch(enc, texts):
    tok = enc.tokenize(texts)
    return enc.collate([{"input_ids": i} for i in tok["input_ids"]])


def test_bilstm_max_pools_the_unpadded_sequence_only():
    from csim.encoders.lstm import BiLSTMMax

    torch.manual_seed(0)
    enc = BiLSTMMax(hidden=8).eval()
    texts = ["a man", "a man is playing a large guitar on the stage", "xqzt"]
    batch = _batch(enc, texts)
    with torch.no_grad():
        out = enc(batch)
        alone = enc(_batch(enc, texts[:1]))
        # reference: the LSTM over the two word vectors alone, max over time
        x = enc.vectors[torch.tensor(enc.word_ids("a man"))].unsqueeze(0)
        ref = enc.lstm(x)[0].max(dim=1).values[0]
    assert out.shape == (3, 16) and enc.dim == 16
    assert torch.allclose(out[0], ref, atol=1e-6) and torch.allclose(alone[0], ref, atol=1e-6)
    assert torch.isfinite(out[2]).all()  # the all-OOV sentence


def test_dan_word_dropout_only_in_training():
    from csim.encoders.dan import DAN

    torch.manual_seed(0)
    enc = DAN(layers=[12, 6], word_dropout=0.5)
    batch = _batch(enc, ["a man is playing a large guitar on the stage tonight", "a dog"])
    enc.eval()
    with torch.no_grad():
        e1, e2 = enc(batch), enc(batch)
        avg = (enc.vectors[batch["input_ids"][1, :2]]).mean(0)
        ref = enc.net(avg)
    assert torch.equal(e1, e2) and e1.shape == (2, 6) and enc.dim == 6
    assert torch.allclose(e1[1], ref, atol=1e-6)
    enc.train()
    draws = torch.stack([enc(batch)[0] for _ in range(5)])
    assert draws.std(0).sum() > 0  # a different word sample each call
    with pytest.raises(CsimError, match="layers"):
        DAN(layers=[])


def test_word_encoder_save_writes_config_and_trained_weights(tmp_path):
    from safetensors.torch import load_file

    from csim.encoders.lstm import BiLSTMMax
    from csim.encoders.static import StaticAverage

    StaticAverage().save(tmp_path / "avg")
    meta = json.loads((tmp_path / "avg" / "csim_encoder.json").read_text())
    assert meta["class"] == "csim.encoders.static.StaticAverage" and meta["dim"] == 50
    assert not (tmp_path / "avg" / "model.safetensors").exists()  # the GloVe table is not copied
    lstm = BiLSTMMax(hidden=4)
    lstm.save(tmp_path / "lstm")
    saved = load_file(str(tmp_path / "lstm" / "model.safetensors"))
    assert set(saved) == {k for k in lstm.state_dict()} and "vectors" not in saved


# --- cross-encoder ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cross(tmp_path_factory):
    from csim.encoders.cross_encoder import CrossEncoder

    torch.manual_seed(0)
    return CrossEncoder(random_init={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                     "intermediate_size": 64},
                        tokenizer={"train_file": "wiki1m_head/wiki1m_for_simcse.head.txt", "vocab_size": 2000},
                        max_length=24, data_dir=str(DATA), cache_dir=str(tmp_path_factory.mktemp("cache")))


def test_cross_encoder_reads_the_pair_as_one_sequence(cross):
    long = "A woman sings a long song about the sea , the sky , the stars and the moon over the quiet town ."
    enc = cross.tokenizer("A man plays.", long, truncation=True, max_length=24)
    mine = cross.tokenize_pairs(["A man plays."], [long])
    assert mine["input_ids"][0] == enc["input_ids"] and len(enc["input_ids"]) == 24  # pair truncation
    types = mine["token_type_ids"][0]
    assert types[0] == 0 and types[-1] == 1 and sorted(set(types)) == [0, 1]
    assert not hasattr(cross, "encode")  # not a bi-encoder: evaluation must call score_pairs


def test_cross_encoder_scores_do_not_depend_on_batching(cross):
    s1 = ["a man plays", "the cat sleeps on the mat", "two dogs run", "it rains"]
    s2 = ["a person plays music", "a cat", "dogs are running in a field of grass", "the sun shines"]
    full = cross.score_pairs(s1, s2, batch_size=4)
    small = cross.score_pairs(s1, s2, batch_size=1)
    rev = cross.score_pairs(s1[::-1], s2[::-1], batch_size=3)[::-1]
    assert full.shape == (4,) and np.allclose(full, small, atol=1e-5) and np.allclose(full, rev, atol=1e-5)
    assert cross.training  # score_pairs restores the mode it found


def test_cross_encoder_folder_loads_in_sentence_transformers(cross, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sentence_transformers import CrossEncoder as STCrossEncoder
    cross.save(tmp_path / "model")
    s1, s2 = ["a man plays", "the cat sleeps"], ["a person plays music", "a dog barks"]
    theirs = STCrossEncoder(str(tmp_path / "model"), device="cpu").predict(list(zip(s1, s2)),
                                                                          activation_fn=torch.nn.Identity())
    assert np.allclose(np.asarray(theirs), cross.score_pairs(s1, s2), atol=1e-5)


def test_cross_encoder_classes_score_with_a_probability(tmp_path):
    from csim.encoders.cross_encoder import CrossEncoder

    enc = CrossEncoder(random_init={"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                                    "intermediate_size": 32},
                       tokenizer={"train_file": "wiki1m_head/wiki1m_for_simcse.head.txt", "vocab_size": 2000},
                       num_labels=3, score_label=0, max_length=16, data_dir=str(DATA), cache_dir=str(tmp_path))
    scores = enc.score_pairs(["a b", "c d e"], ["a", "f"])
    assert ((scores > 0) & (scores < 1)).all()
    with pytest.raises(CsimError, match="score_label"):
        CrossEncoder(num_labels=3, score_label=3)
