"""Export a TransformerEncoder as a sentence-transformers folder (modules.json + Pooling config), so that
`SentenceTransformer(path).encode(...)` gives the embeddings csim evaluated, with no conversion step."""

from __future__ import annotations

import json
from pathlib import Path

_MODE = {"cls": "cls", "cls_before_pooler": "cls", "mean": "mean", "first_last_avg": None}


def write_sentence_transformers(folder: Path, encoder) -> None:
    mode = _MODE[encoder.pooler]
    if mode is None:
        return  # sentence-transformers has no first-last-average pooling; the HF folder is still written
    d = encoder.dim
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    (folder / "1_Pooling").mkdir(exist_ok=True)
    with open(folder / "1_Pooling" / "config.json", "w") as f:
        json.dump({"word_embedding_dimension": d, "pooling_mode_cls_token": mode == "cls",
                   "pooling_mode_mean_tokens": mode == "mean", "pooling_mode_max_tokens": False,
                   "pooling_mode_mean_sqrt_len_tokens": False}, f, indent=2)
    if encoder.mlp is not None and encoder.mlp_mode == "always":
        import torch
        from safetensors.torch import save_file

        (folder / "2_Dense").mkdir(exist_ok=True)
        with open(folder / "2_Dense" / "config.json", "w") as f:
            json.dump({"in_features": d, "out_features": d, "bias": True,
                       "activation_function": "torch.nn.modules.activation.Tanh"}, f)
        lin = encoder.mlp[0]
        save_file({"linear.weight": lin.weight.detach().contiguous(), "linear.bias": lin.bias.detach().contiguous()},
                  str(folder / "2_Dense" / "model.safetensors"))
        modules.append({"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    with open(folder / "modules.json", "w") as f:
        json.dump(modules, f, indent=2)
    with open(folder / "sentence_bert_config.json", "w") as f:
        json.dump({"max_seq_length": encoder.max_length, "do_lower_case": False}, f)
