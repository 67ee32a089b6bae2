"""PromptBERT's unsupervised objective (Jiang et al., EMNLP 2022, §5): the same sentence in two different templates is
the positive pair, each view's [MASK] state denoised by its own template's state (csim/encoders/prompt.py)."""

from __future__ import annotations

from csim.errors import CsimError
from csim.modules.sentence import SentenceModule


class PromptBERTModule(SentenceModule):
    """SentenceModule whose view k is embedded in the encoder's template k (`view_templates`, default [0, 1]: the
    official --mask_embedding_sentence_template for view 1 and --mask_embedding_sentence_different_template for
    view 2), with template denoising when `denoise` (--mask_embedding_sentence_delta). The data's two views are the
    sentence itself (augment=dropout; dropout stays on, as in the official training). Evaluation and export use
    template 0 without denoising (the official unsup-bert evaluation flags)."""

    def __init__(self, encoder, loss, view_templates: list[int] | None = None, denoise: bool = True, **kwargs):
        super().__init__(encoder, loss, **kwargs)
        if not hasattr(encoder, "templates"):
            raise CsimError(f"module=prompt_bert needs a template encoder (encoder=prompt_bert), not "
                            f"{type(encoder).__name__}.")
        if self.encoder2 is not None:
            raise CsimError("module.two_encoders=true does not combine with module=prompt_bert; choose one.")
        self.view_templates = list(view_templates if view_templates is not None else [0, 1])
        bad = [t for t in self.view_templates if not (isinstance(t, int) and 0 <= t < len(encoder.templates))]
        if bad:
            raise CsimError(f"module.view_templates={self.view_templates}: each entry is an index into "
                            f"encoder.templates (which has {len(encoder.templates)}).")
        self.denoise = bool(denoise)

    def embed_views(self, batch):
        tokens, v = batch["tokens"], batch["n_views"]
        n = tokens["input_ids"].shape[0] // v
        out = []
        for i in range(v):
            chunk = {k: t[i * n:(i + 1) * n] for k, t in tokens.items()}
            template = self.view_templates[min(i, len(self.view_templates) - 1)]
            out.append(self.encoder(chunk, head=True, template=template, denoise=self.denoise))
        return out
