"""SBERT's classification objective (Reimers & Gurevych 2019, §3): softmax(W_t (u, v, |u-v|)) over the NLI labels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from csim.errors import CsimError
from csim.losses import Loss

FEATURES = ("u", "v", "|u-v|", "u*v")


class SoftmaxNLI(Loss):
    """A linear classifier over features of the two sentence embeddings, trained with cross-entropy; the classifier
    is part of the loss (as sentence-transformers' SoftmaxLoss) and is trained with the encoder, then discarded.

    Inputs: emb_a [N, d] (u, premises), emb_b [N, d] (v, hypotheses), labels [N] (class ids in [0, num_labels));
    emb_neg is not used.
    concat: the features concatenated, in order, from "u", "v", "|u-v|", "u*v" (SBERT Table 6; its default and best
    is (u, v, |u-v|); InferSent and USE use (u, v, |u-v|, u*v)).
    The classifier's input size depends on the encoder, so it is built by `bind(dim)`, which the Lightning module
    calls with the encoder's embedding size before the optimiser is configured.
    """

    needs_labels = True

    def __init__(self, num_labels: int = 3, concat: list[str] = ("u", "v", "|u-v|"), dim: int | None = None):
        super().__init__()
        concat = list(concat)
        bad = [c for c in concat if c not in FEATURES]
        if not concat or bad or len(set(concat)) != len(concat):
            raise CsimError(f"loss.concat={concat}: give a non-empty list of distinct features from "
                            f"{', '.join(FEATURES)} (SBERT Table 6; its default is [u, v, '|u-v|']).")
        if num_labels < 2:
            raise CsimError(f"loss.num_labels={num_labels} must be >= 2 (NLI has 3).")
        self.num_labels, self.concat = num_labels, concat
        self.classifier: nn.Linear | None = None
        if dim is not None:
            self.bind(dim)

    def bind(self, dim: int) -> None:
        """Create the classifier W_t in R^{k x (|concat| * dim)} for embeddings of size `dim`."""
        if self.classifier is not None and self.classifier.in_features == len(self.concat) * dim:
            return
        self.classifier = nn.Linear(len(self.concat) * dim, self.num_labels)

    def features(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        parts = {"u": lambda: u, "v": lambda: v, "|u-v|": lambda: (u - v).abs(), "u*v": lambda: u * v}
        return torch.cat([parts[c]() for c in self.concat], dim=-1)

    def forward(self, emb_a, emb_b, labels=None, emb_neg=None):
        if labels is None:
            raise CsimError("The softmax_nli loss needs NLI labels; use data=nli (pairs with labels).")
        if self.classifier is None:
            raise CsimError("softmax_nli: the classifier has not been built; call bind(embedding_dim) (the training "
                            "module does this before configuring the optimiser) or pass loss.dim.")
        if labels.is_floating_point():
            raise CsimError("The softmax_nli loss needs integer class labels, but the batch has float scores "
                            "(regression data such as STS-B); use loss=cosine_mse for scores.")
        logits = self.classifier(self.features(emb_a, emb_b))
        return F.cross_entropy(logits, labels.long())
