"""Sentence-pair folders rebuilt from hub datasets: stsb/, sts12-16/, sick/, snli/ (see csim.data.fetch for what
differs from the offline copy). Each builder writes into a staging folder and returns the body of its PROVENANCE.md."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from csim.data.nli import normalise_sentence
from csim.data.fetch import hub
from csim.data.sts import STS_SUBSETS
from csim.errors import CsimError
from csim.runs.files import write_lines_atomic

STSB_HUB = "mteb/stsbenchmark-sts"
STSB_SPLITS = {"train": "train", "dev": "validation", "test": "test"}  # file name -> hub split
STS_HUB = "mteb/sts{year}-sts"
# pairs with a gold score per subset in the official SemEval releases (the counts SentEval reads), in csim's order
GOLD_COUNTS = {
    12: (750, 750, 459, 750, 399),
    13: (189, 750, 561),
    14: (450, 300, 750, 750, 750, 750),
    15: (375, 750, 375, 750, 750),
    16: (254, 249, 230, 244, 209),
}
SUBSET_COLUMNS = ("subset", "dataset", "source", "file", "filename")  # a column naming the subset, if the hub has one
SICK_HUB = "SemEvalWorkshop/sem_eval_2014_task_1"
SICK_SPLITS = {"SICK_train.txt": "train", "SICK_trial.txt": "validation", "SICK_test_annotated.txt": "test"}
SICK_LABELS = ("NEUTRAL", "ENTAILMENT", "CONTRADICTION")
SNLI_HUB = "stanfordnlp/snli"
SNLI_SPLITS = {"dev": "validation", "test": "test"}
NLI_LABELS = ("entailment", "neutral", "contradiction")


def _need(ds, columns, source: str, split: str) -> dict[str, list]:
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise CsimError(f"The hub dataset {source} (split {split}) has no column(s) {missing}; it has "
                        f"{ds.column_names}. Its layout changed since this fetcher was written: use the offline copy "
                        f"of the data, or update csim/data/fetch/pairs.py to the new columns.")
    return ds.select_columns(list(columns)).to_dict()


def _range(values: list[str], low: float, high: float, where: str) -> None:
    for i, v in enumerate(values, 1):
        if not low <= float(v) <= high:
            raise CsimError(f"{where}, row {i}: score {v} is outside [{low}, {high}]; the hub copy is not the release "
                            f"this layout expects. Use the offline copy of the data.")


def _label_names(ds, column: str, default: tuple[str, ...]) -> list[str]:
    names = getattr(ds.features[column], "names", None)
    return list(names) if names else list(default)


def _sources(rows: list[tuple[str, str, str]]) -> str:
    lines = ["| file(s) | hub dataset | split | revision |", "|---|---|---|---|"]
    revisions: dict[str, str] = {}
    for files, path, split in rows:
        rev = revisions.setdefault(path, hub.hub_revision(path))
        lines.append(f"| {files} | `{path}` | {split} | {rev} |")
    return "\n".join(lines) + "\n"


# --- STS-B ----------------------------------------------------------------------------------------------------------
def stsb_lines(ds, where: str) -> list[str]:
    """The 7 tab-separated columns of the release: genre, file, year, id, score, sentence 1, sentence 2."""
    cols = _need(ds, ("genre", "dataset", "year", "sid", "sentence1", "sentence2"), STSB_HUB, where)
    score = hub.scores(ds, "score")
    _range(score, 0.0, 5.0, where)
    plain = [[re.sub(r"[\t\r\n]", " ", str(v)) for v in cols[c]] for c in ("genre", "dataset", "year")]
    sid = [f"{v:04d}" if isinstance(v, int) else str(v) for v in cols["sid"]]
    s1 = [hub.field(t, f"{where} row {i}") for i, t in enumerate(cols["sentence1"], 1)]
    s2 = [hub.field(t, f"{where} row {i}") for i, t in enumerate(cols["sentence2"], 1)]
    return ["\t".join(row) for row in zip(*plain, sid, score, s1, s2)]


def build_stsb(stage: Path, ctx) -> str:
    counts = {}
    for name, split in STSB_SPLITS.items():
        ds = hub.load_hub(STSB_HUB, split, cache_dir=ctx.cache_dir)
        lines = stsb_lines(ds, f"{STSB_HUB}:{split}")
        counts[name] = write_lines_atomic(stage / "original" / f"sts-{name}.csv", lines)
    return (f"# STS Benchmark (STS-B), rebuilt from the hub\n\n## Source\n"
            + _sources([(f"`original/sts-{n}.csv`", STSB_HUB, s) for n, s in STSB_SPLITS.items()])
            + f"\nPairs: train {counts['train']}, dev {counts['dev']}, test {counts['test']} (release: 5749 / 1500 / "
              f"1379).\n\n## Differences from the release\n"
              f"- Every row has the 7 columns of the release; the 2 license columns that some release rows carry are "
              f"not on the hub (csim reads columns 5-7 only).\n"
              f"- Scores are written in their shortest form (`5`, `3.8`), not the release's `5.000`.\n"
              f"- `senteval_tokenized/` (SentEval's lower-cased Moses-tokenized copy, read with eval text=senteval) "
              f"is not written: it needs the Moses tokenizer; use the offline copy for that variant.\n")


# --- STS12-16 -------------------------------------------------------------------------------------------------------
_norm = normalise_sentence  # the matching of csim.data.nli: lower case, letters and digits only


def stsb_subset_labels(stsb_splits) -> dict[tuple[str, str], tuple[int, str]]:
    """(pair) -> (SemEval year 12..17, subset name) of STS-B's test-set rows (its `year` is '2012test', '2013'...;
    '2012train' rows came from STS12's training data and are left out)."""
    out = {}
    for ds in stsb_splits:
        cols = ds.select_columns(["dataset", "year", "sentence1", "sentence2"]).to_dict()
        for name, year, a, b in zip(cols["dataset"], cols["year"], cols["sentence1"], cols["sentence2"]):
            y = str(year)
            if y[:2] == "20" and y[2:4].isdigit() and "train" not in y:
                out[(_norm(a), _norm(b))] = (int(y[2:4]), str(name))
    return out


def split_year(ds, year: int, labels: dict | None) -> tuple[dict[str, list[int]], str]:
    """Row indices per subset, and how they were assigned (for PROVENANCE.md)."""
    subsets = STS_SUBSETS[year]
    for col in SUBSET_COLUMNS:
        if col in ds.column_names and set(map(str, ds[col])) <= set(subsets):
            groups: dict[str, list[int]] = {s: [] for s in subsets}
            for i, v in enumerate(ds[col]):
                groups[str(v)].append(i)
            absent = [s for s, idx in groups.items() if not idx]
            if absent:
                raise CsimError(f"{STS_HUB.format(year=year)} has no pairs of subset(s) {absent}; csim's STS{year} "
                                f"reader needs all of {', '.join(subsets)}. Use the offline copy of the data.")
            return groups, f"from the hub's `{col}` column"
    counts = GOLD_COUNTS[year]
    if len(ds) != sum(counts):
        raise CsimError(f"{STS_HUB.format(year=year)} (test) has {len(ds)} pairs and no subset column, but the "
                        f"official STS{year} release has {sum(counts)} scored pairs, so its pairs cannot be assigned "
                        f"to the subsets csim reads ({', '.join(subsets)}). Use the offline copy of sts12-16/.")
    groups, start = {}, 0
    for s, n in zip(subsets, counts):
        groups[s], start = list(range(start, start + n)), start + n
    note = (f"by position: the hub has no subset column, so its rows were cut into consecutive blocks of the official "
            f"per-subset counts in SentEval's order ({', '.join(f'{s} {n}' for s, n in zip(subsets, counts))})")
    if labels is None:
        return groups, note + "; not cross-checked (STS-B could not be loaded)"
    where = {i: s for s, idx in groups.items() for i in idx}
    tally: Counter = Counter()
    for i, (a, b) in enumerate(zip(ds["sentence1"], ds["sentence2"])):
        y, name = labels.get((_norm(a), _norm(b)), (None, None))
        if y == year and name in subsets:
            tally["agree" if where[i] == name else "disagree"] += 1
    checked = tally["agree"] + tally["disagree"]
    note += (f"; cross-checked against STS-B, whose rows name their SemEval subset: {tally['agree']} of {checked} "
             f"shared pairs fall in the block of their subset")
    if tally["disagree"]:
        note += (" -- WARNING: the hub's row order is not SentEval's, so per-subset results (the mean / wmean "
                 "aggregations) are wrong for this year; the `all` aggregation, over the concatenation, is unaffected")
    return groups, note


def build_sts(stage: Path, ctx) -> str:
    try:
        labels = stsb_subset_labels([hub.load_hub(STSB_HUB, s, cache_dir=ctx.cache_dir) for s in STSB_SPLITS.values()])
    except Exception as e:  # noqa: BLE001 - the cross-check is optional
        ctx.log(f"sts12-16: STS-B not loaded for the subset cross-check ({type(e).__name__}); continuing without it")
        labels = None
    notes, rows = [], []
    for year in STS_SUBSETS:
        path = STS_HUB.format(year=year)
        ds = hub.load_hub(path, "test", cache_dir=ctx.cache_dir)
        cols = _need(ds, ("sentence1", "sentence2"), path, "test")
        score = hub.scores(ds, "score")
        _range(score, 0.0, 5.0, f"{path}:test")
        groups, how = split_year(ds, year, labels)
        if "WARNING" in how:
            ctx.log(f"sts12-16: STS{year}: {how.split(' -- ')[1]}")
        folder = stage / "raw" / f"STS{year}-en-test"
        for subset, idx in groups.items():
            pairs = [f"{hub.field(cols['sentence1'][i], f'{path} row {i + 1}')}\t"
                     f"{hub.field(cols['sentence2'][i], f'{path} row {i + 1}')}" for i in idx]
            write_lines_atomic(folder / f"STS.input.{subset}.txt", pairs)
            write_lines_atomic(folder / f"STS.gs.{subset}.txt", [score[i] for i in idx])
        notes.append(f"- STS{year}: {len(ds)} pairs; subsets {how}.")
        rows.append((f"`raw/STS{year}-en-test/`", path, "test"))
    return ("# STS12-STS16 (SemEval English STS test sets), rebuilt from the hub\n\n## Source\n" + _sources(rows)
            + "\n## How subsets were assigned\n" + "\n".join(notes) + "\n\n## Differences from the official files\n"
              "- Only pairs with a gold score are on the hub, so `STS.input.*` and `STS.gs.*` have no unscored lines "
              "(the official STS15/16 files have empty gold lines for them; csim skips those anyway).\n"
              "- STS16 inputs have 2 columns (the two source columns of the release are not on the hub); scores are "
              "written in their shortest form. The release readmes / licenses are not included.\n"
              "- `senteval_tokenized/` (SentEval's tokenized copy, eval text=senteval) is not written; use the offline "
              "copy for that variant.\n")


# --- SICK -----------------------------------------------------------------------------------------------------------
def sick_lines(ds, where: str) -> list[str]:
    cols = _need(ds, ("sentence_pair_id", "premise", "hypothesis", "entailment_judgment"), SICK_HUB, where)
    score = hub.scores(ds, "relatedness_score")
    _range(score, 1.0, 5.0, where)
    names = _label_names(ds, "entailment_judgment", SICK_LABELS)
    out = ["pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment"]
    for i, (pid, a, b, lab, s) in enumerate(zip(cols["sentence_pair_id"], cols["premise"], cols["hypothesis"],
                                                cols["entailment_judgment"], score), 1):
        label = (names[lab] if isinstance(lab, int) else str(lab)).upper()
        if label not in SICK_LABELS:
            raise CsimError(f"{where}, row {i}: entailment label {lab!r} is not one of {', '.join(SICK_LABELS)}.")
        out.append(f"{pid}\t{hub.field(a, f'{where} row {i}')}\t{hub.field(b, f'{where} row {i}')}\t{s}\t{label}")
    return out


def build_sick(stage: Path, ctx) -> str:
    counts = {}
    for name, split in SICK_SPLITS.items():
        ds = hub.load_hub(SICK_HUB, split, cache_dir=ctx.cache_dir)
        counts[name] = write_lines_atomic(stage / "senteval" / name, sick_lines(ds, f"{SICK_HUB}:{split}")) - 1
    return ("# SICK (SemEval-2014 Task 1 split, as SentEval reads it), rebuilt from the hub\n\n## Source\n"
            + _sources([(f"`senteval/{n}`", SICK_HUB, s) for n, s in SICK_SPLITS.items()])
            + "\nPairs: " + ", ".join(f"{n} {c}" for n, c in counts.items()) + " (release: 4500 / 500 / 4927).\n\n"
              "## Differences from the offline copy\n- `full/SICK.txt` (the 9,840-pair full release with its "
              "SemEval_set column) is not written; csim's defaults read `senteval/` only.\n")


# --- SNLI -----------------------------------------------------------------------------------------------------------
def snli_columns(ds, where: str) -> tuple[list[str], list[str], list[str], int]:
    """(premises, hypotheses, label words, number of pairs dropped for having no gold label)."""
    cols = _need(ds, ("premise", "hypothesis", "label"), SNLI_HUB, where)
    names = _label_names(ds, "label", NLI_LABELS)
    s1, s2, labels, dropped = [], [], [], 0
    for i, (a, b, lab) in enumerate(zip(cols["premise"], cols["hypothesis"], cols["label"]), 1):
        if not isinstance(lab, int) or not 0 <= lab < len(names):  # -1: the annotators did not agree
            dropped += 1
            continue
        s1.append(hub.field(a, f"{where} row {i}"))
        s2.append(hub.field(b, f"{where} row {i}"))
        labels.append(names[lab])
    return s1, s2, labels, dropped


def build_snli(stage: Path, ctx) -> str:
    lines = []
    for name, split in SNLI_SPLITS.items():
        ds = hub.load_hub(SNLI_HUB, split, cache_dir=ctx.cache_dir)
        s1, s2, labels, dropped = snli_columns(ds, f"{SNLI_HUB}:{split}")
        for prefix, values in (("s1", s1), ("s2", s2), ("labels", labels)):
            write_lines_atomic(stage / f"{prefix}.{name}", values)
        c = Counter(labels)
        lines.append(f"| {name} | {len(labels)} | {c['entailment']} | {c['neutral']} | {c['contradiction']} | "
                     f"{dropped} |")
    return ("# SNLI 1.0 dev + test, rebuilt from the hub\n\n## Source\n"
            + _sources([(f"`s1.{n}`, `s2.{n}`, `labels.{n}`", SNLI_HUB, s) for n, s in SNLI_SPLITS.items()])
            + "\n| split | pairs | entailment | neutral | contradiction | dropped (no gold label) |\n"
              "|---|---|---|---|---|---|\n"
            + "\n".join(lines) + "\n\n(Offline copy: dev 9842, test 9824.)\n\n## Differences from the offline copy\n"
              "- The sentences are SNLI's own text, not SentEval's PTB-tokenized copy (csim normalises sentences "
              "before matching, so the STS-B overlap filter works the same).\n"
              "- SNLI train (550k pairs) is not written, as offline; paper-scale NLI comes from the hub directly.\n")
