"""STS readers. Every reader returns a `datasets.Dataset` with columns s1, s2, score (STS12-16 also `subset`).

STS-B as released is tab-separated with no csv quoting (quotes are literal) and 7 columns, some rows 9 (two extra
license columns); column 5 is the gold score in [0, 5], columns 6 and 7 the sentences.
STS12-16 (SemEval): per subset, `STS.input.<subset>.txt` (s1 TAB s2; STS16 adds two source columns) aligned with
`STS.gs.<subset>.txt` (score, or an empty line for an unscored pair). SICK-R: SentEval's SemEval-2014 files.
"""

from __future__ import annotations

from pathlib import Path

import datasets

from csim.data.paths import check_text_file
from csim.errors import CsimError


def _datasets():
    """`datasets`, imported on first use (it takes seconds; `csim eval --help` needs the task names only)."""
    import datasets

    return datasets


def _bad(path: Path, lineno: int, what: str) -> CsimError:
    return CsimError(
        f"{path}:{lineno}: {what}. Each STS-B row must have 7 (or 9) tab-separated columns with the gold score "
        f"(0-5) in column 5 and the two sentences in columns 6 and 7; fix or remove this line, or point "
        f"paths.data_dir at an unmodified copy of the data."
    )


def read_stsb_file(path: str | Path, low: float = 0.0, high: float = 5.0) -> datasets.Dataset:
    path = Path(path)
    s1, s2, score = [], [], []
    check_text_file(path, "STS-B file")
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                continue
            cols = line.split("\t")
            if len(cols) not in (7, 9):
                raise _bad(path, lineno, f"expected 7 or 9 tab-separated columns, found {len(cols)}")
            try:
                value = float(cols[4])
            except ValueError:
                raise _bad(path, lineno, f"the score column holds {cols[4]!r}, not a number") from None
            if not (low <= value <= high):
                raise _bad(path, lineno, f"score {value} is outside [{low}, {high}]")
            if not cols[5].strip() or not cols[6].strip():
                raise _bad(path, lineno, "a sentence column is empty")
            s1.append(cols[5])
            s2.append(cols[6])
            score.append(value)
    if not score:
        raise CsimError(f"{path}: no STS pairs found (the file is empty). Point paths.data_dir at a complete copy.")
    return _datasets().Dataset.from_dict({"s1": s1, "s2": s2, "score": score})


def read_stsb(data_dir: str | Path, split: str, variant: str = "original") -> datasets.Dataset:
    """STS-B split ('train' | 'dev' | 'test') from `<data_dir>/stsb/<variant>/sts-<split>.csv`."""
    from csim.data.paths import data_path

    return read_stsb_file(data_path(data_dir, f"stsb/{variant}/sts-{split}.csv", f"STS-B {split} file"))


# --- STS12-16 (SemEval English test sets) and SICK-R -----------------------------------------------------------------
# The subsets SentEval (and so SimCSE and SBERT) read for each year; STS13's SMT subset is LDC-licensed and absent.
STS_SUBSETS: dict[int, tuple[str, ...]] = {
    12: ("MSRpar", "MSRvid", "SMTeuroparl", "surprise.OnWN", "surprise.SMTnews"),
    13: ("FNWN", "headlines", "OnWN"),
    14: ("deft-forum", "deft-news", "headlines", "images", "OnWN", "tweet-news"),
    15: ("answers-forums", "answers-students", "belief", "headlines", "images"),
    16: ("answer-answer", "headlines", "plagiarism", "postediting", "question-question"),
}
# text variant -> folder of the data directory: the official release files, or SentEval's lower-cased Moses-tokenized copy
STS_VARIANTS = {"raw": "raw", "senteval_tokenized": "senteval_tokenized"}


def read_lines(path: Path) -> list[str]:
    """Lines split on "\\n" only (str.splitlines would also split on form feeds and U+2028 inside sentences)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        check_text_file(path, "STS file")  # raises, naming the line
        raise
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln.rstrip("\r") for ln in lines]


def read_sts_subset(input_path: str | Path, gold_path: str | Path, subset: str = "") -> datasets.Dataset:
    """One SemEval STS subset: `STS.input.<subset>.txt` (tab-separated s1, s2[, source1, source2]) aligned line by line
    with `STS.gs.<subset>.txt` (a score in [0, 5], or an empty line for a pair without gold, which is skipped as
    SentEval does). -> Dataset(s1, s2, score, subset)."""
    input_path, gold_path = Path(input_path), Path(gold_path)
    inputs, gold = read_lines(input_path), read_lines(gold_path)
    if len(inputs) != len(gold):
        raise CsimError(f"{gold_path}: {len(gold)} lines, but {input_path} has {len(inputs)}; the gold file must have "
                        f"one line (a score, or empty for an unscored pair) per input pair. Point paths.data_dir at "
                        f"an unmodified copy of the SemEval STS files.")
    s1, s2, score = [], [], []
    for lineno, (pair, g) in enumerate(zip(inputs, gold), 1):
        if not g.strip():
            continue
        try:
            value = float(g)
        except ValueError:
            raise CsimError(f"{gold_path}:{lineno}: the gold score {g!r} is not a number; each line of an STS gold "
                            f"file is a score in [0, 5] or empty. Fix or restore this file.") from None
        if not (0.0 <= value <= 5.0):
            raise CsimError(f"{gold_path}:{lineno}: score {value} is outside [0, 5]; restore an unmodified copy.")
        cols = pair.split("\t")
        if len(cols) < 2 or not cols[0].strip() or not cols[1].strip():
            raise CsimError(f"{input_path}:{lineno}: expected two tab-separated sentences (STS16: four columns, the "
                            f"sentences first), found {len(cols)} column(s) or an empty sentence; fix or restore "
                            f"this file.")
        s1.append(cols[0])
        s2.append(cols[1])
        score.append(value)
    return _datasets().Dataset.from_dict({"s1": s1, "s2": s2, "score": score, "subset": [subset] * len(score)})


def read_sts_year(data_dir: str | Path, year: int, variant: str = "raw") -> datasets.Dataset:
    """STS12..STS16 ('year' 12..16): every subset of `<data_dir>/sts12-16/<variant>/STS<year>-en-test/`, concatenated
    in SentEval's order, with a `subset` column (what the mean / wmean aggregations group by)."""
    from csim.data.paths import data_path

    if year not in STS_SUBSETS:
        raise CsimError(f"STS{year} is not one of the SemEval STS years csim reads (12, 13, 14, 15, 16).")
    if variant not in STS_VARIANTS:
        raise CsimError(f"STS text variant {variant!r}: choose one of {', '.join(STS_VARIANTS)}.")
    folder = f"sts12-16/{STS_VARIANTS[variant]}/STS{year}-en-test"
    parts = [read_sts_subset(data_path(data_dir, f"{folder}/STS.input.{s}.txt", f"STS{year} {s} input file"),
                             data_path(data_dir, f"{folder}/STS.gs.{s}.txt", f"STS{year} {s} gold file"), s)
             for s in STS_SUBSETS[year]]
    return _datasets().concatenate_datasets(parts)


SICK_FILES = {"train": "SICK_train.txt", "trial": "SICK_trial.txt", "test": "SICK_test_annotated.txt"}


def read_sick_file(path: str | Path) -> datasets.Dataset:
    """SemEval-2014 SICK file (SentEval's SICK-R/SICK-E split): a header, then tab-separated pair_ID, sentence_A,
    sentence_B, relatedness_score (1-5), entailment_judgment. -> Dataset(s1, s2, score)."""
    path = Path(path)
    lines = read_lines(path)
    if not lines or lines[0].split("\t")[:4] != ["pair_ID", "sentence_A", "sentence_B", "relatedness_score"]:
        raise CsimError(f"{path}:1: expected the SICK header 'pair_ID<TAB>sentence_A<TAB>sentence_B<TAB>"
                        f"relatedness_score<TAB>entailment_judgment'; point paths.data_dir at an unmodified copy.")
    s1, s2, score = [], [], []
    for lineno, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) < 4:
            raise CsimError(f"{path}:{lineno}: expected 5 tab-separated columns, found {len(cols)}; fix or remove "
                            f"this line.")
        try:
            value = float(cols[3])
        except ValueError:
            raise CsimError(f"{path}:{lineno}: relatedness_score {cols[3]!r} is not a number.") from None
        if not (1.0 <= value <= 5.0):
            raise CsimError(f"{path}:{lineno}: relatedness_score {value} is outside [1, 5].")
        s1.append(cols[1])
        s2.append(cols[2])
        score.append(value)
    return _datasets().Dataset.from_dict({"s1": s1, "s2": s2, "score": score})


def read_sickr(data_dir: str | Path, split: str = "test") -> datasets.Dataset:
    """SICK-R ('train' 4500 | 'trial' 500 | 'test' 4927 pairs) from `<data_dir>/sick/senteval/`: the split SentEval,
    SimCSE and SBERT report (SICK.txt's SemEval_set TEST has 4906 pairs, not the 4927 of the SemEval-2014 release).
    SentEval's copy is not tokenized, so both text variants read it."""
    from csim.data.paths import data_path

    if split not in SICK_FILES:
        raise CsimError(f"SICK split {split!r}: choose one of {', '.join(SICK_FILES)}.")
    return read_sick_file(data_path(data_dir, f"sick/senteval/{SICK_FILES[split]}", f"SICK {split} file"))
