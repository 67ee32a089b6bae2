"""InferSent's sentence encoder (Conneau et al., EMNLP 2017, "BiLSTM with max pooling"): a bidirectional LSTM over
fixed GloVe vectors, max-pooled over time."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from csim.encoders.words import WordVectorEncoder
from csim.errors import CsimError


class BiLSTMMax(WordVectorEncoder):
    """u = max_t [h_t(forward); h_t(backward)], so dim = 2 * hidden (InferSent: hidden 2048, 4096-d embeddings).
    Padding never enters the max; a sentence with no known word is read as one zero vector."""

    def __init__(self, hidden: int = 2048, layers: int = 1, **words):
        super().__init__(**words)
        if hidden < 1 or layers < 1:
            raise CsimError(f"encoder.hidden={hidden} and encoder.layers={layers} must be >= 1.")
        self.lstm = nn.LSTM(self.word_dim, hidden, num_layers=layers, bidirectional=True, batch_first=True)
        self.hidden = hidden
        self.config.update(hidden=hidden, layers=layers)

    @property
    def dim(self) -> int:
        return 2 * self.hidden

    def forward(self, batch: dict[str, torch.Tensor], head: bool = False) -> torch.Tensor:
        vectors, mask = self.embed(batch)
        lengths = mask.sum(1).long()
        packed = pack_padded_sequence(vectors, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=vectors.shape[1])
        valid = mask.bool()
        valid[:, 0] |= lengths == 0  # an empty sentence: the output of its single zero-vector step
        return out.masked_fill(~valid.unsqueeze(-1), float("-inf")).max(dim=1).values
