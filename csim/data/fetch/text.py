"""Text folders: SimCSE's wiki1m (whole, and the head slice the offline copy has), and WordNet for synonym
replacement."""

from __future__ import annotations

import shutil
import tempfile
from itertools import islice
from pathlib import Path

from csim.data.fetch import hub
from csim.runs.files import write_lines_atomic

WIKI1M_HUB = "princeton-nlp/datasets-for-simcse"
WIKI1M_FILE = "wiki1m_for_simcse.txt"
# The offline head is 11,914 complete lines plus a truncated one, and csim drops the last line of it
# (data.source.drop_last_line), so the fetched head keeps one more line than it uses: the same 11,914 sentences.
HEAD_LINES = 11_914 + 1
WORDNET_FILES = ("data.noun", "index.noun", "index.sense", "lexnames", "noun.exc")


def _lines(ds):
    for batch in ds.iter(batch_size=10_000):
        yield from (t.replace("\r", "") for t in batch["text"])


def _wiki1m(ctx):
    return hub.load_hub(WIKI1M_HUB, "train", data_files=WIKI1M_FILE, cache_dir=ctx.cache_dir)


def _source(ctx, what: str) -> str:
    return (f"## Source\nhub dataset `{WIKI1M_HUB}` (revision {hub.hub_revision(WIKI1M_HUB)}), file `{WIKI1M_FILE}`, "
            f"read with `datasets` (text builder: one row per line). {what}\n")


def build_wiki1m(stage: Path, ctx) -> str:
    n = write_lines_atomic(stage / WIKI1M_FILE, _lines(_wiki1m(ctx)))
    return (f"# wiki1m_for_simcse.txt (SimCSE's 1M Wikipedia sentences), from the hub\n\n"
            + _source(ctx, f"{n:,} lines (SimCSE's file: 1,000,000).") +
            "\nNot in the offline copy (only its head is, see ../wiki1m_head). License: English Wikipedia text "
            "(CC BY-SA); SimCSE distributes it without a separate statement.\n")


def build_wiki1m_head(stage: Path, ctx) -> str:
    n = write_lines_atomic(stage / "wiki1m_for_simcse.head.txt", islice(_lines(_wiki1m(ctx)), HEAD_LINES))
    return (f"# wiki1m_for_simcse.txt -- head slice, from the hub\n\n"
            + _source(ctx, f"The first {n:,} lines.") +
            "\n## Difference from the offline copy\nThe offline head is a byte slice: 11,914 complete lines and a "
            "truncated 11,915th, which csim's readers drop (`data.source.drop_last_line: true`). Here the 11,915th "
            "line is complete and is dropped the same way, so csim reads the same 11,914 sentences.\n")


def build_nltk_data(stage: Path, ctx) -> str:
    """WordNet 3.0 through NLTK's downloader, in NLTK's layout (`corpora/wordnet/`). It is downloaded into a
    temporary folder and moved, so the staged folder holds nothing but the corpus."""
    with tempfile.TemporaryDirectory(prefix="csim-nltk-") as tmp:
        folder = hub.nltk_download("wordnet", Path(tmp))
        missing = [f for f in WORDNET_FILES if not (folder / f).is_file()]
        if missing:
            from csim.errors import CsimError

            present = sorted(p.name for p in folder.iterdir())
            raise CsimError(f"NLTK's wordnet package lacks {missing} (it has {present}); csim's synonym augmentation "
                            f"reads WordNet 3.0 in NLTK's layout. Use the offline copy (nltk_data/ of ../shared/data).")
        (stage / "corpora").mkdir(parents=True, exist_ok=True)
        shutil.move(str(folder), stage / "corpora" / "wordnet")
    return ("# WordNet 3.0 (synonym-replacement augmentation), from NLTK's data server\n\n## Source\n"
            f"`nltk.download('wordnet')` from {hub.nltk_server()} (NLTK's `wordnet` package: WordNet 3.0, with "
            "`lexnames`), moved to `corpora/wordnet/`. Point csim at it with `augment.nltk_data=<data>/nltk_data` "
            "(the default) or NLTK_DATA.\n\nLicense: WordNet 3.0 license (Princeton University; use, copy, modify and "
            "distribute for any purpose, keeping the copyright notice), shipped as `corpora/wordnet/LICENSE` where "
            "NLTK's package has it.\n")
