"""Sentence encoders. Contract: `tokenize(texts) -> dict of lists` (run once with datasets.map),
`collate(rows) -> batch`, `forward(batch, head=False) -> Tensor[n, d]`, `save(dir)`; `encode`/`score_pairs` come
from SentenceEncoder. One module per encoder family (conf/encoder/<name>.yaml points at one of them)."""

POOLERS = ("cls", "cls_before_pooler", "mean", "first_last_avg")  # TransformerEncoder's; here so that CLIs list them cheaply
