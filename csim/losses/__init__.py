"""Losses. Contract (as sentence-transformers): an nn.Module, `forward(emb_a, emb_b, labels=None, emb_neg=None) ->
scalar Tensor`; each docstring says which inputs it needs (`needs_labels`, `needs_negatives`, `in_batch_negatives`
attributes let the data and validation check that before any work). One module per conf/loss/<name>.yaml."""
