"""Augmentations. Contract: `__call__(batch, seeds) -> dict` where `batch` is a dict of columns (always "text";
paired data also "text_pos"/"text_neg", ordered corpora "following") and `seeds` one int per example; the result
has "view1" and "view2" (lists of texts) and optionally "neg". Randomness comes only from the per-example seeds,
so a run is reproducible and a sweep compares like with like. One module per augmentation: conf/augment/<name>.yaml
points at csim/augment/<name>.py (next3_sentences.yaml is next_sentence.py with window 3). Words are whitespace-
separated, never sub-word pieces, and a view is never empty (base.py).

SimCSE Table 1 and Table 2 rows: conf/exp/simcse_*.yaml (each the simcse_unsup recipe plus one augmentation);
"w/o dropout" is `+exp=simcse_delete_one_word encoder.dropout=0`, Table 2's two-encoder column adds
`module.two_encoders=true`, the ratios of crop / word deletion / MLM are `augment.ratio=...`."""
