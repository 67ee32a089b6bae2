"""Supervised sentence-pair training data: NLI (SBERT's classification data, supervised SimCSE's triplets) and STS-B
train pairs with their scores (SBERT's regression data).

NLI comes from one of two places, through `datasets` either way, as (premise, hypothesis, label) with label
0 = entailment, 1 = neutral, 2 = contradiction:
  - the hub (paper scale): SNLI + MultiNLI, e.g. `sentence-transformers/all-nli`, config `pair-class` (942k pairs);
  - the data directory (offline): SNLI dev + test (`snli/s1.*`, `s2.*`, `labels.*`) and SICK train
    (`sick/senteval/SICK_train.txt`, 4,500 pairs; or the TRAIN rows of `sick/full/SICK.txt`, 4,439).
Pairs with a sentence of the `exclude_eval` evaluation sets are dropped (none by default: neither SimCSE nor SBERT
filters its NLI data; the offline scales exclude STS-B dev and test, because STS-B's track5 came from SNLI and SICK
shares captions with STS-B). Sentences are matched after lower-casing and removing everything but letters and
digits, so SNLI's tokenised text matches STS-B's raw text.

form="pairs" gives columns text (premise), text_pos (hypothesis), label. form="triplets" gives supervised SimCSE's
(anchor, positive, hard negative) = (premise, an entailment hypothesis, a contradiction hypothesis) as text,
text_pos, text_neg: each entailment hypothesis of a premise is paired with one of its contradiction hypotheses (the
k-th with the k-th, cycling when there are fewer); premises without both are skipped.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import datasets

from csim.data.sts import read_lines
from csim.errors import CsimError

log = logging.getLogger(__name__)

LABELS = {"entailment": 0, "neutral": 1, "contradiction": 2}
FORMS = ("pairs", "triplets")


def normalise_sentence(sentence: str) -> str:
    return re.sub(r"[^a-z0-9]", "", sentence.lower())


def eval_sentences(data_dir, tasks) -> set[str]:
    """Normalised sentences of evaluation tasks (csim.data.tasks names), to keep out of training data."""
    from csim.data.tasks import load_task

    out: set[str] = set()
    for task in tasks:
        ds = load_task(task, data_dir)
        out.update(normalise_sentence(s) for s in ds["s1"])
        out.update(normalise_sentence(s) for s in ds["s2"])
    out.discard("")
    return out


def read_snli_split(data_dir, split: str) -> dict[str, list]:
    """SentEval's SNLI layout: line-aligned s1.<split>, s2.<split>, labels.<split>."""
    from csim.data.paths import data_path

    files = {k: data_path(data_dir, f"snli/{k}.{split}", f"SNLI {split} file") for k in ("s1", "s2", "labels")}
    cols = {k: read_lines(p) for k, p in files.items()}
    n = len(cols["labels"])
    for k in ("s1", "s2"):
        if len(cols[k]) != n:
            raise CsimError(f"{files[k]} has {len(cols[k])} lines but {files['labels']} has {n}; the three SNLI files "
                            f"of a split must be line-aligned. Restore an unmodified copy of the data.")
    label = []
    for lineno, name in enumerate(cols["labels"], 1):
        if name.strip() not in LABELS:
            raise CsimError(f"{files['labels']}:{lineno}: label {name!r} is not one of {', '.join(LABELS)}; fix or "
                            f"restore this file.")
        label.append(LABELS[name.strip()])
    return {"premise": [s.strip() for s in cols["s1"]], "hypothesis": [s.strip() for s in cols["s2"]], "label": label}


def read_sick_nli(path) -> dict[str, list]:
    """SICK with entailment labels: SentEval's SICK_train.txt (entailment_judgment) or the full SICK.txt
    (entailment_label, only its SemEval_set TRAIN rows)."""
    path = Path(path)
    lines = read_lines(path)
    header = lines[0].split("\t") if lines else []
    label_col = next((c for c in ("entailment_judgment", "entailment_label") if c in header), None)
    if "sentence_A" not in header or "sentence_B" not in header or label_col is None:
        raise CsimError(f"{path}:1: expected a SICK header with sentence_A, sentence_B and entailment_judgment (or "
                        f"entailment_label); point the NLI data at SICK_train.txt or SICK.txt.")
    ia, ib, il = header.index("sentence_A"), header.index("sentence_B"), header.index(label_col)
    iset = header.index("SemEval_set") if "SemEval_set" in header else None
    out = {"premise": [], "hypothesis": [], "label": []}
    for lineno, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) < len(header):
            raise CsimError(f"{path}:{lineno}: expected {len(header)} tab-separated columns, found {len(cols)}.")
        if iset is not None and cols[iset].strip() != "TRAIN":
            continue
        name = cols[il].strip().lower()
        if name not in LABELS:
            raise CsimError(f"{path}:{lineno}: entailment label {cols[il]!r} is not ENTAILMENT, NEUTRAL or "
                            f"CONTRADICTION; fix or restore this file.")
        out["premise"].append(cols[ia].strip())
        out["hypothesis"].append(cols[ib].strip())
        out["label"].append(LABELS[name])
    return out


def _from_hub(hub: dict, cache_dir: str) -> datasets.Dataset:
    """-> Dataset(premise, hypothesis, label) from an NLI pair source, or Dataset(text, text_pos, text_neg) from a
    triplet source (hub.columns maps those names onto the dataset's columns, e.g. SimCSE's nli_for_simcse.csv:
    {text: sent0, text_pos: sent1, text_neg: hard_neg})."""
    columns = dict(hub.get("columns") or {"premise": "premise", "hypothesis": "hypothesis", "label": "label"})
    if set(columns) not in ({"premise", "hypothesis", "label"}, {"text", "text_pos", "text_neg"}):
        raise CsimError(f"data.source.hub.columns={columns}: map either premise, hypothesis and label (NLI pairs) or "
                        f"text, text_pos and text_neg (triplets) onto the hub dataset's columns.")
    try:
        ds = datasets.load_dataset(hub["path"], hub.get("name"), data_files=hub.get("data_files"),
                                   split=hub.get("split", "train"), cache_dir=os.path.join(cache_dir, "datasets"))
    except Exception as e:  # offline, unknown name, ...: one paragraph instead of a network traceback
        raise CsimError(f"Could not load the NLI data {hub['path']!r} (config {hub.get('name')!r}) from the hub or "
                        f"its cache ({type(e).__name__}: {str(e)[:200]}). SNLI + MultiNLI come from the hub at paper "
                        f"scale; offline, use scale=cpu or set data.source.hub=null to train on the SNLI dev/test + "
                        f"SICK train pairs of the data directory.") from None
    missing = [c for c in columns.values() if c not in ds.column_names]
    if missing:
        raise CsimError(f"The hub NLI data {hub['path']!r} has no column(s) {missing} (it has {ds.column_names}); set "
                        f"data.source.hub.columns to map its columns.")
    ds = ds.select_columns(list(columns.values())).rename_columns({v: k for k, v in columns.items() if k != v})
    if "label" in columns:
        ds = ds.filter(lambda b: [lab in (0, 1, 2) for lab in b["label"]], batched=True)  # SNLI's -1: no gold label
    return ds


def _triplets(premise: list[str], hypothesis: list[str], label: list[int]) -> dict[str, list]:
    groups: dict[str, tuple[list[str], list[str]]] = {}
    for p, h, lab in zip(premise, hypothesis, label):
        if lab != 1:
            groups.setdefault(p, ([], []))[0 if lab == 0 else 1].append(h)
    out = {"text": [], "text_pos": [], "text_neg": []}
    for p, (ent, con) in groups.items():
        for k, e in enumerate(ent if con else ()):
            out["text"].append(p)
            out["text_pos"].append(e)
            out["text_neg"].append(con[k % len(con)])
    return out


def nli(data_dir: str, cache_dir: str = "cache", form: str = "pairs", hub: dict | None = None,
        snli_splits: list[str] = ("dev", "test"), sick_file: str | None = "sick/senteval/SICK_train.txt",
        exclude_eval: list[str] = (), shuffle_seed: int | None = 0) -> datasets.Dataset:
    """NLI training data (see the module docstring). hub: {path, name, data_files, split, columns} to load from the
    hub (paper scale), null for the data directory. shuffle_seed: a fixed shuffle, so a capped run
    (data.max_train_examples) reads a sample of every source rather than the first file."""
    if form not in FORMS:
        raise CsimError(f"data.source.form={form!r}: choose pairs (premise, hypothesis, label) or triplets (premise, "
                        f"entailment, contradiction).")
    if hub:
        ds = _from_hub(hub, cache_dir)
        if "text_neg" in ds.column_names and form != "triplets":
            raise CsimError(f"The hub data {hub['path']!r} holds triplets, not labelled pairs; set "
                            f"data.source.form=triplets or point data.source.hub at NLI pairs.")
        cols = ds.to_dict()  # plain lists
    else:
        from csim.data.paths import data_path

        cols = {"premise": [], "hypothesis": [], "label": []}
        parts = [read_snli_split(data_dir, s) for s in snli_splits]
        if sick_file:
            parts.append(read_sick_nli(data_path(data_dir, sick_file, "SICK file")))
        for part in parts:
            for k in cols:
                cols[k].extend(part[k])
        if not cols["label"]:
            raise CsimError("No NLI pairs: data.source.snli_splits and data.source.sick_file are both empty.")
    banned = eval_sentences(data_dir, exclude_eval) if exclude_eval else set()
    texts = [k for k in ("premise", "hypothesis", "text", "text_pos", "text_neg") if k in cols]
    n = len(cols[texts[0]])
    keep = [i for i in range(n)
            if all(isinstance(cols[k][i], str) and cols[k][i].strip() and normalise_sentence(cols[k][i]) not in banned
                   for k in texts)]
    if len(keep) < n:
        log.info("NLI: dropped %d of %d rows with a sentence of %s (or an empty one).", n - len(keep), n,
                 ", ".join(exclude_eval or ()))
    cols = {k: [v[i] for i in keep] for k, v in cols.items()}
    if "text_neg" in cols:
        out = cols
    elif form == "pairs":
        out = {"text": cols["premise"], "text_pos": cols["hypothesis"], "label": cols["label"]}
    else:
        out = _triplets(cols["premise"], cols["hypothesis"], cols["label"])
    if not out["text"]:
        raise CsimError(f"The NLI data has no {form} left after filtering; check data.source.")
    ds = datasets.Dataset.from_dict(out)
    return ds.shuffle(seed=shuffle_seed) if shuffle_seed is not None else ds


def stsb_pairs(data_dir: str, split: str = "train", variant: str = "original",
               both_orders: bool = False) -> datasets.Dataset:
    """STS-B pairs with their gold score as training data (SBERT's regression objective): columns text, text_pos,
    score (0-5), read with csim.data.sts.read_stsb. both_orders: each pair also as (s2, s1), right after (s1, s2), as
    sentence-transformers' cross-encoder STS example trains (a cross-encoder reads the pair in one order)."""
    from csim.data.sts import read_stsb

    ds = read_stsb(data_dir, split, variant)
    if both_orders:
        s1, s2, score = list(ds["s1"]), list(ds["s2"]), list(ds["score"])
        ds = datasets.Dataset.from_dict({"s1": [s for pair in zip(s1, s2) for s in pair],
                                         "s2": [s for pair in zip(s2, s1) for s in pair],
                                         "score": [v for v in score for _ in (0, 1)]})
    return ds.rename_columns({"s1": "text", "s2": "text_pos"})
