"""corpus/: the offline English sentence corpus, rebuilt from NLTK's corpora by the recipe its PROVENANCE.md documents.

The offline copy was built from the 2008 snapshot of NLTK's corpora (nltk/nltk git history) by a one-off script
(corpus/build_sentences.py of the offline data). This module re-implements that documented recipe on the corpora
NLTK's downloader serves today:
  - brown: tagged `word/tag` lines, one sentence per line -> tags stripped, Treebank-detokenized;
  - movie_reviews: one tokenized lower-cased sentence per line -> detokenized (stays lower case);
  - gutenberg, reuters (headline line dropped, paragraphs start at indented lines), abc, state_union, inaugural:
    raw text, blank-line paragraphs -> Punkt trained unsupervised on each corpus itself (no model download);
  - filter: 5-80 whitespace words, >= 60% letters among non-space characters, not all capitals; exact dedupe across
    sources in the order above; `sentences_shuffled.txt` = all of them shuffled with random.Random(42).
Differences, by necessity or on purpose (also written to the folder's PROVENANCE.md):
  - today's gutenberg has more texts than the 2008 snapshot; bible-kjv.txt (absent from that snapshot) is left out;
    webtext, which the one-off script also read, is not used (the offline PROVENANCE.md drops it: chat-style lines);
  - files are decoded as UTF-8 when they are valid UTF-8, else Latin-1 (the 2008 build read all as Latin-1, which
    turns UTF-8 files such as abc/rural.txt into mojibake);
  - sentences of the evaluation sets already in the output folder (STS-B, STS12-16, SICK-R) are dropped, matched as
    csim.data.nli matches them; the offline copy was only verified to have no exact overlap.
So the counts differ from the offline copy's 262,546 sentences.
"""

from __future__ import annotations

import random
import re
import tempfile
from functools import lru_cache
from pathlib import Path

from csim.data.fetch import hub
from csim.runs.files import write_lines_atomic

SOURCES = ("brown", "movie_reviews", "gutenberg", "reuters", "abc", "state_union", "inaugural")
GUTENBERG_LEFT_OUT = {"bible-kjv.txt"}
EVAL_TASKS = ("stsb_train", "stsb_dev", "stsb_test", "sts12", "sts13", "sts14", "sts15", "sts16", "sickr_test")
SHUFFLE_SEED = 42
RECIPE = (__doc__ or "").split("\n", 2)[-1].strip()  # the docstring below its title: recipe and differences


def read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def squash(text: str) -> str:
    return " ".join(text.split())


def keep(sentence: str) -> bool:
    words = sentence.split()
    if not 5 <= len(words) <= 80 or sentence.isupper():
        return False
    return sum(c.isalpha() for c in sentence) >= 0.6 * len("".join(words))


@lru_cache(maxsize=1)
def _detokenizer():
    from nltk.tokenize.treebank import TreebankWordDetokenizer

    return TreebankWordDetokenizer()


def detokenize(tokens: list[str]) -> str:
    return _detokenizer().detokenize(['"' if t in ("``", "''") else t for t in tokens])


def paragraphs(text: str) -> list[str]:
    return [p for p in (squash(b) for b in re.split(r"\n\s*\n", text)) if p]


def punkt_sentences(paras: list[str]) -> list[str]:
    """Punkt trained (unsupervised, all collocations) on the corpus's own paragraphs, then applied to each."""
    from nltk.tokenize.punkt import PunktSentenceTokenizer, PunktTrainer

    trainer = PunktTrainer()
    trainer.INCLUDE_ALL_COLLOCS = True
    trainer.train("\n\n".join(paras), finalize=True)
    tokenizer = PunktSentenceTokenizer(trainer.get_params())
    return [s for p in paras for s in tokenizer.tokenize(p)]


def _txt(folder: Path, left_out=frozenset()) -> list[Path]:
    return sorted(p for p in folder.glob("*.txt") if p.name not in left_out)


def source_sentences(name: str, folder: Path) -> list[str]:
    """The raw sentences of one NLTK corpus folder (`corpora/<name>/`), before filtering."""
    if name == "brown":
        files = sorted(p for p in folder.iterdir() if re.fullmatch(r"c[a-r]\d\d", p.name))
        return [detokenize([t.rsplit("/", 1)[0] for t in line.split()])
                for p in files for line in read_text(p).splitlines() if line.strip()]
    if name == "movie_reviews":
        return [detokenize(line.split()) for label in ("pos", "neg") for p in _txt(folder / label)
                for line in read_text(p).splitlines() if line.strip()]
    if name == "reuters":
        paras = []
        for part in ("training", "test"):
            for p in sorted((q for q in (folder / part).iterdir() if q.name.isdigit()), key=lambda q: int(q.name)):
                body = "\n".join(read_text(p).splitlines()[1:])  # the first line is the all-caps headline
                paras += [q for q in (squash(b) for b in re.split(r"\n(?=\s{4,})", body)) if q]
        return punkt_sentences(paras)
    if name == "abc":
        files = [folder / "rural.txt", folder / "science.txt"]
    else:  # gutenberg, state_union, inaugural
        files = _txt(folder, GUTENBERG_LEFT_OUT if name == "gutenberg" else frozenset())
    return punkt_sentences([q for p in files for q in paragraphs(read_text(p))])


def select(raw: dict[str, list[str]], banned: set[str]) -> tuple[dict[str, list[str]], list[tuple]]:
    """Filter, dedupe across sources (first source wins) and drop evaluation sentences -> kept per source, stats."""
    seen: set[str] = set()
    kept: dict[str, list[str]] = {}
    stats = []
    for name, sentences in raw.items():
        out, dropped = [], 0
        for s in map(squash, sentences):
            if not keep(s) or s in seen:
                continue
            seen.add(s)
            if re.sub(r"[^a-z0-9]", "", s.lower()) in banned:
                dropped += 1
                continue
            out.append(s)
        kept[name] = out
        stats.append((name, len(sentences), len(out), dropped))
    return kept, stats


def eval_sentences_present(out: Path, log) -> tuple[set[str], list[str]]:
    """Normalised sentences of the evaluation sets whose files are already in `out`."""
    from csim.data.nli import eval_sentences
    from csim.errors import CsimError

    banned, used = set(), []
    for task in EVAL_TASKS:
        try:
            banned |= eval_sentences(out, [task])
            used.append(task)
        except CsimError:
            log(f"corpus: {task} is not in {out}; its sentences are not filtered out of the corpus")
    return banned, used


def build_corpus(stage: Path, ctx) -> str:
    banned, used = eval_sentences_present(ctx.out, ctx.log)
    raw = {}
    with tempfile.TemporaryDirectory(prefix="csim-nltk-") as tmp:
        for name in SOURCES:
            ctx.log(f"corpus: {name} (download, then sentence splitting)")
            raw[name] = source_sentences(name, hub.nltk_download(name, Path(tmp)))
    kept, stats = select(raw, banned)
    for name, sentences in kept.items():
        write_lines_atomic(stage / "by_source" / f"{name}.txt", sentences)
    everything = [s for name in SOURCES for s in kept[name]]
    random.Random(SHUFFLE_SEED).shuffle(everything)
    write_lines_atomic(stage / "sentences_shuffled.txt", everything)
    table = "\n".join(f"| {n} | {r:,} | {k:,} | {d:,} |" for n, r, k, d in stats)
    return ("# English sentence corpus (offline stand-in for wiki1m), rebuilt from NLTK's corpora\n\n## Source\n"
            f"NLTK's downloader ({hub.nltk_server()}): packages {', '.join(SOURCES)}. Built by "
            f"csim/data/fetch/corpus.py:\n\n```\n{RECIPE}\n```\n\n"
            "| source | raw sentences | kept | dropped as evaluation sentences |\n"
            f"|---|---|---|---|\n{table}\n| **total** | | **{len(everything):,}** | |\n\n"
            f"Evaluation sentences filtered out (normalised match, as csim.data.nli): {', '.join(used) or 'none'}.\n"
            "The offline copy has 262,546 sentences; these counts differ because the corpora differ.\n\n"
            "Files: `sentences_shuffled.txt` (all, shuffled with seed 42), `by_source/<name>.txt` (per source, in "
            "document order).\n\n## License (as the corpora state)\nbrown: redistribution permitted; gutenberg: public "
            "domain texts; reuters: research use only; movie_reviews: distributed with NLTK with the authors' "
            "permission; abc: no terms stated; state_union / inaugural: public domain addresses.\n")
