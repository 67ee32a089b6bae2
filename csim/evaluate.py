"""STS evaluation, shared by the training callback and `csim eval`.

A task is a name that maps to a reader `(data_dir, text="official") -> Dataset(s1, s2, score[, subset])`; a model is
anything with `score_pairs(s1: list[str], s2: list[str]) -> np.ndarray` (cosine of embeddings for bi-encoders, a direct
score for cross-encoders). Results are flat, prefixed dicts: {"stsb_dev_spearman": 81.2, ...}, Spearman x 100.

Tasks with several subsets (STS12-16) aggregate their per-subset correlations one of three ways:
  all    one Spearman over the concatenation of the year's subsets (SentEval's "all", what SimCSE and SBERT report)
  mean   the unweighted mean of the per-subset Spearmans
  wmean  the mean of the per-subset Spearmans weighted by their numbers of pairs
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import numpy as np
from scipy.stats import spearmanr

from csim.data import sts

AGGREGATIONS = ("all", "mean", "wmean")
# text variants: the official release text, or SentEval's lower-cased Moses-tokenized copy (what SentEval-based
# evaluations, SimCSE's included, actually read)
TEXT_VARIANTS = ("official", "senteval")
_STSB_VARIANT = {"official": "original", "senteval": "senteval_tokenized"}
_STS_VARIANT = {"official": "raw", "senteval": "senteval_tokenized"}


def _check_text(text: str) -> None:
    if text not in TEXT_VARIANTS:
        from csim.errors import CsimError

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
    from csim.errors import CsimError

    if name not in TASKS:
        raise CsimError(f"Unknown evaluation task {name!r} (eval.tasks / eval.test_tasks); available: {', '.join(sorted(TASKS))}.")
    ds = TASKS[name](data_dir, text=text)
    if max_pairs is not None and len(ds) > max_pairs:
        ds = ds.select(range(max_pairs))
    return ds


def spearman_x100(pred, gold) -> float:
    return float(spearmanr(np.asarray(pred, dtype=np.float64), np.asarray(gold, dtype=np.float64)).correlation * 100.0)


def subset_spearmans(pred, gold, subsets) -> dict[str, tuple[float, int]]:
    """subset -> (Spearman x 100, number of pairs), in order of first appearance."""
    pred, gold, subsets = np.asarray(pred, dtype=np.float64), np.asarray(gold, dtype=np.float64), np.asarray(subsets)
    out = {}
    for s in dict.fromkeys(subsets.tolist()):
        m = subsets == s
        out[s] = (spearman_x100(pred[m], gold[m]), int(m.sum()))
    return out


def aggregate_spearman(pred, gold, subsets=None, mode: str = "all") -> float:
    """One number for a task: see the module docstring for all / mean / wmean. Without subsets all three coincide."""
    if mode not in AGGREGATIONS:
        from csim.errors import CsimError

        raise CsimError(f"Aggregation {mode!r}: choose one of {', '.join(AGGREGATIONS)}.")
    if subsets is None or mode == "all":
        return spearman_x100(pred, gold)
    per = subset_spearmans(pred, gold, subsets)
    scores = np.array([v for v, _ in per.values()])
    weights = np.array([n for _, n in per.values()], dtype=np.float64) if mode == "wmean" else np.ones(len(per))
    return float((scores * weights).sum() / weights.sum())


def pair_embeddings(model, s1: list[str], s2: list[str], batch_size: int = 128):
    """Embeddings of both sides in one pass of the model's shared `encode` (sorted by length, deduplicated,
    padded per batch, inference mode): -> (emb1, emb2)."""
    emb = model.encode(list(s1) + list(s2), batch_size=batch_size)
    return emb[: len(s1)], emb[len(s1):]


def evaluate_sts(model, dataset, prefix: str, batch_size: int = 128, aggregate: str = "all", detail: bool = False,
                 geometry: bool = False) -> dict[str, float]:
    """Spearman x 100 between the model's pair scores and the gold scores: `{prefix}_spearman`, aggregated over the
    dataset's subsets (if it has a `subset` column) by `aggregate`.

    detail: also `{prefix}_{all|mean|wmean}_spearman` and `{prefix}_{subset}_spearman` for each subset.
    geometry: also `{prefix}_alignment` / `{prefix}_uniformity` (csim.geometry) from the same embeddings; needs a
      bi-encoder (`encode`); the pair scores are then the cosines of those embeddings, exactly what
      SentenceEncoder.score_pairs computes."""
    import torch

    s1, s2, gold = list(dataset["s1"]), list(dataset["s2"]), list(dataset["score"])
    subsets = list(dataset["subset"]) if "subset" in dataset.column_names else None
    out: dict[str, float] = {}
    if geometry:
        from csim.geometry import pair_geometry

        a, b = pair_embeddings(model, s1, s2, batch_size)
        pred = torch.nn.functional.cosine_similarity(a, b, dim=-1).numpy()
        geo = pair_geometry(s1, s2, a, b, gold, prefix)
    else:
        pred, geo = model.score_pairs(s1, s2, batch_size=batch_size), {}
    out[f"{prefix}_spearman"] = aggregate_spearman(pred, gold, subsets, aggregate)
    if detail and subsets is not None:
        for mode in AGGREGATIONS:
            out[f"{prefix}_{mode}_spearman"] = aggregate_spearman(pred, gold, subsets, mode)
        for s, (v, _) in subset_spearmans(pred, gold, subsets).items():
            out[f"{prefix}_{s}_spearman"] = v
    out.update(geo)
    return out


def geometry_only(model, dataset, prefix: str, batch_size: int = 128) -> dict[str, float]:
    """Alignment and uniformity of `dataset` (an STS set on the 0-5 scale, normally STS-B dev) without scoring it."""
    from csim.geometry import pair_geometry

    s1, s2 = list(dataset["s1"]), list(dataset["s2"])
    a, b = pair_embeddings(model, s1, s2, batch_size)
    return pair_geometry(s1, s2, a, b, list(dataset["score"]), prefix)


def suite_average(metrics: dict[str, float], tasks=SUITE) -> float | None:
    """SimCSE Table 5's "Avg.": the mean of the seven tasks' Spearmans; None unless all seven are present."""
    vals = [metrics.get(f"{t}_spearman") for t in tasks]
    return None if any(v is None for v in vals) else float(np.mean(vals))
