"""Next-sentence objectives (SimCSE Table 2): the positive of a sentence is the sentence that follows it in its
document ("next sentence", 67.1 / 68.9 STS-B dev with one / two encoders) or one of the next `window` sentences at
random ("next 3 sentences", window=3: 67.4 / 68.8). The data must come in document order with a "following" column
(the next sentences of the same document; conf/data/ordered_corpus.yaml, csim/data/ordered.py). conf/augment/
next_sentence.yaml and next3_sentences.yaml are this one class with window 1 and 3."""

from __future__ import annotations

from csim.augment.base import Augmentation
from csim.errors import CsimError


class NextSentence(Augmentation):
    needs = ("following",)

    def __init__(self, window: int = 1, views: str = "one"):
        super().__init__(views)
        if views != "one":
            raise CsimError(f"augment.views={views!r}: a next-sentence objective pairs a sentence (view 1) with a "
                            f"following one (view 2), so only views=one is meaningful; remove the override.")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise CsimError(f"augment.window={window!r} must be a whole number >= 1: how many following sentences "
                            f"the positive is drawn from (1 = the next sentence, 3 = one of the next 3).")
        self.window = window

    def augment(self, text, rng, row):
        following = [s for s in (row.get("following") or [])[: self.window] if s and s.strip()]
        return rng.choice(following) if following else text
