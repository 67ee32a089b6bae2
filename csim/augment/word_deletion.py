"""Word deletion: delete round(ratio * n) of a sentence's n words, chosen at random (at least one word is kept).
SimCSE Table 1, "Word deletion k%: delete k% words" (10/20/30%: 75.9/72.2/68.2 STS-B dev)."""

from __future__ import annotations

from csim.augment.base import RatioAugmentation, count_of


class WordDeletion(RatioAugmentation):
    def augment(self, text, rng, row):
        words = text.split()
        n = len(words)
        drop = min(count_of(self.ratio, n), n - 1)
        if drop <= 0:
            return text
        gone = set(rng.sample(range(n), drop))
        return " ".join(w for i, w in enumerate(words) if i not in gone)
