"""Crop: keep one random contiguous span of (1 - ratio) of the words. SimCSE Table 1, "Crop k%: keep 100-k% of the
length" (10/20/30%: 77.8/71.4/63.6 STS-B dev)."""

from __future__ import annotations

from csim.augment.base import RatioAugmentation, count_of


class Crop(RatioAugmentation):
    def augment(self, text, rng, row):
        words = text.split()
        n = len(words)
        if n == 0:
            return text
        keep = max(1, n - count_of(self.ratio, n))
        start = rng.randrange(n - keep + 1)
        return " ".join(words[start:start + keep])
