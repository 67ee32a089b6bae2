"""PromptBERT's encoder (Jiang et al., "PromptBERT: Improving BERT Sentence Embeddings with Prompts", EMNLP 2022): the
sentence is placed in a template and the last-layer state of the template's [MASK] token is its embedding (§4, "prompt
based sentence embeddings"); template denoising (§5) subtracts the [MASK] state of the template alone.

Transcribed from the official code (kongds/Prompt-BERT, prompt_bert/models.py): `sentemb_forward` inserts the
template's tokens around the sentence's ([CLS] prefix sentence suffix [SEP]) and pools `last_hidden[input_ids ==
mask_token_id]`; `cl_forward`'s `get_delta` runs [CLS] prefix suffix [SEP] alone with the position ids the template
tokens have around a sentence of n tokens (`d_position_ids[:, len(prefix) + 1:] += n`), with gradient, and subtracts
that state from the [MASK] state of each view (each view with its own template), before the MLP.
"""

from __future__ import annotations

import json

import torch

from csim.encoders.base import right_padded
from csim.encoders.transformer import NO_LIMIT, TransformerEncoder, usable_length
from csim.errors import CsimError
from csim.runs.files import atomic_dir

SENTENCE = "{sentence}"


class PromptEncoder(TransformerEncoder):
    """A BERT whose embedding is the [MASK] state of `templates[0]` filled with the sentence (evaluation and export;
    training views may use the other templates and denoising, csim/modules/prompt_bert.py).

    templates: strings with one "{sentence}" and one [MASK] (the tokenizer's mask token), e.g.
        'This sentence of "{sentence}" means [MASK] .'   (PromptBERT's run.sh, unsup-bert TEMPLATE)
    mlp: the Linear+Tanh head over the [MASK] state: train_only (--mlp_only_train), always or none.
    Other fields as TransformerEncoder (model_name, dropout, max_length: the sentence's own tokens, before the
    template is added; random_init, tokenizer). The packed forward does not apply (HF's padded forward runs).
    """

    def __init__(self, templates: list[str] | None = None, mlp: str = "train_only", **kwargs):
        kwargs.pop("pooler", None)
        kwargs["unpad"] = False
        super().__init__(pooler="cls", mlp=mlp, **kwargs)  # "cls" builds SimCSE's head; the pooling is below
        self.pooler = "mask"
        self.templates = list(templates or ['This sentence of "{sentence}" means [MASK] .'])
        self.parts = [self._parse(t, f"encoder.templates[{i}]") for i, t in enumerate(self.templates)]
        # the template's tokens sit around the sentence's: a sentence may keep only the positions the longest template
        # leaves free (the cpu-scale mini encoder has 64 positions; BERT-base's 512 leave every STS sentence whole)
        extra = max(len(pre) + len(suf) for pre, suf, _ in self.parts)
        room = usable_length(self.model, self.tokenizer, NO_LIMIT) - extra
        if room < 3:
            raise CsimError(f"encoder.templates: a template takes {extra} of the model's "
                            f"{room + extra} positions, leaving no room for a sentence; use a shorter template.")
        self.max_length, self.eval_max_length = min(self.max_length, room), min(self.eval_max_length, room)

    def _parse(self, template: str, field: str) -> tuple[list[int], list[int], int]:
        """(prefix ids, suffix ids, index of [MASK] in the suffix) of a template, without special tokens."""
        tok, mask = self.tokenizer, self.tokenizer.mask_token
        if template.count(SENTENCE) != 1 or template.count(mask) != 1 or template.index(mask) < template.index(SENTENCE):
            raise CsimError(f"{field}={template!r}: a template has one {SENTENCE} and, after it, one {mask} (the "
                            f"tokenizer's mask token), e.g. 'This sentence of \"{SENTENCE}\" means {mask} .'.")
        prefix, suffix = template.split(SENTENCE)
        pre = tok(prefix.strip(), add_special_tokens=False)["input_ids"] if prefix.strip() else []
        suf = tok(suffix.strip(), add_special_tokens=False)["input_ids"]
        return pre, suf, suf.index(tok.mask_token_id)

    def wrap(self, batch: dict[str, torch.Tensor], template: int = 0):
        """The batch's sentences ([CLS] s [SEP], right-padded) in template `template`: (input_ids, attention_mask,
        sentence lengths n, [MASK] positions)."""
        ids, am = batch["input_ids"], batch["attention_mask"]
        pre, suf, moff = self.parts[template]
        lens = (am.sum(1) - 2).clamp(min=0).tolist()
        rows = [ids[b, :1].tolist() + pre + ids[b, 1:1 + n].tolist() + suf + ids[b, 1 + n:2 + n].tolist()
                for b, n in enumerate(lens)]
        out = right_padded(rows, self.tokenizer.pad_token_id or 0)
        positions = torch.tensor([1 + len(pre) + n + moff for n in lens])
        return out["input_ids"].to(ids.device), out["attention_mask"].to(ids.device), lens, positions.to(ids.device)

    def template_state(self, template: int, lens: list[int]) -> torch.Tensor:
        """[len(lens), d]: the [MASK] state of [CLS] prefix suffix [SEP] alone, its suffix and [SEP] at the positions
        they have after a sentence of n tokens (PromptBERT's template denoising, get_delta)."""
        pre, suf, moff = self.parts[template]
        tok = self.tokenizer
        ids = torch.tensor([tok.cls_token_id] + pre + suf + [tok.sep_token_id], device=self.device)
        distinct = sorted(set(lens))
        pos = torch.arange(len(ids), device=self.device).repeat(len(distinct), 1)
        pos[:, len(pre) + 1:] += torch.tensor(distinct, device=self.device)[:, None]
        out = self.model(input_ids=ids.repeat(len(distinct), 1), position_ids=pos).last_hidden_state
        delta = out[:, 1 + len(pre) + moff]
        return delta[[distinct.index(n) for n in lens]]

    def forward(self, batch: dict[str, torch.Tensor], head: bool = False, template: int = 0,
                denoise: bool = False) -> torch.Tensor:
        ids, am, lens, positions = self.wrap(batch, template)
        states = self.model(input_ids=ids, attention_mask=am).last_hidden_state
        h = states[torch.arange(len(lens), device=ids.device), positions]
        if denoise:
            h = h - self.template_state(template, lens)
        return self._head(h, head)

    def save(self, directory) -> None:
        """A Hugging Face folder (config, weights, tokenizer) and csim_prompt.json (templates, MLP mode, max length).
        No sentence-transformers folder: its poolers have no template [MASK] state; `csim eval` loads it
        (csim.encoders.loading)."""
        with atomic_dir(directory) as tmp:
            self.model.save_pretrained(str(tmp))
            self.tokenizer.save_pretrained(str(tmp))
            with open(tmp / "csim_prompt.json", "w") as f:
                # eval_max_length: the sentence's tokens read at evaluation (every token); max_length: training's cut
                json.dump({"pooler": "mask", "templates": self.templates, "mlp": self.mlp_mode,
                           "max_length": self.max_length, "eval_max_length": self.eval_max_length}, f)
            if self.mlp is not None:
                torch.save(self.mlp.state_dict(), tmp / "csim_mlp.pt")
