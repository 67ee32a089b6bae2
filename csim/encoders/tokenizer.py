"""Tokenizers: a pretrained one by name or path (hub or local), a WordPiece vocabulary file (the smoke scale's, shipped
in csim/encoders/vocab/), or a WordPiece trained on a corpus with the `tokenizers` library and cached (an offline mini
encoder without BERT's vocabulary). Training is not deterministic: `tokenizers` breaks ties between equally frequent
merges in hash order, so two fresh caches give different token ids (and so different results) for the same corpus.
That is why the smoke scale ships its vocabulary as a file (trained once that way) instead of training it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from transformers import AutoTokenizer, BertTokenizerFast, PreTrainedTokenizerBase

VOCAB_DIR = Path(__file__).resolve().parent / "vocab"


def get_tokenizer(name_or_path: str | None = None, train_file: str | None = None, vocab_size: int = 8000,
                  data_dir: str = "data", cache_dir: str = "cache", offline_copies: list[str] = (),
                  vocab_file: str | None = None) -> PreTrainedTokenizerBase:
    """`name_or_path` (a local folder, or a hub name when the hub or its cache has it) wins; then the first existing
    folder of `offline_copies` (local copies of that same tokenizer); otherwise a WordPiece trained on `train_file`
    (relative to the data directory) with the `tokenizers` library, cached under `<cache_dir>/tokenizers/<hash>`.
    `vocab_file` (a path, or a file name in csim/encoders/vocab/) gives a lower-cased WordPiece with that vocabulary."""
    if vocab_file:
        path = Path(vocab_file) if os.path.isabs(vocab_file) else VOCAB_DIR / vocab_file
        if not path.is_file():
            from csim.errors import CsimError

            raise CsimError(f"encoder.tokenizer.vocab_file={vocab_file!r}: {path} does not exist; give a WordPiece "
                            f"vocab.txt path or one of {sorted(p.name for p in VOCAB_DIR.glob('*.txt'))}.")
        return BertTokenizerFast(vocab=str(path), do_lower_case=True)
    if name_or_path:
        from csim.hub import hub_reachable, in_hf_cache

        if Path(name_or_path).is_dir() or in_hf_cache(name_or_path) or hub_reachable():
            return AutoTokenizer.from_pretrained(str(name_or_path))
        for copy in offline_copies or ():
            if Path(copy).is_dir():
                return AutoTokenizer.from_pretrained(str(copy))
        if not train_file:
            from csim.errors import CsimError

            raise CsimError(f"Tokenizer {name_or_path!r} is not available offline and no offline copy or train_file "
                            f"is configured (encoder.tokenizer).")
    from csim.data.paths import data_path

    corpus = data_path(data_dir, train_file, "tokenizer training corpus")
    key = hashlib.sha256(f"{corpus.resolve()}|{vocab_size}".encode()).hexdigest()[:12]
    out = Path(cache_dir) / "tokenizers" / f"wordpiece-v2-{vocab_size}-{key}"
    if (out / "vocab.txt").exists():
        return BertTokenizerFast.from_pretrained(str(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    from tokenizers import BertWordPieceTokenizer

    tok = BertWordPieceTokenizer(lowercase=True)
    tok.train([str(corpus)], vocab_size=vocab_size, min_frequency=2, show_progress=False)
    tmp.mkdir(parents=True, exist_ok=True)
    tok.save_model(str(tmp))
    BertTokenizerFast(vocab=str(tmp / "vocab.txt"), do_lower_case=True).save_pretrained(str(tmp))
    try:
        os.replace(tmp, out)  # atomic: a concurrent builder of the same tokenizer loses the race harmlessly
    except OSError:
        pass
    return BertTokenizerFast.from_pretrained(str(out if out.exists() else tmp))
