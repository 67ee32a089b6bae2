"""Ordered corpora for the next-sentence objectives (SimCSE Table 2): every sentence with the sentences that follow it
in its document.

Rows: {"text": a sentence, "following": the next `window` sentences of the same document, in order}; a sentence
with nothing after it (the end of a document) has no positive and is left out. Offline the documents are the data
directory's `corpus/by_source/*.txt` (one sentence per line in document order; a blank line, if any, ends a
document; wiki1m has no order). Connected, `hub` names a Wikipedia dump with whole articles (e.g.
wikimedia/wikipedia 20231101.en), streamed in order and split into sentences with NLTK's Punkt (its default
parameters: no model download); a line without final punctuation (a heading, a list item) ends a run of sentences,
so a positive never crosses a heading.

The rows are written once to an Arrow file in the datasets cache (Dataset.from_generator with a fingerprint of the
files' names, sizes and times and the settings), then shuffled with `shuffle_seed`: the pairs are already formed, and
a shuffled order makes a prefix (data.max_train_examples) a sample of every source, not the first file.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from typing import Iterable, Iterator

import datasets

from csim.errors import CsimError

FEATURES = datasets.Features({"text": datasets.Value("string"), "following": [datasets.Value("string")]})


def rows_from_documents(documents: Iterable[list[str]], window: int) -> Iterator[dict]:
    """Each sentence of each document with its next `window` sentences (sentences with none are skipped)."""
    for doc in documents:
        for j, sentence in enumerate(doc):
            following = doc[j + 1 : j + 1 + window]
            if following:
                yield {"text": sentence, "following": following}


def file_documents(path: str) -> Iterator[list[str]]:
    """One sentence per line; a blank line ends a document."""
    doc: list[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                doc.append(line)
            elif doc:
                yield doc
                doc = []
    if doc:
        yield doc


def article_documents(texts: Iterable[str], max_sentences: int | None = None) -> Iterator[list[str]]:
    """Whole articles -> runs of consecutive sentences (split at lines without final punctuation)."""
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    punkt = PunktSentenceTokenizer()
    total = 0
    for text in texts:
        run: list[str] = []
        for para in text.split("\n"):
            para = para.strip()
            if para and para[-1] in ".!?\"')":
                run.extend(s.strip() for s in punkt.tokenize(para) if s.strip())
            elif run:
                yield run
                total += len(run)
                run = []
        if run:
            yield run
            total += len(run)
        if max_sentences is not None and total >= max_sentences:
            return


def _generate(files: tuple[str, ...], window: int, hub: dict | None, cache_dir: str) -> Iterator[dict]:
    if hub:
        stream = datasets.load_dataset(hub["path"], hub.get("name"), split=hub.get("split", "train"), streaming=True,
                                       cache_dir=os.path.join(cache_dir, "datasets"))
        texts = (row[hub.get("text_column", "text")] for row in stream)
        limit = hub.get("max_sentences")
        produced = 0
        for row in rows_from_documents(article_documents(texts, limit), window):
            yield row
            produced += 1
            if limit is not None and produced >= limit:
                return
    else:
        for path in files:
            yield from rows_from_documents(file_documents(path), window)


def _expand(data_dir: str, files: str | list[str]) -> list[str]:
    from csim.data.paths import data_path

    out: list[str] = []
    for pattern in [files] if isinstance(files, str) else list(files):
        full = pattern if os.path.isabs(pattern) else os.path.join(data_dir, pattern)
        if not glob.has_magic(pattern):
            out.append(str(data_path(data_dir, pattern, "ordered corpus")))
            continue
        matches = sorted(glob.glob(full))
        if not matches:
            if os.path.dirname(pattern):  # a missing folder gets the data directory's message (how to get it)
                data_path(data_dir, os.path.dirname(pattern), "ordered corpus folder")
            raise CsimError(f"No file of the ordered corpus matches {full} (data.source.files). Give text files "
                            f"with one sentence per line in document order, e.g. corpus/by_source/*.txt of the data "
                            f"directory.")
        out.extend(matches)
    return out


def ordered_sentences(data_dir: str, files: str | list[str] = "corpus/by_source/*.txt", window: int = 3,
                      cache_dir: str = "cache", hub: dict | None = None,
                      shuffle_seed: int | None = 42) -> datasets.Dataset:
    """-> Dataset(text, following). `files`: paths or glob patterns relative to the data directory. `hub`
    ({path, name, split, text_column, max_sentences}): a dump of whole articles, used when the hub is reachable."""
    from csim.hub import hub_reachable

    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise CsimError(f"data.source.window={window!r} must be a whole number >= 1 (how many following sentences "
                        f"each row keeps; next3_sentences needs 3).")
    hub = dict(hub) if hub else None
    if hub and not hub_reachable():
        print(f"[csim] {hub['path']} (hub) is unreachable; the ordered corpus comes from the local files {files}.",
              flush=True)
        hub = None
    paths = () if hub else tuple(_expand(data_dir, files))
    stamp = json.dumps([hub, [(p, os.path.getsize(p), os.stat(p).st_mtime_ns) for p in paths], window], default=str)
    fingerprint = "ordered-" + hashlib.sha256(stamp.encode()).hexdigest()[:16]
    ds = datasets.Dataset.from_generator(
        _generate, features=FEATURES, cache_dir=os.path.join(cache_dir, "datasets"), fingerprint=fingerprint,
        gen_kwargs={"files": paths, "window": window, "hub": hub, "cache_dir": cache_dir})
    if len(ds) == 0:
        where = hub["path"] if hub else ", ".join(map(str, paths))
        raise CsimError(f"The ordered corpus {where} has no sentence followed by another one in the same document "
                        f"(data.source.files); next-sentence objectives need documents of at least two sentences.")
    if shuffle_seed is not None:
        ds = ds.shuffle(seed=int(shuffle_seed))
    return ds
