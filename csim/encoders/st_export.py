"""Export a TransformerEncoder as a sentence-transformers folder (modules.json + one folder per module), so that
`SentenceTransformer(path).encode(...)` gives the embeddings csim evaluated, with no conversion step.

The Hugging Face weights, config and tokenizer sit at the folder's root (module 0, the Transformer); the modules after
it reproduce csim's evaluation-time pooler (the forward with head=False):
  cls, cls_before_pooler       Pooling(cls)                          [CLS] of the last layer
  cls + mlp=always             Pooling(cls) -> Dense(d, d, Tanh)     SimCSE's MLP, kept at evaluation (supervised)
  mean                         Pooling(mean)                         masked mean of the last layer
  first_last_avg               WeightedLayerPooling(layers 1..L with weights 1, 0, ..., 0, 1) -> Pooling(mean):
                               the mean of (first layer + last layer) / 2, which needs the transformer to return its
                               hidden states, so config.json gets output_hidden_states=true.
Only plain JSON and safetensors are written (sentence-transformers is not needed to export); the pooling config keeps
the long-standing `pooling_mode_*` keys that every sentence-transformers release reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

_POOLING = {"cls": "cls", "cls_before_pooler": "cls", "mean": "mean", "first_last_avg": "mean"}


def _dump(path: Path, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path))


def write_sentence_transformers(folder: Path, encoder) -> None:
    """Add the sentence-transformers files to `folder`, which already holds the encoder's HF model and tokenizer."""
    folder = Path(folder)
    d = encoder.dim
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]

    def add(kind: str, sub: str) -> Path:
        i = len(modules)
        modules.append({"idx": i, "name": str(i), "path": f"{i}_{sub}", "type": f"sentence_transformers.models.{kind}"})
        (folder / f"{i}_{sub}").mkdir(exist_ok=True)
        return folder / f"{i}_{sub}"

    if encoder.pooler == "first_last_avg":
        n_layers = int(encoder.model.config.num_hidden_layers)
        weights = torch.zeros(n_layers)
        weights[0] = weights[-1] = 1.0  # hidden_states[1] (first layer) and hidden_states[-1] (last layer), halved
        sub = add("WeightedLayerPooling", "WeightedLayerPooling")
        _dump(sub / "config.json", {"word_embedding_dimension": d, "layer_start": 1, "num_hidden_layers": n_layers})
        _save_tensors(sub / "model.safetensors", {"layer_weights": weights})
        cfg_path = folder / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["output_hidden_states"] = True
        _dump(cfg_path, cfg)
    mode = _POOLING[encoder.pooler]
    sub = add("Pooling", "Pooling")
    _dump(sub / "config.json", {"word_embedding_dimension": d, "pooling_mode_cls_token": mode == "cls",
                                "pooling_mode_mean_tokens": mode == "mean", "pooling_mode_max_tokens": False,
                                "pooling_mode_mean_sqrt_len_tokens": False})
    if encoder.mlp is not None and encoder.mlp_mode == "always":
        lin = encoder.mlp[0]
        sub = add("Dense", "Dense")
        _dump(sub / "config.json", {"in_features": lin.in_features, "out_features": lin.out_features, "bias": True,
                                    "activation_function": "torch.nn.modules.activation.Tanh"})
        _save_tensors(sub / "model.safetensors", {"linear.weight": lin.weight, "linear.bias": lin.bias})
    _dump(folder / "modules.json", modules)
    _dump(folder / "sentence_bert_config.json", {"max_seq_length": encoder.eval_max_length, "do_lower_case": False})
    _dump(folder / "config_sentence_transformers.json", {"similarity_fn_name": "cosine"})
