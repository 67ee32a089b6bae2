"""Sentence encoders. Contract: `tokenize(texts) -> dict of lists` (run once with datasets.map),
`collate(rows) -> batch`, `forward(batch, head=False) -> Tensor[n, d]`, `save(dir)`; `encode`/`score_pairs` come
from SentenceEncoder. One module per encoder family (conf/encoder/<name>.yaml points at one of them)."""
