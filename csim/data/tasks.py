"""The evaluation task registry: a task name maps to a reader `(data_dir, text="official") -> Dataset(s1, s2,
score[, subset])` of the data layout (csim.data.sts). The evaluator (csim.evaluation) and the training data
(csim.data.nli, the MLM corpus filter) both read tasks from here; data never imports evaluation."""

from __future__ import annotations

from dataclasses import dataclass
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


def _sickr_all(data_dir, text: str = "official"):
    """MTEB's SICK-R: every SemEval-2014 pair, train 4,500 + trial 500 + test 4,927 = 9,927 (mteb/sickr-sts has one
    'test' split of 9,927 pairs; SentEval scores the 4,927 test pairs only)."""
    import datasets

    _check_text(text)
    return datasets.concatenate_datasets([sts.read_sickr(data_dir, split) for split in ("train", "trial", "test")])


TASKS: dict[str, Callable] = {
    "stsb_train": partial(_stsb, split="train"),
    "stsb_dev": partial(_stsb, split="dev"),
    "stsb_test": partial(_stsb, split="test"),
    **{f"sts{y}": partial(_sts_year, year=y) for y in sorted(sts.STS_SUBSETS)},
    "sickr_test": partial(_sickr, split="test"),
    "sickr_all": _sickr_all,
}
# SimCSE Table 5 / SBERT Table 1: STS12-16, STS-B test and SICK-R test, and their average ("Avg.")
SUITE = ("sts12", "sts13", "sts14", "sts15", "sts16", "stsb_test", "sickr_test")
DISPLAY = {"sts12": "STS12", "sts13": "STS13", "sts14": "STS14", "sts15": "STS15", "sts16": "STS16",
           "stsb_test": "STS-B", "sickr_test": "SICK-R", "sickr_all": "SICK-R (all)", "stsb_dev": "STS-B dev",
           "stsb_train": "STS-B train"}


@dataclass(frozen=True)
class Protocol:
    """How a published table scores the STS suite: which pairs (tasks), which text, and how a year's subsets are
    aggregated. Every protocol scores cosine similarity with Spearman x 100; its average is labelled with its name."""
    name: str
    title: str
    tasks: tuple[str, ...]
    text: str
    aggregate: str


PROTOCOLS = {
    # SentEval as SimCSE (Table 5, Appendix B: the "all" setting) and SBERT (Table 1) run it: SentEval's lower-cased,
    # Moses-tokenized copies of STS12-16 and STS-B, SICK-R's 4,927 test pairs, one Spearman over a year's subsets
    "senteval": Protocol("senteval", "SentEval", SUITE, "senteval", "all"),
    # MTEB's STS12-16, STSBenchmark and SICK-R tasks (main score cosine Spearman over the task's test split): the
    # released text, STS-B's 1,379 test pairs and all 9,927 SICK pairs
    "mteb": Protocol("mteb", "MTEB", ("sts12", "sts13", "sts14", "sts15", "sts16", "stsb_test", "sickr_all"),
                     "official", "all"),
}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise CsimError(f"Evaluation protocol {name!r}: choose one of {', '.join(PROTOCOLS)}.")
    return PROTOCOLS[name]


def load_task(name: str, data_dir, max_pairs: int | None = None, text: str = "official"):
    if name not in TASKS:
        raise CsimError(f"Unknown evaluation task {name!r} (eval.tasks / eval.test_tasks); available: {', '.join(sorted(TASKS))}.")
    ds = TASKS[name](data_dir, text=text)
    if max_pairs is not None and len(ds) > max_pairs:
        ds = ds.select(range(max_pairs))
    return ds


