"""Entry points: `csim train [hydra overrides]`, `csim eval MODEL`, `csim compare RUN_DIRS`, `csim tables`.

Heavy libraries (torch, Lightning, transformers, datasets, Hydra) are imported only by the command that needs them,
so `csim --help` and `csim eval --help` answer at once.
"""

from __future__ import annotations

import os
import sys

USAGE = """usage: csim [-v] <command> [args]

  train [overrides]    train one run (Hydra app: +exp=NAME, scale=paper|cpu|smoke, key=value; -m sweeps,
                       --cfg job shows the config that will run, --help lists the config groups)
  eval MODEL           STS12-16, STS-B and SICK-R for a model name/path, sentence-transformers folder or run directory
  compare RUN_DIR...   mean ± sd over seeds per setting, with Welch's t-test against a baseline setting
  tables               regenerate the paper tables (conf/tables/*.yaml) next to the published numbers

  -v, --verbose        show the libraries' own output (Lightning tips, datasets progress bars, load reports)

Tab completion for `csim train` overrides (bash): eval "$(csim train -sc install=bash)"
"""
COMMANDS = ("train", "eval", "compare", "tables")
SWEEP_FAILURES: list[str] = []  # the overrides of `-m` jobs refused with a CsimError; the sweep goes on past them


_ARGV: list[str] = []  # the program `csim train` was started as (sys.argv[0])


def _train_app():
    """The Hydra app behind `csim train`, built on first use (importing Hydra takes a while)."""
    import hydra
    from omegaconf import DictConfig

    from csim.config import CONF_DIR, install_scale_layer

    install_scale_layer()  # every config Hydra composes (run, sweep job, --cfg, --info) gets the scale layer

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
    def _train(cfg: DictConfig) -> float | None:
        from hydra.core.hydra_config import HydraConfig

        from csim.errors import CsimError
        from csim.train import train

        # Hydra has parsed the command line: make sys.argv this run's own `csim train` command (in a -m sweep, this
        # job's overrides), which Lightning's subprocess launcher (trainer.devices=N) re-executes for ranks 1..N-1
        # (`python -m csim.__main__ train ...` or `<bin>/csim train ...`)
        if _ARGV:
            sys.argv = [_ARGV[0], "train", *HydraConfig.get().overrides.task]
        try:
            metrics = train(cfg)
        except Exception as e:  # noqa: BLE001 - a CsimError may arrive wrapped (hydra's InstantiationException)
            cause = e
            while cause is not None and not isinstance(cause, CsimError):
                cause = cause.__cause__
            if cause is None:
                raise
            print(f"csim: error: {cause}", file=sys.stderr, flush=True)
            from hydra.types import RunMode

            if HydraConfig.get().mode == RunMode.MULTIRUN:  # as Hydra does with a failing job: report it, run the rest
                SWEEP_FAILURES.append(" ".join(HydraConfig.get().overrides.task))
                return None
            sys.exit(2)
        return metrics.get(next((k for k in metrics if k.startswith("best_")), ""), None)

    return _train


def _complete(argv: list[str]) -> None:
    """`-sc query=bash` from Hydra's completion script: COMP_LINE is `csim train ...`; Hydra completes the overrides
    once the subcommand is out of the line, and the subcommands themselves are completed here."""
    line = os.environ.get("COMP_LINE", "")
    words = line.split()
    if any(a.startswith("query") for a in argv) and (len(words) < 2 or words[1] != "train"
                                                      or (len(words) == 2 and not line.endswith(" "))):
        prefix = words[1] if len(words) >= 2 and not line.endswith(" ") else ""
        print(" ".join(c for c in COMMANDS if c.startswith(prefix)))
        return
    if words[1:2] == ["train"]:
        os.environ["COMP_LINE"] = " ".join([words[0], *words[2:]]) + (" " if line.endswith(" ") else "")
    sys.argv = [sys.argv[0], *argv]
    _train_app()()


def main(argv: list[str] | None = None) -> None:
    from csim import verbosity

    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-v", "--verbose") for a in argv):
        verbosity.set_verbose(True)
        argv = [a for a in argv if a not in ("-v", "--verbose")]
    verbosity.configure()
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return
    if argv[0] in ("-sc", "--shell-completion"):
        _complete(argv)
        return
    cmd, rest = argv[0], argv[1:]
    if cmd == "train":
        # argv[0] stays the executable's own name: Hydra's completion script registers itself for it
        _ARGV[:] = sys.argv[:1]
        sys.argv = [sys.argv[0], *rest]
        _train_app()()
        if SWEEP_FAILURES:
            print(f"csim: error: {len(SWEEP_FAILURES)} sweep job(s) failed (see above): {'; '.join(SWEEP_FAILURES)}",
                  file=sys.stderr)
            sys.exit(2)
    elif cmd == "eval":
        from csim.evaluation.cli import main as eval_main

        eval_main(rest)
    elif cmd == "compare":
        from csim.runs.compare import main as compare_main

        compare_main(rest)
    elif cmd == "tables":
        from csim.tables.cli import main as tables_main

        tables_main(rest)
    else:
        print(f"csim: unknown command {cmd!r}\n\n{USAGE}", file=sys.stderr)
        sys.exit(2)
