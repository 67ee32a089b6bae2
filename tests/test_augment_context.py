"""Augmentations that read context (next sentence(s), the ordered corpus) and the augmentation experiments end to
end (split from test_augment.py)."""

from __future__ import annotations

import json

import pytest

from conftest import DATA, compose
from csim.errors import CsimError


# --- next sentence(s) and the ordered corpus -------------------------------------------------------------------

def test_next_sentence_positives():
    from csim.augment.next_sentence import NextSentence

    batch = {"text": ["s0", "s1", "s2"], "following": [["s1", "s2", "s3"], ["s2", "s3"], ["s3"]]}
    assert NextSentence(window=1)(batch, [1, 2, 3]) == {"view1": ["s0", "s1", "s2"], "view2": ["s1", "s2", "s3"]}
    picks = [NextSentence(window=3)({"text": ["s0"], "following": [["s1", "s2", "s3", "s4"]]}, [s])["view2"][0]
             for s in range(40)]
    assert set(picks) == {"s1", "s2", "s3"}
    assert NextSentence.needs == ("following",)


def test_ordered_reader_pairs_within_documents(tmp_path):
    from csim.data.ordered import ordered_sentences

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a1\na2\na3\n\nb1\nb2\n")  # two documents
    (tmp_path / "src" / "b.txt").write_text("c1\nc2\nc3\nc4\nc5\n")
    ds = ordered_sentences(str(tmp_path), "src/*.txt", window=3, cache_dir=str(tmp_path / "cache"), shuffle_seed=1)
    rows = {r["text"]: r["following"] for r in ds}
    assert rows == {"a1": ["a2", "a3"], "a2": ["a3"], "b1": ["b2"], "c1": ["c2", "c3", "c4"],
                    "c2": ["c3", "c4", "c5"], "c3": ["c4", "c5"], "c4": ["c5"]}
    assert [r["text"] for r in ds] != sorted(rows)  # shuffled once the pairs are formed
    with pytest.raises(CsimError, match="data.source.files"):
        ordered_sentences(str(tmp_path), "src/*.csv", cache_dir=str(tmp_path / "cache"))


def test_ordered_reader_real_corpus_is_in_document_order(cache_dir):
    from csim.data.ordered import ordered_sentences

    ds = ordered_sentences(str(DATA), "corpus/by_source/inaugural.txt", window=3, cache_dir=str(cache_dir))
    lines = (DATA / "corpus/by_source/inaugural.txt").read_text(encoding="utf-8").splitlines()
    assert len(ds) == len(lines) - 1
    where = {s: i for i, s in enumerate(lines)}
    for row in ds.select(range(50)):
        i = where[row["text"]]
        assert row["following"] == lines[i + 1:i + 4]


def test_wikipedia_articles_split_into_runs():
    from csim.data.ordered import article_documents, rows_from_documents

    art = "Alan Turing was a mathematician. He was born in London.\n\nEarly life\nHe went to school. He ran.\n"
    docs = list(article_documents([art]))
    assert docs == [["Alan Turing was a mathematician.", "He was born in London."], ["He went to school.", "He ran."]]
    assert [r["following"] for r in rows_from_documents(docs, 1)] == [["He was born in London."], ["He ran."]]


# --- experiments ------------------------------------------------------------------------------------------------------

EXPS = ["simcse_crop", "simcse_word_deletion", "simcse_delete_one_word", "simcse_synonym", "simcse_mlm",
        "simcse_next_sentence", "simcse_next3_sentences"]


def test_rows_are_the_recipe_plus_overrides():
    unsup = compose(["+exp=simcse_unsup"])
    for exp in EXPS:
        cfg = compose([f"+exp={exp}"])
        for key in ("batch_size", "lr", "max_length", "seed", "weight_decay", "warmup_ratio"):
            assert cfg[key] == unsup[key], (exp, key)
        assert cfg.trainer.max_steps == 15625 and cfg.loss.temperature == 0.05 and cfg.encoder.dropout == 0.1
        assert cfg.encoder.model_name == "bert-base-uncased" and cfg.module.two_encoders is False
    assert compose(["+exp=simcse_delete_one_word", "encoder.dropout=0"]).encoder.dropout == 0  # "w/o dropout"
    assert compose(["+exp=simcse_next_sentence", "module.two_encoders=true"]).module.two_encoders is True
    assert compose(["+exp=simcse_mlm"]).augment.ratio == 0.15
    assert compose(["+exp=simcse_next3_sentences"]).augment.window == 3
    cpu = compose(["+exp=simcse_mlm", "scale=cpu"])
    assert cpu.augment.model_name == cpu.paths.mini_encoder and cpu.augment.ratio == 0.15


def test_sweep_combinations_get_distinct_run_directories():
    from csim.runs.identity import run_dir_for

    dirs = {run_dir_for(compose(["+exp=simcse_unsup", f"augment={a}", f"augment.ratio={r}", "scale=smoke"]))
            for a in ("crop", "word_deletion") for r in (0.1, 0.2, 0.3)}
    assert len(dirs) == 6


@pytest.mark.parametrize("exp,extra", [
    ("simcse_crop", ["augment.ratio=0.2"]), ("simcse_word_deletion", []),
    ("simcse_delete_one_word", ["encoder.dropout=0"]),
    ("simcse_synonym", []), ("simcse_mlm", []), ("simcse_next_sentence", ["module.two_encoders=true"]),
    ("simcse_next3_sentences", []),
])
def test_smoke_run_every_experiment(run_smoke, tmp_path, exp, extra):
    short = ["trainer.max_steps=4", "eval.every_n_steps=2", "data.max_train_examples=160", "eval.max_pairs=64",
             "threads=1"]  # one thread: a tiny model, and no slowdown when other processes keep the cores busy
    metrics = run_smoke([f"+exp={exp}", *extra, *short])
    run = tmp_path / "outputs" / "runs"
    (only,) = list(run.iterdir())
    assert only.name.startswith(exp + "-")
    on_disk = json.loads((only / "metrics.json").read_text())
    assert on_disk["steps"] == 4 and -100 <= on_disk["best_stsb_dev_spearman"] <= 100
    assert metrics["stsb_test_spearman"] == on_disk["stsb_test_spearman"]
