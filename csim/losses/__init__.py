"""Losses. Contract (as sentence-transformers): an nn.Module, `forward(emb_a, emb_b, labels=None, emb_neg=None) ->
scalar Tensor`; each docstring says which inputs it needs (`needs_labels`, `needs_negatives`, `in_batch_negatives`
attributes let the data and validation check that before any work). One module per conf/loss/<name>.yaml."""

from torch import nn


class Loss(nn.Module):
    """The base of every loss: what it needs, False unless the loss says otherwise.
    needs_labels: gold scores or classes per pair; needs_negatives: a hard negative per anchor (emb_neg);
    in_batch_negatives: the other pairs of the batch serve as negatives (so the batch's composition matters)."""

    needs_labels = False
    needs_negatives = False
    in_batch_negatives = False


def positive(field: str, value, hint: str = "") -> float:
    """A loss setting that must be a number > 0 (a temperature, a score range), refused naming its field."""
    from csim.errors import CsimError

    try:
        v = float(value)
    except (TypeError, ValueError):
        raise CsimError(f"{field}={value!r} is not a number; it must be > 0{hint}.") from None
    if not v > 0:
        raise CsimError(f"{field}={value} must be > 0{hint}.")
    return v
