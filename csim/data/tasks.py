"""The evaluation task registry: a task name maps to a reader `(data_dir, text="official") -> Dataset(s1, s2,
score[, subset])` of the data layout (csim.data.sts). The evaluator (csim.evaluation) and the training data
(csim.data.nli, the MLM corpus filter) both read tasks from here; data never imports evaluation."""

from __future__ import annotations

from functools import partial
from typing import Callable

from csim.data import sts
from csim.errors import CsimError

# text variants: the official release text, or SentEval's lower-cased Moses-tokenized copy (what SentEval-based
# evaluations, SimCSE's included, actually read)
TEXT_VARIANTS = ("official", "senteval")
_STSB_VARIANT = {"official": "original", "senteval": "senteval_tokenized"}
_STS_VARIANT = {"official": "raw", "senteval": "senteval_tokenized"}


def _check_text(text: str) -> None:
    if text not in TEXT_VARIANTS:
        raise CsimError(f"Text variant {text!r}: choose one of {', '.join(TEXT_VARIANTS)}.")


def _stsb(data_dir, split: str, text: str = "official"):
    _check_text(text)
    return sts.read_stsb(data_dir, split, variant=_STSB_VARIANT[text])


def _sts_year(data_dir, year: int, text: str = "official"):
    _check_text(text)
    return sts.read_sts_year(data_dir, year, variant=_STS_VARIANT[text])


def _sickr(data_dir, split: str, text: str = "official"):
    _check_text(text)  # SentEval's SICK copy is the official text: one file serves both variants
    return sts.read_sickr(data_dir, split)


TASKS: dict[str, Callable] = {
    "stsb_train": partial(_stsb, split="train"),
    "stsb_dev": partial(_stsb, split="dev"),
    "stsb_test": partial(_stsb, split="test"),
    **{f"sts{y}": partial(_sts_year, year=y) for y in sorted(sts.STS_SUBSETS)},
    "sickr_test": partial(_sickr, split="test"),
}
# SimCSE Table 5 / SBERT Table 1: STS12-16, STS-B test and SICK-R test, and their average ("Avg.")
SUITE = ("sts12", "sts13", "sts14", "sts15", "sts16", "stsb_test", "sickr_test")
DISPLAY = {"sts12": "STS12", "sts13": "STS13", "sts14": "STS14", "sts15": "STS15", "sts16": "STS16",
           "stsb_test": "STS-B", "sickr_test": "SICK-R", "stsb_dev": "STS-B dev", "stsb_train": "STS-B train"}


def load_task(name: str, data_dir, max_pairs: int | None = None, text: str = "official"):
    if name not in TASKS:
        raise CsimError(f"Unknown evaluation task {name!r} (eval.tasks / eval.test_tasks); available: {', '.join(sorted(TASKS))}.")
    ds = TASKS[name](data_dir, text=text)
    if max_pairs is not None and len(ds) > max_pairs:
        ds = ds.select(range(max_pairs))
    return ds


