"""STS readers. Every reader returns a `datasets.Dataset` with columns s1, s2, score.

STS-B as released is tab-separated with no csv quoting (quotes are literal) and 7 columns, some rows 9 (two extra
license columns); column 5 is the gold score in [0, 5], columns 6 and 7 the sentences.
"""

from __future__ import annotations

from pathlib import Path

import datasets

from csim.errors import CsimError


def _bad(path: Path, lineno: int, what: str) -> CsimError:
    return CsimError(
        f"{path}:{lineno}: {what}. Each STS-B row must have 7 (or 9) tab-separated columns with the gold score "
        f"(0-5) in column 5 and the two sentences in columns 6 and 7; fix or remove this line, or point "
        f"paths.data_dir at an unmodified copy of the data."
    )


def read_stsb_file(path: str | Path, low: float = 0.0, high: float = 5.0) -> datasets.Dataset:
    path = Path(path)
    s1, s2, score = [], [], []
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
    return datasets.Dataset.from_dict({"s1": s1, "s2": s2, "score": score})


def read_stsb(data_dir: str | Path, split: str, variant: str = "original") -> datasets.Dataset:
    """STS-B split ('train' | 'dev' | 'test') from `<data_dir>/stsb/<variant>/sts-<split>.csv`."""
    from csim.config import data_path

    return read_stsb_file(data_path(data_dir, f"stsb/{variant}/sts-{split}.csv", f"STS-B {split} file"))
