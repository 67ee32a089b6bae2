"""Soft nearest-neighbour loss (Frosst, Papernot & Hinton, ICML 2019, Eq. 1)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from csim.errors import CsimError
from csim.losses import Loss
from csim.losses.gather import gather_across_devices, gathers, pairwise_sq_dist


class SoftNearestNeighbour(Loss):
    """For each point i of the batch, with distances ||x_i - x_j||^2 and temperature T:
        l_i = -log( sum_{j != i, y_j = y_i} exp(-||x_i - x_j||^2 / T) / sum_{k != i} exp(-||x_i - x_k||^2 / T) )
    and the loss is the mean of l_i over the anchors.

    Inputs: emb_a [N, d] and emb_b [N, d] are 2N points (row i of each is one example). With use_labels=true,
    labels [N] (integer class ids, required) give each example a class, shared by both of its rows, so every row
    with the same label is a positive (several positives per anchor). With use_labels=false (default; labels are
    ignored: an NLI relation or an STS score is not a class of the sentence) each example is its own class: the
    positive of a row is the other view of its example. emb_neg [M, d] (optional) adds points that are never
    positives and only enter the denominators.
    normalize: L2-normalise the embeddings first (distances in [0, 4], so T has the same scale as a cosine
    temperature); Frosst et al. use the raw representation (normalize=false).
    learn_temperature: optimise log T with the model (Frosst et al. §3: T can be learned), starting at `temperature`.
    gather_across_devices: under data parallelism, every rank's points (and labels) enter the sums of the local
    anchors; null (default): on when there is more than one rank; false: the local batch only.
    Distances come from ||x||^2 + ||y||^2 - 2 x.y (csim.losses.gather.pairwise_sq_dist): no [2N, M, d] tensor.
    """

    in_batch_negatives = True

    def __init__(self, temperature: float = 0.1, normalize: bool = True, learn_temperature: bool = False,
                 use_labels: bool = False, gather_across_devices: bool | None = None):
        super().__init__()
        self.gather_across_devices = gather_across_devices
        if temperature <= 0:
            raise CsimError(f"loss.temperature={temperature} must be > 0.")
        self.normalize, self.use_labels = normalize, use_labels
        self.needs_labels = use_labels
        log_t = torch.tensor(math.log(temperature))
        if learn_temperature:
            self.log_temperature = nn.Parameter(log_t)
        else:
            self.register_buffer("log_temperature", log_t)

    @property
    def temperature(self) -> float:
        return float(self.log_temperature.exp())

    def forward(self, emb_a, emb_b, labels=None, emb_neg=None):
        n = emb_a.shape[0]
        if self.use_labels:
            if labels is None or labels.is_floating_point():
                raise CsimError("soft_nn with loss.use_labels=true needs integer class labels, one per example; the "
                                "batch has " + ("none" if labels is None else "float scores") + ". Use class-labelled "
                                "data or set loss.use_labels=false (each example its own class).")
            y = labels.to(emb_a.device)
            if emb_neg is not None and bool((y == -1).any()):
                raise CsimError("soft_nn: label -1 is reserved for hard negatives; relabel the data.")
        offset = 0
        if gathers(self.gather_across_devices):  # every rank's points (csim.losses.gather)
            emb_a, offset = gather_across_devices(emb_a)
            emb_b = gather_across_devices(emb_b)[0]
            emb_neg = gather_across_devices(emb_neg)[0] if emb_neg is not None else None
            if self.use_labels:
                y = gather_across_devices(y)[0]
        m = emb_a.shape[0]  # examples in the (global) batch
        if not self.use_labels:
            y = torch.arange(m, device=emb_a.device)
        points, classes = [emb_a, emb_b], [y, y]
        if emb_neg is not None:
            # hard negatives: classes no anchor has (they are never positives)
            points.append(emb_neg)
            classes.append(torch.full((emb_neg.shape[0],), -1, dtype=y.dtype, device=y.device))
        x = torch.cat(points)
        c = torch.cat(classes)
        if self.normalize:
            x = F.normalize(x, dim=-1)
        local = torch.arange(offset, offset + n, device=x.device)
        rows = torch.cat([local, local + m])  # this rank's anchors: its 2n views
        d2 = pairwise_sq_dist(x[rows], x)  # anchors x all points
        logits = -d2 / self.log_temperature.exp()
        not_self = ~F.one_hot(rows, x.shape[0]).bool()
        positive = (c[rows].unsqueeze(1) == c.unsqueeze(0)) & not_self
        neg_inf = torch.finfo(logits.dtype).min
        log_num = logits.masked_fill(~positive, neg_inf).logsumexp(dim=1)
        log_den = logits.masked_fill(~not_self, neg_inf).logsumexp(dim=1)
        return (log_den - log_num).mean()  # the mean over the local anchors
