"""Entry points: `csim train [hydra overrides]`, `csim eval MODEL`, `csim tables`."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from csim.errors import CsimError

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")
USAGE = """usage: csim <command> [args]

  train [overrides]   train one run (Hydra app: +exp=NAME, scale=paper|cpu|smoke, key=value, -m for sweeps)
  eval MODEL          STS12-16, STS-B and SICK-R for a model name/path, sentence-transformers folder or run directory
  tables              regenerate the paper tables (conf/tables/*.yaml) next to the published numbers
"""


_ARGV: list[str] = []  # the program `csim train` was started as (sys.argv[0])


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def _train(cfg: DictConfig) -> float | None:
    from csim.config import apply_scale
    from csim.train import train

    hc = HydraConfig.get()
    # Hydra has parsed the command line: make sys.argv this run's own `csim train` command (in a -m sweep, this job's
    # overrides), which Lightning's subprocess launcher (trainer.devices=N) re-executes for ranks 1..N-1
    # (`python -m csim.__main__ train ...` or `<bin>/csim train ...`)
    if _ARGV:
        sys.argv = [_ARGV[0], "train", *hc.overrides.task]
    try:
        apply_scale(cfg, hc.overrides.task, dict(hc.runtime.choices))
        metrics = train(cfg)
    except Exception as e:  # noqa: BLE001 - a CsimError may arrive wrapped (hydra's InstantiationException)
        cause = e
        while cause is not None and not isinstance(cause, CsimError):
            cause = cause.__cause__
        if cause is None:
            raise
        print(f"csim: error: {cause}", file=sys.stderr, flush=True)
        sys.exit(2)
    return metrics.get(next((k for k in metrics if k.startswith("best_")), ""), None)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return
    cmd, rest = argv[0], argv[1:]
    if cmd == "train":
        _ARGV[:] = sys.argv[:1]
        sys.argv = ["csim train", *rest]  # what Hydra parses (and shows as the program in its --help)
        _train()
    elif cmd == "eval":
        from csim.evaluation.cli import main as eval_main

        eval_main(rest)
    elif cmd == "tables":
        from csim.tables.cli import main as tables_main

        tables_main(rest)
    else:
        print(f"csim: unknown command {cmd!r}\n\n{USAGE}", file=sys.stderr)
        sys.exit(2)
