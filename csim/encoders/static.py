"""Average word embeddings (SBERT Table 1/2's "Avg. GloVe embeddings"): the mean of a sentence's word vectors, no
training. Tokenisation and stop words are configuration (csim/encoders/words.py)."""

from __future__ import annotations

import torch

from csim.encoders.words import WordVectorEncoder


class StaticAverage(WordVectorEncoder):
    """Mean of the known words' vectors; out-of-vocabulary words (and stop words, if configured) are skipped and a
    sentence with no word left is the zero vector (cosine 0 with everything)."""

    @property
    def dim(self) -> int:
        return self.word_dim

    def forward(self, batch: dict[str, torch.Tensor], head: bool = False) -> torch.Tensor:
        vectors, mask = self.embed(batch)
        return vectors.sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
