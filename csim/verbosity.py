"""Quiet by default, everything with `-v`: what the libraries csim drives print on their own.

Quiet hides Lightning's banners and tips ("GPU available", "💡 Tip"), the progress bars of `datasets.map` and of
weight writing, W&B's banners, transformers' load reports (the "LOAD REPORT" table printed when an exported model is loaded) and a
few known library deprecation notices. It keeps warnings and errors, csim's own lines and one progress bar per long
phase (Lightning's training bar, with its ETA, where the scale enables it). `csim -v ...` (or CSIM_VERBOSE=1, which
worker processes inherit) shows everything.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

ENV = "CSIM_VERBOSE"
_LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric")
# library notices about the libraries' own internals, not about the user's run
_NOISE = (r".*isinstance\(treespec, LeafSpec\).*", r".*does not have many workers.*")


def verbose() -> bool:
    return os.environ.get(ENV, "0") not in ("0", "", "false", "False")


def set_verbose(on: bool) -> None:
    os.environ[ENV] = "1" if on else "0"


def configure() -> None:
    """Apply the verbosity to the libraries; call before they print (again after importing Lightning, whose import
    sets its own logger to INFO)."""
    if verbose():
        return
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # read by `datasets` at import
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("WANDB_SILENT", "true")  # csim prints one line per W&B run itself (csim.runs.tracking)
    if "datasets" in sys.modules:  # already imported: the environment variable came too late
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
    if "transformers" in sys.modules:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    for name in _LIGHTNING_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in _NOISE:
        warnings.filterwarnings("ignore", message=pattern)
