"""Entry points: `csim train [hydra overrides]`, `csim eval MODEL`, `csim tables`."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from csim.errors import CsimError

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")
USAGE = """usage: csim <command> [args]

  train [overrides]   train one run (Hydra app: +exp=NAME, scale=paper|cpu|smoke, key=value, -m for sweeps)
  eval MODEL          STS12-16, STS-B and SICK-R for a model name/path, sentence-transformers folder or run directory
  tables              regenerate the paper tables (conf/tables/*.yaml) next to the published numbers
"""
SWEEP_FAILURES: list[str] = []  # the overrides of `-m` jobs refused with a CsimError; the sweep goes on past them


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def _train(cfg: DictConfig) -> float | None:
    from csim.config import apply_scale
    from csim.train import train

    try:
        hc = HydraConfig.get()
        apply_scale(cfg, hc.overrides.task, dict(hc.runtime.choices))
        metrics = train(cfg)
    except Exception as e:  # noqa: BLE001 - a CsimError may arrive wrapped (hydra's InstantiationException)
        cause = e
        while cause is not None and not isinstance(cause, CsimError):
            cause = cause.__cause__
        if cause is None:
            raise
        print(f"csim: error: {cause}", file=sys.stderr, flush=True)
        if HydraConfig.get().mode == RunMode.MULTIRUN:  # as Hydra does with a failing job: report it, run the rest
            SWEEP_FAILURES.append(" ".join(HydraConfig.get().overrides.task))
            return None
        sys.exit(2)
    return metrics.get(next((k for k in metrics if k.startswith("best_")), ""), None)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return
    cmd, rest = argv[0], argv[1:]
    if cmd == "train":
        sys.argv = ["csim train", *rest]
        _train()
        if SWEEP_FAILURES:
            print(f"csim: error: {len(SWEEP_FAILURES)} sweep job(s) failed (see above): {'; '.join(SWEEP_FAILURES)}",
                  file=sys.stderr)
            sys.exit(2)
    elif cmd == "eval":
        from csim.evaluation.cli import main as eval_main

        eval_main(rest)
    elif cmd == "tables":
        from csim.tables.cli import main as tables_main

        tables_main(rest)
    else:
        print(f"csim: unknown command {cmd!r}\n\n{USAGE}", file=sys.stderr)
        sys.exit(2)
