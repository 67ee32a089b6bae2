"""Delete one word, chosen at random. SimCSE Table 1 "Delete one word" (75.9 STS-B dev) and Table 2's "delete one
word" objective (75.9 with one encoder / 73.1 with two). Table 1's "w/o dropout" row (74.2) is this augmentation with
the encoder's dropout off: `+exp=simcse_delete_one_word encoder.dropout=0`. A one-word sentence is left as it is
(a view is never empty)."""

from __future__ import annotations

from csim.augment.base import Augmentation


class DeleteOneWord(Augmentation):
    def augment(self, text, rng, row):
        words = text.split()
        if len(words) < 2:
            return text
        i = rng.randrange(len(words))
        return " ".join(words[:i] + words[i + 1:])
