"""Download the data directory's layout (that of the offline copy, ../shared/data) from the Hugging Face hub and NLTK's
data server, for machines without the offline copy. `scripts/fetch_data.py` is the command; `make data` runs it when
../shared/data is absent.

Folders, their sources, and what differs from the offline copy (each folder's PROVENANCE.md says it again):
  stsb/original/      mteb/stsbenchmark-sts (genre, dataset, year, sid, score, sentences). 7 columns on every row
                      (the release's license columns are not on the hub); scores in shortest form; no
                      senteval_tokenized/ (it needs the Moses tokenizer; eval text=senteval needs the offline copy).
  sts12-16/raw/       mteb/sts12-sts ... mteb/sts16-sts (test). Subsets from a subset column if the hub has one, else
                      cut by position with the official per-subset counts in SentEval's order and cross-checked
                      against STS-B's subset names; only scored pairs; STS16 inputs have 2 columns.
  sick/senteval/      SemEvalWorkshop/sem_eval_2014_task_1 (train / validation / test = 4500 / 500 / 4927); no
                      full/SICK.txt.
  snli/               stanfordnlp/snli (validation -> dev, test; label -1 dropped); SNLI's own text, not SentEval's
                      tokenized copy.
  wiki1m/, wiki1m_head/  princeton-nlp/datasets-for-simcse wiki1m_for_simcse.txt: the whole file (extra), and its
                      first 11,915 lines (csim drops the last one, as it drops the offline head's truncated line).
  nltk_data/          nltk.download("wordnet"): WordNet 3.0 in NLTK's layout.
  corpus/             NLTK's brown, movie_reviews, gutenberg, reuters, abc, state_union, inaugural, by the offline
                      recipe (csim/data/fetch/corpus.py); today's corpora, so different counts.
  mrpc/, senteval_transfer/  not fetched: no hub copy in the release layout (MRPC's IDs and split, SentEval's
                      files), and nothing in csim reads them.

Every folder is built in a hidden staging folder (`.<name>.partial`) and renamed into place when complete, so a
folder that exists is whole; an existing folder is skipped unless `force`, and then replaced only once its new
version is complete. Each folder gets a PROVENANCE.md (sources, hub revisions, counts, differences, file checksums).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from csim.data.fetch import corpus, hub, pairs, text
from csim.errors import CsimError
from csim.runs.files import write_text_atomic


@dataclass(frozen=True)
class Folder:
    name: str
    needs: str  # "hub" (huggingface.co) or "nltk" (NLTK's data server)
    build: Callable  # (staging folder, Context) -> PROVENANCE.md body


@dataclass(frozen=True)
class Context:
    out: Path
    cache_dir: str | None
    log: Callable[[str], None]


# in build order: corpus/ filters out the evaluation sentences of the folders before it
FOLDERS = (
    Folder("stsb", "hub", pairs.build_stsb),
    Folder("sts12-16", "hub", pairs.build_sts),
    Folder("sick", "hub", pairs.build_sick),
    Folder("snli", "hub", pairs.build_snli),
    Folder("wiki1m", "hub", text.build_wiki1m),
    Folder("wiki1m_head", "hub", text.build_wiki1m_head),
    Folder("nltk_data", "nltk", text.build_nltk_data),
    Folder("corpus", "nltk", corpus.build_corpus),
)
NOT_FETCHED = {
    "mrpc": "no hub copy keeps the release's files (GLUE's MRPC has no sentence IDs and re-splits train into "
            "train/validation); nothing in csim reads mrpc/",
    "senteval_transfer": "SentEval's transfer files (MR, CR, SUBJ, MPQA, SST, TREC) have no hub copy in their release "
                         "layout; nothing in csim reads senteval_transfer/",
}
README = """# Data for csim (downloaded)

Written by scripts/fetch_data.py: the layout of the offline copy (../shared/data), from the Hugging Face hub and NLTK's
data server. Each folder's PROVENANCE.md names its sources, revisions and counts, and what differs from the offline
copy.
"""


def _offline_message(hosts: list[str], out: Path) -> str:
    hint = ""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        hint = (" HF_HUB_OFFLINE is set in the environment (the Makefile sets it for runs), which marks the "
                "hub unreachable: run with HF_HUB_OFFLINE=0 to download.")
    return (f"Cannot download the data: {' and '.join(hosts)} cannot be reached from this machine, and nothing was "
            f"written to {out}.{hint} scripts/fetch_data.py needs the network (the Hugging Face hub for the "
            f"evaluation, NLI and wiki1m data, NLTK's data server for WordNet and the sentence corpus). On a machine "
            f"without it, use the offline copy instead: `make data` links ../shared/data to ./data when it exists, or "
            f"set CSIM_DATA_DIR to a folder with that layout.")


def check_reachable(folders, out: Path) -> None:
    from csim import hub as hub_access

    hosts = []
    if any(f.needs == "hub" for f in folders) and not hub_access.hub_reachable():
        hosts.append("the Hugging Face hub (huggingface.co)")
    if any(f.needs == "nltk" for f in folders) and not hub.host_reachable(hub.nltk_server()):
        hosts.append(f"NLTK's data server ({hub.nltk_server()})")
    if hosts:
        raise CsimError(_offline_message(hosts, out))


def _header(body: str) -> str:
    import datasets
    import nltk

    from csim.runs.files import git_commit

    title, _, rest = body.partition("\n")
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"{title}\n\nDownloaded by scripts/fetch_data.py on {when} (datasets {datasets.__version__}, nltk "
            f"{nltk.__version__}, csim {git_commit()}).\n{rest}")


def build_folder(folder: Folder, ctx: Context, force: bool) -> None:
    """Build one folder in `.<name>.partial`, add its PROVENANCE.md, then move it into place."""
    dest = ctx.out / folder.name
    stage = ctx.out / f".{folder.name}.partial"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        body = folder.build(stage, ctx)
        write_text_atomic(stage / "PROVENANCE.md",
                          _header(body) + "\n## Files (sha256, bytes, lines)\n\n" + hub.file_table(stage))
        os.chmod(stage / "PROVENANCE.md", 0o644)
        if dest.exists():
            if not force:  # appeared while building
                raise CsimError(f"{dest} appeared while it was being fetched; it was left as it is (use --force "
                                f"to replace it).")
            old = ctx.out / f".{folder.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dest, old)
            os.replace(stage, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(stage, dest)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def fetch(out: str | Path = "data", only: list[str] | None = None, force: bool = False,
          cache_dir: str | None = None, log: Callable[[str], None] = print) -> list[str]:
    """Fetch the folders named in `only` (all by default) into `out`; returns the names written. Existing folders are
    skipped unless `force`. Stops before writing anything when a needed server is unreachable; a folder that fails
    later is reported at the end (one CsimError naming each) after the others were fetched."""
    out = Path(out)
    known = [f.name for f in FOLDERS] + list(NOT_FETCHED)
    unknown = [n for n in (only or []) if n not in known]
    if unknown:
        raise CsimError(f"--only {','.join(unknown)}: not a folder of the data layout; choose from {', '.join(known)}.")
    for name in only or NOT_FETCHED:
        if name in NOT_FETCHED:
            log(f"{name}: not fetched ({NOT_FETCHED[name]}). Use the offline copy if you need it.")
    selected = [f for f in FOLDERS if only is None or f.name in only]
    pending = []
    for f in selected:
        if (out / f.name).exists() and not force:
            log(f"{f.name}: {out / f.name} exists, skipped (--force replaces it).")
        else:
            pending.append(f)
    if not pending:
        return []
    check_reachable(pending, out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(out=out, cache_dir=cache_dir, log=log)
    written, failed = [], {}
    for f in pending:
        log(f"{f.name}: fetching ...")
        try:
            build_folder(f, ctx, force)
        except CsimError as e:
            failed[f.name] = str(e)
        except Exception as e:  # noqa: BLE001 - a network or hub error: report it with the others at the end
            failed[f.name] = f"{type(e).__name__}: {str(e)[:300]}"
        else:
            written.append(f.name)
            log(f"{f.name}: written to {out / f.name}")
    if not (out / "README.md").exists():
        write_text_atomic(out / "README.md", README)
        os.chmod(out / "README.md", 0o644)
    if failed:
        raise CsimError(f"Fetched {', '.join(written) or 'nothing'} into {out}, but could not fetch "
                        + "; ".join(f"{n} ({msg})" for n, msg in failed.items())
                        + ". Finished folders are kept and skipped on a rerun, so rerunning the same command retries "
                          "only the missing ones; or use the offline copy of the data for them.")
    return written
