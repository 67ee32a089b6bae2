"""ConSERT (Yan et al., ACL 2021): contrastive learning on views made at BERT's embedding layer instead of dropout."""

from __future__ import annotations

from csim.encoders.embedding_views import check_view, encode_view
from csim.errors import CsimError
from csim.modules.sentence import SentenceModule


class ConSERTModule(SentenceModule):
    """SentenceModule whose two views of a sentence are made inside the encoder: view 1 with `view1` (rate1), view 2
    with `view2` (rate2), each one of none | shuffle | token_cutoff | feature_cutoff | span
    (csim/encoders/embedding_views.py). The data's two views are the sentence itself (augment=dropout); each view is
    encoded in its own forward pass (they need different hooks). ConSERT's unsupervised recipe: feature cutoff 0.2 on
    view 1, token shuffling on view 2, dropout off (the experiment sets encoder.dropout=0). Evaluation and export use
    the plain encoder (no view)."""

    def __init__(self, encoder, loss, view1: str = "feature_cutoff", rate1: float = 0.2, view2: str = "shuffle",
                 rate2: float = 0.0, **kwargs):
        super().__init__(encoder, loss, **kwargs)
        if self.encoder2 is not None:
            raise CsimError("module.two_encoders=true does not combine with module=consert; choose one.")
        if not hasattr(encoder, "model") or not hasattr(getattr(encoder, "model"), "embeddings"):
            raise CsimError(f"module=consert makes its views in a transformer's embedding layer; the encoder "
                            f"{type(encoder).__name__} has none. Use encoder=bert or encoder=mini_bert.")
        self.views = [check_view(view1, rate1, "module.view1"), check_view(view2, rate2, "module.view2")]

    def embed_views(self, batch):
        tokens, v = batch["tokens"], batch["n_views"]
        n = tokens["input_ids"].shape[0] // v
        chunks = [{k: t[i * n:(i + 1) * n] for k, t in tokens.items()} for i in range(v)]
        out = []
        for i, chunk in enumerate(chunks):
            op, rate = self.views[i] if i < len(self.views) else ("none", 0.0)
            out.append(encode_view(self.encoder, chunk, op, rate))
        return out
