"""Synonym replacement (SimCSE Table 1, "Synonym replacement: use nltk WordNet", 77.4 STS-B dev), as nlpaug's
WordNet SynonymAug does it for one word: pick a random word that has a WordNet synonym and replace it by one of its
synonyms, chosen at random; a sentence with no such word is left unchanged.

Choices (documented because the paper gives none): one word per sentence, as the issue's table says; a word's
surrounding punctuation is kept ('dog,' -> 'hound,') and its capitalisation carried over (nlpaug's
align_capitalization); only single-word synonyms are used (WordNet's multi-word lemmas such as 'domestic_dog' would
change the word count); the lookup is on all parts of speech (WordNet's morphy handles inflections: 'running' ->
'run'), since no POS tagger is available offline; closed-class words (articles, pronouns, prepositions,
conjunctions), which a POS-tagging nlpaug would never replace, are skipped, so 'a' does not become 'angstrom'.

WordNet is read with NLTK from `nltk_data` (the data directory's `nltk_data/`, NLTK layout), never downloaded at run
time when offline; on a connected machine a missing WordNet is downloaded there once.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from csim.augment.base import Augmentation, split_word
from csim.errors import CsimError

CLOSED_CLASS = frozenset("""
a an the this that these those some any each every either neither no all both few many much several such what which
whose i me my mine myself you your yours yourself yourselves he him his himself she her hers herself it its itself we us
our ours ourselves they them their theirs themselves who whom whoever one ones
of in on at by for with about against between into through during before after above below to from up down out off
over under again further than as until while upon within without toward towards across along among around behind
beside besides beyond despite except inside onto outside since per via
and or but nor so yet if then else because although though whether unless
not very too also just only
""".split())


@lru_cache(maxsize=4)
def load_wordnet(nltk_data: str):
    """The WordNet corpus reader from `<nltk_data>/corpora/wordnet`. NLTK 3.10 refuses corpus paths outside its data
    path and symlinks pointing outside it, so the folder's real path goes into nltk.data.path."""
    import warnings

    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    root = os.path.realpath(nltk_data)
    if root not in nltk.data.path:
        nltk.data.path.insert(0, root)
    with warnings.catch_warnings():  # "multilingual functions are not available": no Open Multilingual WordNet needed
        warnings.simplefilter("ignore", UserWarning)
        return WordNetCorpusReader(nltk.data.find("corpora/wordnet", paths=[root]), None)


@lru_cache(maxsize=200_000)
def synonyms(nltk_data: str, word: str) -> tuple[str, ...]:
    """Single-word WordNet synonyms of `word` (lower case), itself excluded, sorted (so a seeded choice is stable)."""
    wn = load_wordnet(nltk_data)
    w = word.lower()
    names = {lemma.name().lower() for s in wn.synsets(w) for lemma in s.lemmas()}
    return tuple(sorted(n for n in names if n != w and "_" not in n and n.isascii()))


def _align_case(new: str, old: str) -> str:
    if len(old) > 1 and old.isupper():
        return new.upper()
    if old[:1].isupper():
        return new[:1].upper() + new[1:]
    return new


class Synonym(Augmentation):
    def __init__(self, nltk_data: str = "data/nltk_data", views: str = "one"):
        super().__init__(views)
        path = Path(nltk_data)
        if not (path / "corpora" / "wordnet").is_dir():
            _fetch_wordnet(path)
        self.nltk_data = str(path.resolve())

    def augment(self, text, rng, row):
        words = text.split()
        order = list(range(len(words)))
        rng.shuffle(order)  # the first candidate of a random order is uniform over the candidates
        for i in order:
            pre, core, post = split_word(words[i])
            if not core.isalpha() or core.lower() in CLOSED_CLASS:
                continue
            options = synonyms(self.nltk_data, core)
            if options:
                words[i] = pre + _align_case(rng.choice(options), core) + post
                return " ".join(words)
        return text


def _fetch_wordnet(path: Path) -> None:
    """Offline: stop with the fix. Connected: download WordNet into `path` once (NLTK's downloader)."""
    from csim.hub import hub_reachable

    if hub_reachable():
        import nltk

        path.mkdir(parents=True, exist_ok=True)
        if nltk.download("wordnet", download_dir=str(path), quiet=True) and (path / "corpora" / "wordnet").is_dir():
            return
        zipped = path / "corpora" / "wordnet.zip"
        if zipped.exists():
            import zipfile

            with zipfile.ZipFile(zipped) as z:
                z.extractall(path / "corpora")
            return
    raise CsimError(f"WordNet is missing: {path}/corpora/wordnet does not exist (augment.nltk_data={path}), and "
                    f"nothing is downloaded offline. Link the offline data (`make data`, whose nltk_data/ holds "
                    f"WordNet 3.0), set augment.nltk_data to a folder with corpora/wordnet in NLTK's layout, or run "
                    f"once on a connected machine, where it is downloaded there.")
