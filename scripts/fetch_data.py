"""Download csim's data layout (that of the offline copy, ../shared/data) from the Hugging Face hub and NLTK's data
server, for connected machines without the offline copy. `make data` runs it when ../shared/data is absent.

usage: python scripts/fetch_data.py [--out data] [--only NAME[,NAME...]] [--force] [--cache-dir DIR]

Folders (NAME for --only): stsb, sts12-16, sick, snli, wiki1m, wiki1m_head, nltk_data, corpus. An existing folder is
skipped unless --force (then replaced once its new version is complete), so a rerun after a failure fetches only what
is missing. Each folder is written into `.<name>.partial` and renamed when complete, and gets a PROVENANCE.md (hub
datasets and revisions, counts, checksums, differences). Offline it stops at once with one paragraph saying so.

What differs from the offline copy (details: csim/data/fetch/__init__.py and each folder's PROVENANCE.md):
  - stsb/original: rebuilt from mteb/stsbenchmark-sts; 7 columns on every row (the release's 2 extra license columns
    are not on the hub); scores in shortest form ("5", "3.8"). No senteval_tokenized/ variants (stsb, sts12-16):
    they need the Moses tokenizer; evaluations with text=senteval need the offline copy.
  - sts12-16/raw: from mteb/sts12-sts ... mteb/sts16-sts, which do not name the subset of a pair. Pairs are cut into
    subsets by position with the official per-subset counts in SentEval's order, and the cut is cross-checked against
    STS-B (whose rows name their SemEval subset): the PROVENANCE.md says how many shared pairs agree, and a mismatch
    is reported (then only the `all` aggregation, over the concatenation, is right). Only scored pairs (no empty gold
    lines); STS16 inputs have 2 columns.
  - sick/senteval: from SemEvalWorkshop/sem_eval_2014_task_1 (4500 / 500 / 4927); no full/SICK.txt.
  - snli: stanfordnlp/snli validation/test -> dev/test, pairs without a gold label dropped; SNLI's own text (not
    SentEval's tokenized copy).
  - wiki1m/wiki1m_for_simcse.txt (the whole file, not in the offline copy) and wiki1m_head/ (its first 11,915 lines:
    csim drops the last, as it drops the offline head's truncated last line).
  - corpus: rebuilt from today's NLTK corpora by the offline recipe (csim/data/fetch/corpus.py), so its counts
    differ from the offline 262,546 sentences; evaluation sentences are filtered out.
  - mrpc/, senteval_transfer/: not fetched (no hub copy in the release layout; nothing in csim reads them).
"""

from __future__ import annotations

import argparse
import sys

from csim.data.fetch import FOLDERS, NOT_FETCHED, fetch
from csim.errors import CsimError


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    names = [f.name for f in FOLDERS] + list(NOT_FETCHED)
    p = argparse.ArgumentParser(description="Download csim's data layout from the Hugging Face hub and NLTK.")
    p.add_argument("--out", default="data", help="data directory to write (default: data)")
    p.add_argument("--only", type=lambda s: [n.strip() for n in s.split(",") if n.strip()], default=None,
                   help=f"comma-separated folders to fetch: {', '.join(names)} (default: all)")
    p.add_argument("--force", action="store_true", help="replace folders that already exist")
    p.add_argument("--cache-dir", default=None, help="datasets cache (default: the Hugging Face cache)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        written = fetch(args.out, only=args.only, force=args.force, cache_dir=args.cache_dir)
    except CsimError as e:
        print(f"fetch_data: error: {e}", file=sys.stderr, flush=True)
        return 1
    print(f"fetch_data: {'wrote ' + ', '.join(written) if written else 'nothing to fetch'} ({args.out})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
