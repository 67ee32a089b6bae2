"""scripts/fetch_data.py (csim.data.fetch) without the network: the download functions are replaced by tiny in-memory
`datasets.Dataset`s shaped like the hub datasets (and tiny NLTK corpus folders), the folders are written into
tmp_path, and csim's own readers read them back."""

from __future__ import annotations

import runpy
import shutil
from pathlib import Path

import datasets
import pytest

import csim.hub
from csim.data import nli, sts
from csim.data.fetch import FOLDERS, Folder, fetch, pairs, text
from csim.data.fetch import hub as fetch_hub
from csim.errors import CsimError

ROOT = Path(__file__).resolve().parent.parent
STSB_SENTENCE = "An air plane is taking off."  # in the fake STS-B splits: must be filtered out of the corpus
SICK_FEATURES = datasets.Features({
    "sentence_pair_id": datasets.Value("int64"), "premise": datasets.Value("string"),
    "hypothesis": datasets.Value("string"), "relatedness_score": datasets.Value("float32"),
    "entailment_judgment": datasets.ClassLabel(names=["NEUTRAL", "ENTAILMENT", "CONTRADICTION"])})
SNLI_FEATURES = datasets.Features({
    "premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
    "label": datasets.ClassLabel(names=["entailment", "neutral", "contradiction"])})


def sts_pair(year: int, subset: str, k: int) -> tuple[str, str]:
    return f"{subset} pair {k} of STS{year}, left side", f"the right side of {subset} pair {k}"


def sts_year(year: int, order=None) -> datasets.Dataset:
    """Like mteb/stsYY-sts test: split, sentence1, sentence2, score; no subset column; subsets in consecutive blocks."""
    rows = {"split": [], "sentence1": [], "sentence2": [], "score": []}
    counts = dict(zip(sts.STS_SUBSETS[year], pairs.GOLD_COUNTS[year]))
    for subset in order or sts.STS_SUBSETS[year]:
        for k in range(counts[subset]):
            a, b = sts_pair(year, subset, k)
            rows["split"].append("test")
            rows["sentence1"].append(a)
            rows["sentence2"].append(b)
            rows["score"].append((k % 51) / 10)
    return datasets.Dataset.from_dict(rows)


def stsb_split(split: str) -> datasets.Dataset:
    """Like mteb/stsbenchmark-sts: split, genre, dataset, year, sid, score, sentence1, sentence2."""
    rows = [("main-captions", "MSRvid", "2012test", "0001", 5.0, 'A plane is "taking" off.', STSB_SENTENCE),
            ("main-news", "headlines", "2014", "0042", 3.8, *sts_pair(14, "headlines", 0)),
            ("main-news", "MSRpar", "2012test", "0007", 0.666666666666667, *sts_pair(12, "MSRpar", 3)),
            ("main-news", "MSRpar", "2012train", "0008", 2.25, *sts_pair(12, "MSRvid", 5)),  # train rows: not checked
            ("main-forums", "answer-answer", "2016", "0015", 3.0, "Tab\there in the hub text.", "It depends.")]
    cols = ("genre", "dataset", "year", "sid", "score", "sentence1", "sentence2")
    columns = {c: [r[i] for r in rows] for i, c in enumerate(cols)}
    return datasets.Dataset.from_dict({"split": [split] * len(rows), **columns})


def hub_data() -> dict[tuple[str, str], datasets.Dataset]:
    data = {(pairs.STSB_HUB, s): stsb_split(s) for s in ("train", "validation", "test")}
    data.update({(pairs.STS_HUB.format(year=y), "test"): sts_year(y) for y in sts.STS_SUBSETS})
    sick = {"sentence_pair_id": [1, 2, 3], "premise": ["A man is playing a guitar", "Two dogs run", "A kid sleeps"],
            "hypothesis": ["A person plays a guitar", "Two dogs sleep", "A child is sleeping"],
            "relatedness_score": [4.5, 3.3, 4.9], "entailment_judgment": [1, 2, 0]}
    for split in ("train", "validation", "test"):
        data[(pairs.SICK_HUB, split)] = datasets.Dataset.from_dict(sick, features=SICK_FEATURES)
    snli = {"premise": ["Two women are embracing.", "A man is outside.", "A dog runs.", "Kids play."],
            "hypothesis": ["The sisters hug.", "A man is indoors.", "An animal moves.", "Nobody plays."],
            "label": [1, 2, -1, 0]}
    for split in ("validation", "test"):
        data[(pairs.SNLI_HUB, split)] = datasets.Dataset.from_dict(snli, features=SNLI_FEATURES)
    data[(text.WIKI1M_HUB, "train")] = datasets.Dataset.from_dict(
        {"text": [f"Wikipedia sentence number {i}." for i in range(text.HEAD_LINES + 5)]})
    return data


@pytest.fixture
def fake_hub(monkeypatch):
    data = hub_data()
    calls = []

    def load_hub(path, split, data_files=None, cache_dir=None):
        calls.append((path, split))
        return data[(path, split)]

    monkeypatch.setattr(fetch_hub, "load_hub", load_hub)
    monkeypatch.setattr(fetch_hub, "hub_revision", lambda path: "rev-for-test")
    monkeypatch.setattr(csim.hub, "hub_reachable", lambda timeout=3.0: True)
    monkeypatch.setattr(fetch_hub, "host_reachable", lambda host, timeout=3.0: True)
    return calls


def test_stsb_written_in_the_release_layout_and_read_back(tmp_path, fake_hub):
    assert fetch(tmp_path, only=["stsb"], log=lambda m: None) == ["stsb"]
    lines = (tmp_path / "stsb/original/sts-test.csv").read_text(encoding="utf-8").splitlines()
    assert [len(line.split("\t")) for line in lines] == [7] * 5
    assert lines[0] == 'main-captions\tMSRvid\t2012test\t0001\t5\tA plane is "taking" off.\tAn air plane is taking off.'
    ds = sts.read_stsb(tmp_path, "test")
    assert len(ds) == 5
    assert ds["score"] == [5.0, 3.8, 0.666666666666667, 2.25, 3.0]
    assert ds["s1"][0] == 'A plane is "taking" off.'  # quotes stay literal (no csv quoting)
    assert ds["s1"][4] == "Tab here in the hub text."  # a tab inside a sentence would shift the columns
    provenance = (tmp_path / "stsb/PROVENANCE.md").read_text()
    assert "mteb/stsbenchmark-sts" in provenance and "rev-for-test" in provenance and "sts-dev.csv" in provenance


def test_sts12_16_subsets_by_position_cross_checked_with_stsb(tmp_path, fake_hub):
    fetch(tmp_path, only=["sts12-16"], log=lambda m: None)
    for year, subsets in sts.STS_SUBSETS.items():
        ds = sts.read_sts_year(tmp_path, year)
        assert len(ds) == sum(pairs.GOLD_COUNTS[year])
        for subset, n in zip(subsets, pairs.GOLD_COUNTS[year]):
            part = ds.filter(lambda b: [s == subset for s in b["subset"]], batched=True)
            assert len(part) == n
            assert all(s.startswith(f"{subset} pair ") for s in part["s1"])  # the right pairs in the right file
            assert part["score"][:3] == [0.0, 0.1, 0.2]
    provenance = (tmp_path / "sts12-16/PROVENANCE.md").read_text()
    assert "STS14: 3750 pairs" in provenance and "1 of 1 shared pairs" in provenance  # headlines 2014
    assert "WARNING" not in provenance


def test_sts_positional_cut_that_contradicts_stsb_is_reported():
    labels = pairs.stsb_subset_labels([stsb_split("test")])
    order = ("headlines", "FNWN", "OnWN")  # not SentEval's order
    ds = sts_year(13, order=order)
    row = ds["sentence1"].index(sts_pair(13, "headlines", 0)[0])
    labels[(pairs._norm(ds["sentence1"][row]), pairs._norm(ds["sentence2"][row]))] = (13, "headlines")
    groups, note = pairs.split_year(ds, 13, labels)
    assert "0 of 1 shared pairs" in note and "WARNING" in note
    assert [len(v) for v in groups.values()] == [189, 750, 561]


def test_sts_subset_column_is_used_when_the_hub_has_one():
    ds = sts_year(13, order=("OnWN", "FNWN", "headlines"))
    ds = ds.add_column("subset", [s.split(" pair ")[0] for s in ds["sentence1"]])
    groups, note = pairs.split_year(ds, 13, None)
    assert "`subset` column" in note
    assert {s: len(v) for s, v in groups.items()} == {"FNWN": 189, "headlines": 750, "OnWN": 561}
    assert all(ds["sentence1"][i].startswith("headlines") for i in groups["headlines"])
    with pytest.raises(CsimError, match="no pairs of subset"):
        pairs.split_year(ds.filter(lambda b: [s != "FNWN" for s in b["subset"]], batched=True), 13, None)
    with pytest.raises(CsimError, match="3108 scored pairs"):
        pairs.split_year(sts_year(12).select(range(100)), 12, None)


def test_sick_and_snli_read_back_by_the_nli_and_sts_readers(tmp_path, fake_hub):
    fetch(tmp_path, only=["sick", "snli"], log=lambda m: None)
    sick = sts.read_sickr(tmp_path, "test")
    assert sick["score"] == [4.5, 3.3, 4.9]
    assert (tmp_path / "sick/senteval/SICK_trial.txt").read_text().splitlines()[2] == \
        "2\tTwo dogs run\tTwo dogs sleep\t3.3\tCONTRADICTION"  # float32 3.3 written as 3.3
    sick_nli = nli.read_sick_nli(tmp_path / "sick/senteval/SICK_train.txt")
    assert sick_nli["label"] == [nli.LABELS["entailment"], nli.LABELS["contradiction"], nli.LABELS["neutral"]]
    for split in ("dev", "test"):
        snli = nli.read_snli_split(tmp_path, split)
        assert snli["premise"] == ["Two women are embracing.", "A man is outside.", "Kids play."]  # label -1 dropped
        assert snli["label"] == [1, 2, 0]
    assert "| dev | 3 | 1 | 1 | 1 | 1 |" in (tmp_path / "snli/PROVENANCE.md").read_text()


def test_wiki1m_head_gives_the_reader_the_same_number_of_sentences_as_offline(tmp_path, fake_hub):
    from csim.data.corpus import text_lines

    fetch(tmp_path, only=["wiki1m", "wiki1m_head"], log=lambda m: None)
    full = (tmp_path / "wiki1m/wiki1m_for_simcse.txt").read_text().splitlines()
    assert len(full) == text.HEAD_LINES + 5 and full[0] == "Wikipedia sentence number 0."
    ds = text_lines(str(tmp_path), "wiki1m_head/wiki1m_for_simcse.head.txt", cache_dir=str(tmp_path / "cache"),
                    drop_last_line=True)  # as conf/scale/smoke.yaml reads the head
    assert len(ds) == 11_914 and ds["text"][-1] == "Wikipedia sentence number 11913."


def test_existing_folders_are_kept_unless_forced_and_failures_leave_no_partial_folder(tmp_path, fake_hub, monkeypatch):
    fetch(tmp_path, only=["snli"], log=lambda m: None)
    (tmp_path / "snli/labels.dev").write_text("mine\n")
    messages = []
    assert fetch(tmp_path, only=["snli"], log=messages.append) == []
    assert (tmp_path / "snli/labels.dev").read_text() == "mine\n" and "exists, skipped" in messages[0]
    assert fetch(tmp_path, only=["snli"], force=True, log=lambda m: None) == ["snli"]
    assert (tmp_path / "snli/labels.dev").read_text() == "neutral\ncontradiction\nentailment\n"

    def broken(stage, ctx):
        (stage / "half.txt").write_text("half")
        raise ConnectionError("connection reset")

    monkeypatch.setattr("csim.data.fetch.FOLDERS",
                        tuple(Folder("sick", "hub", broken) if f.name == "sick" else f for f in FOLDERS))
    with pytest.raises(CsimError, match=r"Fetched stsb into .* fetch sick \(ConnectionError: connection reset\)"):
        fetch(tmp_path, only=["sick", "stsb"], log=lambda m: None)
    assert (tmp_path / "stsb/PROVENANCE.md").is_file() and not (tmp_path / "sick").exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind
    with pytest.raises(CsimError, match="not a folder of the data layout"):
        fetch(tmp_path, only=["stsbenchmark"])


def test_offline_stops_at_once_with_one_paragraph(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(csim.hub, "hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(fetch_hub, "host_reachable", lambda host, timeout=3.0: False)
    monkeypatch.setattr(fetch_hub, "load_hub", lambda *a, **k: pytest.fail("downloaded while offline"))
    main = runpy.run_path(str(ROOT / "scripts/fetch_data.py"), run_name="fetch_data")["main"]
    assert main(["--out", str(tmp_path / "data")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fetch_data: error: Cannot download the data: the Hugging Face hub (huggingface.co) and "
                          "NLTK's data server")
    assert "nothing was written" in err and "make data" in err and err.count("\n") == 1
    assert not (tmp_path / "data").exists()


def test_wordnet_in_nltk_layout_is_read_by_the_synonym_augmentation(tmp_path, fake_hub, monkeypatch):
    from csim.augment.synonym import synonyms

    offline = ROOT / "data/nltk_data/corpora/wordnet"
    if not offline.is_dir():
        pytest.skip("no offline WordNet to stand in for NLTK's download")

    def nltk_download(package, download_dir):
        assert package == "wordnet"
        shutil.copytree(offline, download_dir / "corpora/wordnet")
        return download_dir / "corpora/wordnet"

    monkeypatch.setattr(fetch_hub, "nltk_download", nltk_download)
    fetch(tmp_path, only=["nltk_data"], log=lambda m: None)
    assert "fast" in synonyms(str((tmp_path / "nltk_data").resolve()), "quick")


# --- corpus/ ----------------------------------------------------------------------------------------------------------
CORPORA = {
    "brown/ca01": "\n\tThe/at Fulton/np-tl County/nn-tl Grand/jj-tl Jury/nn-tl said/vbd Friday/nr an/at "
                  "investigation/nn took/vbd place/nn ./.\n\n\tThe/at jury/nn agreed/vbd ./.\n",
    "brown/README": "not a corpus file: never read as sentences at all\n",
    "movie_reviews/pos/cv000_1.txt": "films adapted from comic books have had plenty of success . \n",
    "movie_reviews/neg/cv001_2.txt": "the sequel is , sadly , even worse than the first one . \n",
    "gutenberg/austen-emma.txt": "Emma Woodhouse, handsome, clever, and rich, seemed to unite some of the best "
                                 "blessings of existence.\n\nShe was the youngest of the two daughters of a most "
                                 "affectionate, indulgent father. The end came soon after that day.\n",
    "gutenberg/bible-kjv.txt": "In the beginning God created the heaven and the earth.\n",
    "reuters/training/2": "HEADLINE IN CAPITALS\n    The company said on Tuesday that profits rose sharply this year.\n"
                          "    Analysts had expected a much smaller rise in the profits.\n",
    "reuters/test/10": "SECOND HEADLINE\n    Shares of the bank fell five percent in early trading today.\n",
    "abc/rural.txt": "The new café opened in the small country town last week.\n",
    "abc/science.txt": "The café of the research station served coffee to the scientists.\n",  # Latin-1 bytes
    "state_union/1945-Truman.txt": "It is with a heavy heart that I stand before you today.\n\n"
                                   "THIS LINE IS ALL IN CAPITAL LETTERS HERE.\n",
    "inaugural/1789-Washington.txt": f"Among the vicissitudes incident to life no event could have filled me with "
                                     f"greater anxieties.\n\n{STSB_SENTENCE}\n\nToo short here.\n\n"
                                     f"It is with a heavy heart that I stand before you today.\n",
}


def fake_nltk_download(package, download_dir):
    for rel, content in CORPORA.items():
        if rel.split("/")[0] == package:
            path = download_dir / "corpora" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            encoding = "latin-1" if rel == "abc/science.txt" else "utf-8"
            path.write_bytes(content.encode(encoding))
    return download_dir / "corpora" / package


def test_corpus_follows_the_offline_recipe_and_reads_back(tmp_path, fake_hub, monkeypatch):
    from csim.data.corpus import text_lines
    from csim.data.ordered import ordered_sentences

    monkeypatch.setattr(fetch_hub, "nltk_download", fake_nltk_download)
    fetch(tmp_path, only=["stsb", "corpus"], log=lambda m: None)  # stsb first: its sentences are filtered out
    by_source = {p.stem: p.read_text(encoding="utf-8").splitlines() for p in (tmp_path / "corpus/by_source").iterdir()}
    assert sorted(by_source) == sorted(["brown", "movie_reviews", "gutenberg", "reuters", "abc", "state_union",
                                        "inaugural"])
    assert by_source["brown"] == ["The Fulton County Grand Jury said Friday an investigation took place."]
    assert by_source["movie_reviews"] == ["films adapted from comic books have had plenty of success.",
                                          "the sequel is, sadly, even worse than the first one."]
    assert by_source["gutenberg"][-1] == "The end came soon after that day."  # Punkt split; no bible-kjv.txt
    assert not any("In the beginning" in s for s in by_source["gutenberg"])
    assert by_source["reuters"][0] == "The company said on Tuesday that profits rose sharply this year."
    assert by_source["abc"] == ["The new café opened in the small country town last week.",
                                "The café of the research station served coffee to the scientists."]
    assert by_source["state_union"] == ["It is with a heavy heart that I stand before you today."]  # caps dropped
    # duplicate of state_union, too short, and the STS-B test sentence are all gone:
    assert by_source["inaugural"] == ["Among the vicissitudes incident to life no event could have filled me with "
                                      "greater anxieties."]
    shuffled = text_lines(str(tmp_path), "corpus/sentences_shuffled.txt", cache_dir=str(tmp_path / "cache"))
    assert sorted(shuffled["text"]) == sorted(s for v in by_source.values() for s in v)
    ordered = ordered_sentences(str(tmp_path), "corpus/by_source/*.txt", window=1, cache_dir=str(tmp_path / "cache"))
    assert {"text": "Emma Woodhouse, handsome, clever, and rich, seemed to unite some of the best blessings of "
                    "existence.", "following": ["She was the youngest of the two daughters of a most affectionate, "
                                                "indulgent father."]} in list(ordered)
    provenance = (tmp_path / "corpus/PROVENANCE.md").read_text()
    assert "| inaugural | 4 | 1 | 1 |" in provenance and "stsb_test" in provenance
