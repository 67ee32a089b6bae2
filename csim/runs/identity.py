"""A run's identity: the part of its resolved config that determines its results, its hash, and its directory
<output_root>/runs/<name>-<hash>; plus the fingerprint of a model folder csim built itself."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf


def model_fingerprint(folder: str) -> str:
    """${model_fingerprint:DIR}: a digest of a model folder's config and weights, so that a run's identity (its
    directory, a committed table row) changes when a model built by csim itself (the mini encoder) is rebuilt."""
    root = Path(folder)
    files = sorted(p for p in root.glob("*") if p.suffix in (".json", ".safetensors", ".bin", ".txt"))
    if not files:
        return "missing"
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]



def identity(cfg: DictConfig) -> dict:
    """The part of the resolved config that determines a run's results."""
    c = OmegaConf.to_container(cfg, resolve=True)
    for key in cfg.get("run_identity_exclude", []):
        parts = key.split(".")
        node = c
        for p in parts[:-1]:
            node = node.get(p, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(parts[-1], None)
    c.pop("run_identity_exclude", None)
    c.pop("scales", None)
    return _drop_nulls(c)


def _drop_nulls(node):
    """Null-valued keys do not enter the identity, so adding a new optional (null by default) setting to the configs
    leaves existing runs' hashes, and so their run directories and committed table rows, valid."""
    if isinstance(node, dict):
        return {k: _drop_nulls(v) for k, v in node.items() if v is not None}
    if isinstance(node, list):
        return [_drop_nulls(v) for v in node]
    return node


def config_hash(cfg: DictConfig) -> str:
    blob = json.dumps(identity(cfg), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def run_dir_for(cfg: DictConfig) -> Path:
    return Path(cfg.paths.output_root) / "runs" / f"{cfg.name}-{config_hash(cfg)}"


