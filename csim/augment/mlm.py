"""MLM replacement (SimCSE Table 1, "MLM k%: use BERT-base to replace k% of words", MLM 15%: 62.2 STS-B dev): mask
round(ratio * n) of a sentence's n words and let a masked-language model fill each one in.

How (the paper gives no details; these follow nlpaug's ContextualWordEmbsAug, which the other rows resemble):
- a word is a whitespace-separated word with a letter or digit; its surrounding punctuation stays ('dog,' ->
  '[MASK],'); each chosen word becomes ONE mask token, so the model predicts a whole word, not a sub-word piece;
- the fill-in is sampled from the model's `top_k` most likely whole-word tokens at `temperature` (nlpaug's defaults:
  100 and 1.0), never a special token, a '##' continuation piece or the original word; the first letter's case is
  carried over (an uncased BERT predicts lower case);
- all choices come from the example's seeded generator, so the same (corpus, model, ratio, seed) gives the same views.

Cost: it runs once over the training corpus (the data module's datasets.map, batched), without gradients, in
batches of `batch_size`, with the vocabulary projection computed only at the masked positions; the augmented corpus
is cached by the data module under a fingerprint of this object's plain attributes (ratio, model_key, top_k, ...),
so the same (corpus, model, ratio, seed) is never augmented twice. The model is loaded at the first call, not in
__init__, so a bad setting is refused before any expensive work.

Model: `model_name` (a hub name or a local folder with an MLM head; the paper's bert-base-uncased, the cpu scale's
mini encoder) or `random_init` (a BERT config built with the `tokenizer` spec and `init_seed`: the smoke scale).
"""

from __future__ import annotations

import hashlib
import json
import random
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import torch

from csim.augment.base import Augmentation, check_ratio, count_of, has_letters, split_word
from csim.errors import CsimError


def _plain(value) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else dict(value)


def _folder_key(path: Path) -> str:
    """Cheap identity of a local model folder (config + size and mtime of the weights): a rebuilt model at the same
    path gets a new key, so its cached augmentations are not reused."""
    parts = []
    for f in sorted(path.iterdir()):
        if f.is_file() and (f.name == "config.json" or f.suffix in (".safetensors", ".bin")):
            st = f.stat()
            parts.append((f.name, st.st_size, st.st_mtime_ns))
    return hashlib.sha256(json.dumps([str(path.resolve()), parts]).encode()).hexdigest()[:16]


class FillInModel(NamedTuple):
    tokenizer: object
    model: torch.nn.Module
    head: torch.nn.Module | None   # the MLM head alone, applied to the masked positions only (None: full forward)
    valid: torch.Tensor            # [vocab] bool: the tokens that can fill in a word
    words: list[str]               # each token's text on its own
    device: torch.device


@lru_cache(maxsize=2)
def load_fill_in_model(model_name: str | None, model_key: str, device: str, data_dir: str,
                       cache_dir: str) -> FillInModel:
    """Load (or, for random_init, build) the fill-in model once per process: the instances of a sweep over ratios
    share it. `model_key` is the random_init spec (JSON) when model_name is None."""
    if model_name:
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(model_name)
        model = AutoModelForMaskedLM.from_pretrained(model_name)
    else:
        from transformers import BertConfig, BertForMaskedLM

        from csim.encoders.tokenizer import get_tokenizer

        spec = json.loads(model_key)
        tok = get_tokenizer(data_dir=data_dir, cache_dir=cache_dir, **spec["tokenizer"])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec["init_seed"])
            model = BertForMaskedLM(BertConfig(vocab_size=len(tok), **spec["random_init"]))
    if tok.mask_token_id is None:
        raise CsimError(f"The MLM model's tokenizer ({model_name or 'random_init'}) has no mask token; "
                        f"augment.model_name must name a masked-language model.")
    dev = torch.device("cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu")
    model.eval().to(dev)
    others = [m for _, m in model.named_children() if m is not model.base_model]  # "base model + one head module"
    # a fill-in is a whole word: no special token, no '##' continuation piece (WordPiece), a letter or digit in it
    words = [w.strip() for w in tok.batch_decode([[i] for i in range(len(tok))], clean_up_tokenization_spaces=False)]
    special = set(tok.all_special_ids)
    valid = torch.tensor([i not in special and not w.startswith("##") and not (w.startswith("[") and w.endswith("]"))
                          and has_letters(w) and not any(c.isspace() for c in w) for i, w in enumerate(words)],
                         dtype=torch.bool)
    return FillInModel(tok, model, others[0] if len(others) == 1 else None, valid.to(dev), words, dev)


class MLM(Augmentation):
    def __init__(self, ratio: float = 0.15, model_name: str | None = "bert-base-uncased",
                 random_init: dict | None = None, tokenizer: dict | None = None, init_seed: int = 0,
                 top_k: int = 100, temperature: float = 1.0, batch_size: int = 128, max_length: int = 128,
                 device: str = "auto", views: str = "one", data_dir: str = "data", cache_dir: str = "cache"):
        super().__init__(views)
        self.ratio = check_ratio(ratio)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise CsimError(f"augment.top_k={top_k!r} must be a whole number >= 1 (1 = always the most likely word).")
        if not float(temperature) > 0:
            raise CsimError(f"augment.temperature={temperature!r} must be > 0.")
        if device not in ("auto", "cpu", "cuda"):
            raise CsimError(f"augment.device={device!r}: choose auto, cpu or cuda.")
        self.top_k, self.temperature = top_k, float(temperature)
        self.batch_size, self.max_length = batch_size, max_length
        self.device, self.data_dir, self.cache_dir = device, str(data_dir), str(cache_dir)
        if model_name:
            from csim.hub import resolve_model

            try:
                self.model_name = resolve_model(str(model_name), field="augment.model_name")
            except CsimError as e:
                raise CsimError(f"{e} (The MLM augmentation's fill-in model: at scale=cpu it is the mini encoder that "
                                f"`csim train +exp=mlm_pretrain` builds at paths.mini_encoder.)") from None
            local = Path(self.model_name)
            self.model_key = _folder_key(local) if local.is_dir() else self.model_name
        elif random_init:
            self.model_name = None  # the key holds the whole spec: load_fill_in_model builds the model from it
            self.model_key = json.dumps({"random_init": _plain(random_init), "tokenizer": _plain(tokenizer or {}),
                                         "init_seed": int(init_seed)}, sort_keys=True, default=str)
        else:
            raise CsimError("The MLM augmentation needs augment.model_name (a model with a masked-LM head: a hub "
                            "name or local folder) or augment.random_init (a BERT config to build at random).")
        self.init_seed = int(init_seed)
        # the loaded model lives in a dict: not a plain attribute, so it never enters the data module's fingerprint
        self._lazy: dict = {}

    # --- the model, loaded lazily --------------------------------------------------------------------------------
    def _load(self) -> FillInModel:
        if "model" not in self._lazy:
            self._lazy["model"] = load_fill_in_model(self.model_name, self.model_key, self.device, self.data_dir,
                                                     self.cache_dir)
        return self._lazy["model"]

    @torch.inference_mode()
    def _candidates(self, texts: list[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """For each masked text: (top-k token ids, their logits) at each mask position, in text order. Texts go
        through the model sorted by length, so a batch pads to similar lengths."""
        from csim.encoders.transformer import usable_length

        tok, model, head, valid, _, device = self._load()
        # no longer than the fill-in model can read (the mini encoder has 64 positions; max_length is 128)
        limit = usable_length(model, tok, self.max_length)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list = [None] * len(texts)
        for start in range(0, len(texts), self.batch_size):
            chunk = order[start:start + self.batch_size]
            enc = tok([texts[i] for i in chunk], padding=True, truncation=True,
                      max_length=limit, return_tensors="pt").to(device)
            where = enc["input_ids"] == tok.mask_token_id
            if head is not None:
                hidden = model.base_model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])[0]
                logits = head(hidden[where])
            else:
                logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits[where]
            logits = logits.float().masked_fill(~valid, float("-inf"))
            values, ids = logits.topk(min(self.top_k + 1, int(valid.sum())), dim=-1)  # +1: the original may be dropped
            counts = where.sum(dim=1).tolist()
            values, ids = values.cpu(), ids.cpu()
            pos = 0
            for i, c in zip(chunk, counts):
                out[i] = (ids[pos:pos + c], values[pos:pos + c])
                pos += c
        return out

    # --- the augmentation ----------------------------------------------------------------------------------------
    def _plan(self, text: str, rng: random.Random):
        words = text.split()
        eligible = [i for i, w in enumerate(words) if has_letters(split_word(w)[1])]
        k = min(count_of(self.ratio, len(words)), len(eligible))
        if k == 0:
            return None
        return words, sorted(rng.sample(eligible, k))

    def __call__(self, batch: dict[str, list], seeds: list[int]) -> dict[str, list]:
        texts = list(batch["text"])
        rngs = [random.Random(s) for s in seeds]
        out = {"view1": list(texts), "view2": list(texts)}
        targets = ("view1", "view2") if self.views == "both" else ("view2",)
        jobs = []
        for i, text in enumerate(texts):
            for view in targets:
                plan = self._plan(text, rngs[i])
                if plan is not None:
                    jobs.append((i, view, *plan))
        if not jobs:
            return out
        tok = self._load().tokenizer
        masked = []
        for _, _, words, positions in jobs:
            w = list(words)
            for j in positions:
                pre, _, post = split_word(w[j])
                w[j] = pre + tok.mask_token + post
            masked.append(" ".join(w))
        for (i, view, words, positions), (ids, values) in zip(jobs, self._candidates(masked)):
            w = list(words)
            for j, cand_ids, cand_vals in zip(positions, ids, values):  # masks cut off by max_length keep their word
                pre, core, post = split_word(w[j])
                fill = self._sample(core, cand_ids, cand_vals, rngs[i])
                if fill:
                    w[j] = pre + (fill[:1].upper() + fill[1:] if core[:1].isupper() else fill) + post
            out[view][i] = self._safe(" ".join(w), texts[i])
        return out

    def _sample(self, original: str, ids: torch.Tensor, values: torch.Tensor, rng: random.Random) -> str | None:
        """A fill-in drawn from the top-k candidates (softmax at `temperature`), never the original word."""
        vocab = self._load().words
        words, logits = [], []
        for tid, v in zip(ids.tolist(), values.tolist()):
            if v == float("-inf"):
                break
            if vocab[tid].lower() != original.lower():
                words.append(vocab[tid])
                logits.append(v)
            if len(words) == self.top_k:
                break
        if not words:
            return None
        weights = torch.softmax(torch.tensor(logits) / self.temperature, dim=0).tolist()
        return rng.choices(words, weights=weights, k=1)[0]
