"""Supervised pairs: the data already holds the positive (and optionally a hard negative), e.g. NLI entailment /
contradiction (supervised SimCSE, SBERT) or STS-B pairs with a score. view1 = text, view2 = text_pos, neg = text_neg."""

from __future__ import annotations

from csim.augment.base import Augmentation


class Paired(Augmentation):
    needs = ("text_pos",)

    def __call__(self, batch, seeds):
        out = {"view1": list(batch["text"]), "view2": list(batch["text_pos"])}
        if "text_neg" in batch:
            out["neg"] = list(batch["text_neg"])
        return out
