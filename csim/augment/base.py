"""The augmentation contract and the helpers every word-level augmentation shares."""

from __future__ import annotations

import random


class Augmentation:
    """Texts in, two views out. `views`: "one" (view1 = original, view2 = augmented; SimCSE Table 1's setting) or
    "both" (each view augmented independently)."""

    #: what the data must provide besides "text" (the data module checks this before any work)
    needs: tuple[str, ...] = ()

    def __init__(self, views: str = "one"):
        if views not in ("one", "both"):
            from csim.errors import CsimError

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
