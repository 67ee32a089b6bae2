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
    from csim.config import compose_run

    # threads=1: tiny smoke models gain nothing from 2 threads, which slow down 3-10x when another process is busy
    extra = [f"paths.data_dir={DATA}", "threads=1"]
    if output_root is not None:
        extra.append(f"paths.output_root={output_root}")
    if cache_dir is not None:
        extra.append(f"paths.cache_dir={cache_dir}")
    return compose_run(extra + list(overrides))  # the test's own overrides win


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
