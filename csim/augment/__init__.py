"""Augmentations. Contract: `__call__(batch, seeds) -> dict` where `batch` is a dict of columns (always "text";
paired data also "text_pos"/"text_neg", ordered corpora "following") and `seeds` one int per example; the result
has "view1" and "view2" (lists of texts) and optionally "neg". Randomness comes only from the per-example seeds,
so a run is reproducible and a sweep compares like with like. One module per conf/augment/<name>.yaml."""
