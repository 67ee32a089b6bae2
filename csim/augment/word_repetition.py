"""Word repetition, ESimCSE's positive (Wu et al., COLING 2022, §3.1): repeat a few random words of the sentence, so the
positive differs from the sentence in length but hardly in meaning (SimCSE's two dropout views share their length,
which the model can learn as a shortcut)."""

from __future__ import annotations

from csim.augment.base import Augmentation, check_ratio


class WordRepetition(Augmentation):
    """ESimCSE §3.1, for a sentence of n words:
        dup_len ~ uniform integer in [0, max(2, int(dup_rate * n))]
        dup_set = uniform sample of dup_len distinct positions of the n words
        each word at a position in dup_set is written twice (in place), the others once.
    A sentence shorter than dup_len has all its words repeated. `views`: one (view 1 = the sentence, ESimCSE's x;
    view 2 = the repetition, x+) or both.
    The paper states the operation on a sequence of tokens (its example is sub-words, §3.1) and compares word and
    sub-word repetition (§5); csim repeats whitespace words, as every csim augmentation works on words (base.py): a
    sub-word variant would need the encoder's tokenizer inside the augmentation."""

    def __init__(self, dup_rate: float = 0.32, views: str = "one"):
        super().__init__(views)
        self.dup_rate = check_ratio(dup_rate, "augment.dup_rate")

    def augment(self, text, rng, row):
        words = text.split()
        n = len(words)
        dup_len = rng.randint(0, max(2, int(self.dup_rate * n)))
        chosen = set(rng.sample(range(n), min(dup_len, n)))
        out = []
        for i, w in enumerate(words):
            out += [w, w] if i in chosen else [w]
        return " ".join(out)
