"""Unsupervised SimCSE's augmentation: both views are the sentence itself; the only noise is the encoder's
dropout (two forward passes with different masks). SimCSE Table 1, "None (unsup. SimCSE)"."""

from __future__ import annotations

from csim.augment.base import Augmentation


class Dropout(Augmentation):
    def augment(self, text, rng, row):
        return text
