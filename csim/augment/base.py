"""The augmentation contract and the helpers every word-level augmentation shares.

Words are whitespace-separated tokens of the sentence, never sub-word pieces (SimCSE issue #231): "deleting 10% of the
words" of a 20-word sentence deletes 2 of its `text.split()` items, and a view is those items joined by one space.
"""

from __future__ import annotations

import math
import random
import string

from csim.errors import CsimError

_PUNCT = string.punctuation + "“”‘’«»…–—"


class Augmentation:
    """Texts in, two views out. `views`: "one" (view1 = original, view2 = augmented; SimCSE Table 1's setting) or
    "both" (each view augmented independently)."""

    #: what the data must provide besides "text" (the data module checks this before any work)
    needs: tuple[str, ...] = ()

    def __init__(self, views: str = "one"):
        if views not in ("one", "both"):
            raise CsimError(f"augment.views={views!r}: choose 'one' (only view 2 augmented) or 'both'.")
        self.views = views

    def augment(self, text: str, rng: random.Random, row: dict) -> str:
        """Return the augmented version of one text (row holds the example's other columns)."""
        raise NotImplementedError

    def __call__(self, batch: dict[str, list], seeds: list[int]) -> dict[str, list]:
        texts = batch["text"]
        view1, view2 = [], []
        for i, (text, seed) in enumerate(zip(texts, seeds)):
            rng = random.Random(seed)
            row = {k: v[i] for k, v in batch.items()}
            a = self._safe(self.augment(text, rng, row), text) if self.views == "both" else text
            b = self._safe(self.augment(text, rng, row), text)
            view1.append(a)
            view2.append(b)
        return {"view1": view1, "view2": view2}

    @staticmethod
    def _safe(view: str, original: str) -> str:
        """A view is never empty: fall back to the original sentence."""
        return view if view and view.strip() else original


# --- word-level helpers ---------------------------------------------------------------------------------------------

def check_ratio(ratio, field: str = "augment.ratio") -> float:
    """A ratio of the words must be a number in [0, 1); anything else is refused naming the field."""
    try:
        value = float(ratio)
    except (TypeError, ValueError):
        raise CsimError(f"{field}={ratio!r} is not a number; give the fraction of the words to change, in [0, 1) "
                        f"(e.g. {field}=0.1 for 10%).") from None
    if not (0.0 <= value < 1.0) or math.isnan(value):
        raise CsimError(f"{field}={ratio!r} is outside [0, 1): it is the fraction of a sentence's words to change "
                        f"(SimCSE Table 1 uses 0.1, 0.2, 0.3 for crop / word deletion and 0.15 for MLM); set {field} "
                        f"to a value in [0, 1).")
    return value


def count_of(ratio: float, n: int) -> int:
    """round(ratio * n), halves rounded up (0.15 * 10 words -> 2), as a number of words."""
    return int(math.floor(ratio * n + 0.5))


def split_word(word: str) -> tuple[str, str, str]:
    """'"Hello,' -> ('"', 'Hello', ','): leading punctuation, core, trailing punctuation. A word that is only
    punctuation has an empty core."""
    core = word.strip(_PUNCT)
    if not core:
        return word, "", ""
    start = word.index(core)
    return word[:start], core, word[start + len(core):]


def has_letters(word: str) -> bool:
    return any(c.isalnum() for c in word)


class RatioAugmentation(Augmentation):
    """An augmentation that changes a fraction `ratio` of a sentence's words (crop, word deletion), validated once."""

    def __init__(self, ratio: float = 0.1, views: str = "one"):
        super().__init__(views)
        self.ratio = check_ratio(ratio)
