"""Shared test helpers: compose a config exactly as `csim train` does and run it in-process (no 12 s re-import)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "offline")

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
DATA = Path(os.environ.get("CSIM_DATA_DIR", ROOT / "data")).resolve()


def compose(overrides: list[str], output_root: Path | None = None, cache_dir: Path | None = None):
    """Compose conf/ with `overrides` and apply the scale layer, as the CLI does."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from csim.config import apply_scale

    extra = [f"paths.data_dir={DATA}"]
    if output_root is not None:
        extra.append(f"paths.output_root={output_root}")
    if cache_dir is not None:
        extra.append(f"paths.cache_dir={cache_dir}")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = hydra_compose("config", overrides=list(overrides) + extra, return_hydra_config=True)
    choices = dict(cfg.hydra.runtime.choices)
    from omegaconf import open_dict

    with open_dict(cfg):
        del cfg["hydra"]
    return apply_scale(cfg, list(overrides) + extra, choices)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One datasets/tokenizer cache for the whole session (tokenizers are trained once)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def run_smoke(tmp_path, cache_dir):
    """run_smoke(["+exp=simcse_unsup", ...]) -> metrics dict; runs at scale=smoke in a temporary output root."""

    def _run(overrides: list[str], output_root: Path | None = None):
        from csim.train import train

        cfg = compose(["scale=smoke", *overrides], output_root or tmp_path / "outputs", cache_dir)
        return train(cfg)

    return _run
