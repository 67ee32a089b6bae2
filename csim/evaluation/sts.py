"""STS evaluation, shared by the training callback and `csim eval`.

Tasks (names -> readers of the data layout) live in csim.data.tasks; a model is
anything with `score_pairs(s1: list[str], s2: list[str]) -> np.ndarray` (cosine of embeddings for bi-encoders, a direct
score for cross-encoders). Results are flat, prefixed dicts: {"stsb_dev_spearman": 81.2, ...}, Spearman x 100.

Tasks with several subsets (STS12-16) aggregate their per-subset correlations one of three ways:
  all    one Spearman over the concatenation of the year's subsets (SentEval's "all", what SimCSE and SBERT report)
  mean   the unweighted mean of the per-subset Spearmans
  wmean  the mean of the per-subset Spearmans weighted by their numbers of pairs
"""

from __future__ import annotations


import numpy as np

from csim.data.tasks import SUITE

AGGREGATIONS = ("all", "mean", "wmean")
def spearman_x100(pred, gold) -> float:
    from scipy.stats import spearmanr  # imported on first use: scipy.stats takes ~0.5 s

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
    geometry: also `{prefix}_alignment` / `{prefix}_uniformity` (csim.evaluation.geometry) from the same embeddings; needs a
      bi-encoder (`encode`); the pair scores are then the cosines of those embeddings, exactly what
      SentenceEncoder.score_pairs computes."""
    import torch

    s1, s2, gold = list(dataset["s1"]), list(dataset["s2"]), list(dataset["score"])
    subsets = list(dataset["subset"]) if "subset" in dataset.column_names else None
    out: dict[str, float] = {}
    if geometry:
        from csim.evaluation.geometry import pair_geometry

        a, b = pair_embeddings(model, s1, s2, batch_size)
        pred = torch.nn.functional.cosine_similarity(a, b, dim=-1).numpy() \
            if getattr(model, "pair_scores_are_cosine", True) else model.score_pairs(s1, s2, batch_size=batch_size)
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


def scoring_precision(precision: str | None, model):
    """The context the scores are computed in: eval.precision null (or "32") -> the weights' own dtype (fp32: SimCSE's
    and sentence-transformers' evaluation); "bf16" -> torch.autocast to bfloat16 on `model`'s device (the matmuls in bf16,
    embeddings returned as fp32), for CPUs whose bf16 GEMM is many times faster (csim/runs/hardware.py)."""
    import contextlib

    import torch

    from csim.errors import CsimError

    if precision in (None, "32", 32):
        return contextlib.nullcontext()
    if str(precision) != "bf16":
        raise CsimError(f"eval.precision={precision!r}: choose null (the weights' dtype, the default) or bf16.")
    return torch.autocast(next(model.parameters()).device.type, dtype=torch.bfloat16)


def geometry_only(model, dataset, prefix: str, batch_size: int = 128) -> dict[str, float]:
    """Alignment and uniformity of `dataset` (an STS set on the 0-5 scale, normally STS-B dev) without scoring it."""
    from csim.evaluation.geometry import pair_geometry

    s1, s2 = list(dataset["s1"]), list(dataset["s2"])
    a, b = pair_embeddings(model, s1, s2, batch_size)
    return pair_geometry(s1, s2, a, b, list(dataset["score"]), prefix)


def suite_average(metrics: dict[str, float], tasks=SUITE) -> float | None:
    """SimCSE Table 5's "Avg.": the mean of the seven tasks' Spearmans; None unless all seven are present."""
    vals = [metrics.get(f"{t}_spearman") for t in tasks]
    return None if any(v is None for v in vals) else float(np.mean(vals))
