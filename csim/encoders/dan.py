"""A deep averaging network (Iyyer et al., ACL 2015), the architecture of the lighter Universal Sentence Encoder
(Cer et al. 2018, "Deep Averaging Network"): the average of the word vectors through a feed-forward network."""

from __future__ import annotations

import torch
from torch import nn

from csim.encoders.words import WordVectorEncoder
from csim.errors import CsimError

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


class DAN(WordVectorEncoder):
    """avg = mean of the sentence's word vectors (in training, Iyyer et al.'s word dropout: each word is dropped with
    probability `word_dropout`; a sentence keeps all its words if every one would be dropped), then for each width in
    `layers`: Linear -> activation. dim = layers[-1] (USE: 512).
    USE's DAN also averages bigram embeddings and is trained multi-task; here only word vectors are averaged and the
    training objective comes from the experiment (NLI with softmax_nli)."""

    def __init__(self, layers: list[int] = (512, 512), activation: str = "tanh", word_dropout: float = 0.3, **words):
        super().__init__(**words)
        layers = [int(w) for w in layers]
        if not layers or min(layers) < 1:
            raise CsimError(f"encoder.layers={layers}: give one or more positive layer widths (USE: 512).")
        if activation not in ACTIVATIONS:
            raise CsimError(f"encoder.activation={activation!r}; choose one of {', '.join(ACTIVATIONS)}.")
        if not (0.0 <= word_dropout < 1.0):
            raise CsimError(f"encoder.word_dropout={word_dropout} must be in [0, 1).")
        blocks, width = [], self.word_dim
        for w in layers:
            blocks += [nn.Linear(width, w), ACTIVATIONS[activation]()]
            width = w
        self.net = nn.Sequential(*blocks)
        self.word_dropout, self.out_dim = word_dropout, width
        self.config.update(layers=layers, activation=activation, word_dropout=word_dropout)

    @property
    def dim(self) -> int:
        return self.out_dim

    def forward(self, batch: dict[str, torch.Tensor], head: bool = False) -> torch.Tensor:
        vectors, mask = self.embed(batch)
        if self.training and self.word_dropout > 0:
            keep = (torch.rand(mask.shape, device=mask.device) >= self.word_dropout).to(mask.dtype) * mask
            none_left = keep.sum(1, keepdim=True) == 0
            keep = torch.where(none_left, mask, keep)
            vectors, mask = vectors * keep.unsqueeze(-1), keep
        avg = vectors.sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
        return self.net(avg)
