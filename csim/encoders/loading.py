"""Turn a MODEL argument into a csim encoder (something with encode/score_pairs) with the pooling it was made for.

MODEL may be
  - a csim run directory (`outputs/runs/<name>-<hash>/` with config.yaml and model/): its model/ folder;
  - a folder csim exported (csim_pooler.json: pooler, MLP mode, max length; csim_mlp.pt: the MLP weights), or a
    PromptBERT export (csim_prompt.json: templates, MLP mode; its embedding is the template's [MASK] state);
  - a sentence-transformers folder (modules.json: Transformer -> [WeightedLayerPooling] -> Pooling -> [Dense] ->
    [Normalize]); its pooling and max_seq_length are read from it;
  - a Hugging Face model folder or hub name (the hub when reachable, else its local cache); a hub name that is a
    sentence-transformers model is read as one. A plain HF model says nothing about pooling: `pooler` must be given.
Every case is a csim.encoders.transformer.TransformerEncoder, so `csim eval` and training-time evaluation share one
encoding path (SentenceEncoder.encode).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from csim.encoders.transformer import POOLERS, TransformerEncoder, usable_length
from csim.errors import CsimError


@dataclass
class LoadedModel:
    encoder: TransformerEncoder
    kind: str  # csim_run | csim_export | sentence_transformers | huggingface
    folder: str  # the folder the weights were read from
    pooler: str
    mlp: str
    max_length: int
    run_dir: str | None = None
    notes: list[str] = field(default_factory=list)

    def describe(self) -> dict:
        return {"kind": self.kind, "folder": self.folder, "run_dir": self.run_dir, "pooler": self.pooler,
                "mlp": self.mlp, "max_length": self.max_length, "notes": self.notes}


def is_run_dir(path: Path) -> bool:
    return (path / "config.yaml").is_file() and (path / "model").is_dir()


def _local_folder(name: str) -> Path:
    """A local folder for `name`: itself when it is a folder, else a snapshot from the hub (or the HF cache offline)."""
    p = Path(name).expanduser()
    if p.is_dir():
        return p
    from csim.hub import hub_reachable, resolve_model

    resolve_model(name, field="MODEL")  # the offline message when it cannot be had
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(name, local_files_only=not hub_reachable()))


def _json(path: Path, what: str) -> dict | list:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CsimError(f"{path}: cannot read the {what} ({e}); restore the file or re-export the model.") from None


def _max_length_default(enc: TransformerEncoder) -> int:
    """The longest input the model takes: the smaller of the tokenizer's model_max_length and the model's
    max_position_embeddings (whichever are set; csim.encoders.transformer.usable_length), else 512."""
    n = usable_length(enc.model, enc.tokenizer, 99_999)
    return n if n < 99_999 else 512


def _st_pooling(folder: Path) -> tuple[Path, str, str, int | None, Path | None, list[str]]:
    """Read a sentence-transformers folder -> (transformer folder, csim pooler, mlp mode, max_seq_length, Dense folder,
    notes). Only the module chains that a csim pooler reproduces are accepted."""
    modules = _json(folder / "modules.json", "sentence-transformers module list")
    kinds = [(str(m.get("type", "")).rsplit(".", 1)[-1], folder / m.get("path", "")) for m in modules]
    notes: list[str] = []
    if not kinds or kinds[0][0] != "Transformer":
        raise CsimError(f"{folder / 'modules.json'}: the first module is {kinds[0][0] if kinds else 'missing'}, not a "
                        f"Transformer; csim evaluates transformer sentence encoders only.")
    tdir = kinds[0][1]
    sb = tdir / "sentence_bert_config.json"
    sbc = _json(sb, "sentence-transformers config") if sb.is_file() else {}
    if sbc.get("do_lower_case"):
        raise CsimError(f"{sb}: do_lower_case=true (sentence-transformers lower-cases inputs before its tokenizer), "
                        f"which csim's encoder does not do; evaluate the model with sentence-transformers, or give an "
                        f"uncased tokenizer.")
    layer_weights, mode, dense = None, None, None
    for kind, path in kinds[1:]:
        if kind == "WeightedLayerPooling" and mode is None and layer_weights is None:
            cfg = _json(path / "config.json", "WeightedLayerPooling config")
            from safetensors.torch import load_file

            w = load_file(str(path / "model.safetensors"))["layer_weights"] if (path / "model.safetensors").is_file() \
                else torch.load(path / "pytorch_model.bin", weights_only=True)["layer_weights"]
            layer_weights = (int(cfg.get("layer_start", 4)), w.tolist())
        elif kind == "Pooling" and mode is None:
            cfg = _json(path / "config.json", "pooling config")
            modes = cfg.get("pooling_mode")
            if modes is None:
                modes = [m for m, key in (("cls", "pooling_mode_cls_token"), ("max", "pooling_mode_max_tokens"),
                                          ("mean", "pooling_mode_mean_tokens"),
                                          ("mean_sqrt_len_tokens", "pooling_mode_mean_sqrt_len_tokens"),
                                          ("weightedmean", "pooling_mode_weightedmean_tokens"),
                                          ("lasttoken", "pooling_mode_lasttoken")) if cfg.get(key)]
            modes = [modes] if isinstance(modes, str) else list(modes)
            if len(modes) != 1 or modes[0] not in ("cls", "mean"):
                raise CsimError(f"{path / 'config.json'}: pooling {modes} has no csim pooler (csim pools with cls, "
                                f"mean or first_last_avg); evaluate it with sentence-transformers instead.")
            mode = modes[0]
        elif kind == "Dense" and mode == "cls" and dense is None:
            dense = path
        elif kind == "Normalize":
            notes.append("Normalize module ignored: cosine similarity does not change under normalisation")
        else:
            raise CsimError(f"{folder / 'modules.json'}: module {kind} (at {path}) has no csim equivalent in this "
                            f"position; csim reproduces Transformer -> [WeightedLayerPooling] -> Pooling(cls|mean) -> "
                            f"[Dense(Tanh) after cls] -> [Normalize].")
    if mode is None:
        raise CsimError(f"{folder / 'modules.json'}: no Pooling module; csim needs to know how to pool tokens.")
    pooler = mode
    if layer_weights is not None:
        start, w = layer_weights
        if not (start == 1 and mode == "mean" and w[0] > 0 and w[-1] == w[0] and all(x == 0 for x in w[1:-1])):
            raise CsimError(f"{folder}: a WeightedLayerPooling other than first+last layer average (layer_start=1, "
                            f"weights 1,0,...,0,1) has no csim pooler.")
        pooler = "first_last_avg"
    mlp = "none"
    if dense is not None:
        cfg = _json(dense / "config.json", "Dense config")
        if (not str(cfg.get("activation_function", "")).endswith("Tanh") or not cfg.get("bias", True)
                or cfg.get("in_features") != cfg.get("out_features")):
            raise CsimError(f"{dense / 'config.json'}: only a Dense(d, d, bias, Tanh) after cls pooling (SimCSE's "
                            f"MLP) has a csim equivalent.")
        mlp = "always"
    return tdir, pooler, mlp, sbc.get("max_seq_length"), dense, notes


def _dense_state(dense: Path) -> dict[str, torch.Tensor]:
    if (dense / "model.safetensors").is_file():
        from safetensors.torch import load_file

        sd = load_file(str(dense / "model.safetensors"))
    else:
        sd = torch.load(dense / "pytorch_model.bin", weights_only=True)
    return {"0.weight": sd["linear.weight"], "0.bias": sd["linear.bias"]}


def load_model(model: str, pooler: str | None = None, max_length: int | None = None) -> LoadedModel:
    """MODEL -> LoadedModel. `pooler` overrides the model's own pooling (a note says so); `max_length` its maximum
    input length (default: what the model was saved with, else the longest input it takes)."""
    if pooler is not None and pooler not in POOLERS:
        raise CsimError(f"--pooler {pooler!r}: choose one of {', '.join(POOLERS)}.")
    folder = _local_folder(model)
    run_dir = None
    if is_run_dir(folder):
        run_dir, folder = str(folder), folder / "model"
    notes: list[str] = []
    mlp_state = None
    if (folder / "csim_prompt.json").is_file():
        return _load_prompt(folder, run_dir, pooler, max_length)
    if (folder / "csim_pooler.json").is_file():
        info = _json(folder / "csim_pooler.json", "csim pooler config")
        kind, tdir = ("csim_run" if run_dir else "csim_export"), folder
        own_pooler, mlp, saved_len = info["pooler"], info.get("mlp", "none"), info.get("max_length")
        if own_pooler == "cls" and mlp == "always":
            if not (folder / "csim_mlp.pt").is_file():
                raise CsimError(f"{folder}: csim_pooler.json says mlp=always but csim_mlp.pt is missing; re-export it.")
            mlp_state = torch.load(folder / "csim_mlp.pt", weights_only=True)
        else:
            mlp = "none"  # train_only: the MLP is not part of the evaluated encoder
    elif (folder / "modules.json").is_file():
        kind = "sentence_transformers"
        tdir, own_pooler, mlp, saved_len, dense, notes = _st_pooling(folder)
        if dense is not None:
            mlp_state = _dense_state(dense)
    elif (folder / "config.json").is_file():
        kind, tdir, own_pooler, mlp, saved_len = "huggingface", folder, None, "none", None
        if pooler is None:
            raise CsimError(f"{model} is a plain Hugging Face model: it does not say how its tokens are pooled into a "
                            f"sentence embedding. Give --pooler ({', '.join(POOLERS)}); e.g. SimCSE checkpoints use "
                            f"cls_before_pooler (unsupervised), average BERT uses mean.")
    elif run_dir is None and (folder / "config.yaml").is_file():
        raise CsimError(f"{folder} is a csim run directory without a model/ folder: the run has not finished (or its "
                        f"encoder is not a transformer). Finish it with `csim train` (the same command resumes it).")
    else:
        raise CsimError(f"{folder}: not a csim run directory (config.yaml + model/), a sentence-transformers folder "
                        f"(modules.json) nor a Hugging Face model folder (config.json).")
    if pooler is not None and pooler != own_pooler:
        if own_pooler is not None:
            notes.append(f"pooler {pooler} given on the command line; the model was saved with {own_pooler}")
        if not (pooler == "cls" and mlp_state is not None):
            mlp, mlp_state = "none", None
    use_pooler = pooler or own_pooler
    limit = int(max_length or saved_len or 512)  # evaluation only: training and evaluation lengths are one here
    enc = TransformerEncoder(model_name=str(tdir), pooler=use_pooler, mlp="always" if mlp_state is not None else "none",
                             dropout=None, max_length=limit, eval_max_length=limit)
    if mlp_state is not None:
        enc.mlp.load_state_dict(mlp_state)
    if not (max_length or saved_len):
        enc.max_length = enc.eval_max_length = _max_length_default(enc)
    enc.eval()
    return LoadedModel(enc, kind, str(tdir), use_pooler, enc.mlp_mode if enc.mlp is not None else "none",
                       enc.eval_max_length, run_dir, notes)


def _load_prompt(folder: Path, run_dir: str | None, pooler: str | None, max_length: int | None) -> LoadedModel:
    """A PromptBERT export (csim.encoders.prompt.PromptEncoder.save): the first template's [MASK] state, as in
    training-time evaluation; no other pooler applies to it."""
    from csim.encoders.prompt import PromptEncoder

    info = _json(folder / "csim_prompt.json", "PromptBERT config")
    if pooler is not None and pooler != "mask":
        raise CsimError(f"{folder / 'csim_prompt.json'}: a PromptBERT model's embedding is its template's [MASK] state, "
                        f"so --pooler {pooler} does not apply; leave --pooler out.")
    mlp = info.get("mlp", "train_only")
    if mlp == "always" and not (folder / "csim_mlp.pt").is_file():
        raise CsimError(f"{folder}: csim_prompt.json says mlp=always but csim_mlp.pt is missing; re-export it.")
    enc = PromptEncoder(model_name=str(folder), templates=info["templates"], mlp=mlp, dropout=None,
                        max_length=int(max_length or info.get("eval_max_length") or 512),
                        eval_max_length=max_length or info.get("eval_max_length"))
    if mlp == "always":
        enc.mlp.load_state_dict(torch.load(folder / "csim_mlp.pt", weights_only=True))
    enc.eval()
    return LoadedModel(enc, "csim_run" if run_dir else "csim_export", str(folder), "mask",
                       mlp if mlp == "always" else "none", enc.eval_max_length, run_dir,
                       [f"PromptBERT template: {info['templates'][0]}"])
