"""STS evaluation, shared by the training callback and `csim eval`.

A task is a name that maps to a reader returning (s1, s2, score) pairs; a model is anything with
`score_pairs(s1: list[str], s2: list[str]) -> np.ndarray` (cosine of embeddings for bi-encoders, a direct score for
cross-encoders). Results are flat, prefixed dicts: {"stsb_dev_spearman": 81.2, ...}, Spearman x 100.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import numpy as np
from scipy.stats import spearmanr

from csim.data import sts

TASKS: dict[str, Callable] = {
    "stsb_train": partial(sts.read_stsb, split="train"),
    "stsb_dev": partial(sts.read_stsb, split="dev"),
    "stsb_test": partial(sts.read_stsb, split="test"),
}


def load_task(name: str, data_dir, max_pairs: int | None = None):
    from csim.errors import CsimError

    if name not in TASKS:
        raise CsimError(f"Unknown evaluation task {name!r} (eval.tasks / eval.test_tasks); available: {', '.join(sorted(TASKS))}.")
    ds = TASKS[name](data_dir)
    if max_pairs is not None and len(ds) > max_pairs:
        ds = ds.select(range(max_pairs))
    return ds


def spearman_x100(pred, gold) -> float:
    return float(spearmanr(np.asarray(pred, dtype=np.float64), np.asarray(gold, dtype=np.float64)).correlation * 100.0)


def evaluate_sts(model, dataset, prefix: str, batch_size: int = 128) -> dict[str, float]:
    """Spearman x 100 between the model's pair scores and the gold scores."""
    pred = model.score_pairs(list(dataset["s1"]), list(dataset["s2"]), batch_size=batch_size)
    return {f"{prefix}_spearman": spearman_x100(pred, dataset["score"])}
