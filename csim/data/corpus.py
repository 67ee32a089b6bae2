"""Unlabelled sentence corpora, loaded through `datasets` (local text files and hub files alike, with its cache)."""

from __future__ import annotations

import os
from pathlib import Path

import datasets

from csim.errors import CsimError


def text_lines(data_dir: str, files: str | list[str], cache_dir: str = "cache", hub: dict | None = None,
               drop_last_line: bool = False) -> datasets.Dataset:
    """One sentence per line -> Dataset(text). `files` are relative to the data directory; when they are missing and
    `hub` ({path, data_files}) is given and reachable, the same file comes from the hub instead."""
    from csim.data.paths import check_text_file, data_path
    from csim.hub import hub_reachable

    files = [files] if isinstance(files, str) else list(files)
    local = [Path(data_dir) / f for f in files]
    if hub and not all(p.exists() for p in local) and hub_reachable():
        ds = datasets.load_dataset(hub["path"], data_files=hub.get("data_files"), split="train",
                                   cache_dir=os.path.join(cache_dir, "datasets"))
    else:
        paths = [str(data_path(data_dir, f, "training corpus")) for f in files]
        try:
            ds = datasets.load_dataset("text", data_files=paths, split="train",
                                       cache_dir=os.path.join(cache_dir, "datasets"))
        except Exception:  # datasets wraps what went wrong (empty file, bad UTF-8): say which file and line
            for p in paths:
                check_text_file(p, "training corpus")
            raise
        if drop_last_line and len(ds):
            ds = ds.select(range(len(ds) - 1))
    ds = ds.filter(lambda b: [bool(t and t.strip()) for t in b["text"]], batched=True)
    if len(ds) == 0:
        raise CsimError(f"The training corpus {', '.join(map(str, local))} is empty (no non-blank lines). Point "
                        f"data.source.files at a text file with one sentence per line.")
    return ds
