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


def sentence_pairs(data_dir: str, files: str | list[str], cache_dir: str = "cache", random_next: float = 0.5,
                   seed: int = 42) -> datasets.Dataset:
    """BERT's pretraining input (Devlin et al. 2019, §3.1 Task #2): from files of sentences in document order, pairs
    (text, text_b) where text_b is the next line (next_sentence_label 0, "IsNext") or, with probability
    `random_next`, a random line of the corpus (label 1, "NotNext"). A pair never spans two files; the draw is fixed
    by `seed`. Used with module.next_sentence (csim/modules/mlm.py)."""
    import numpy as np

    files = [files] if isinstance(files, str) else list(files)
    if not 0.0 <= random_next <= 1.0:
        raise CsimError(f"data.source.random_next={random_next}: the share of random second sentences must be in "
                        f"[0, 1] (BERT: 0.5).")
    per_file = [text_lines(data_dir, f, cache_dir)["text"] for f in files]
    everything = [t for lines in per_file for t in lines]
    rng = np.random.default_rng(seed)
    a, b, label = [], [], []
    for lines in per_file:
        n = len(lines) - 1
        if n <= 0:
            continue
        draw = rng.random(n) < random_next
        other = rng.integers(0, len(everything), n)
        for i in range(n):
            a.append(lines[i])
            b.append(everything[other[i]] if draw[i] else lines[i + 1])
            label.append(int(draw[i]))
    return datasets.Dataset.from_dict({"text": a, "text_b": b, "next_sentence_label": label})
