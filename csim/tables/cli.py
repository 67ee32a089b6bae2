"""`csim tables`: the command line of the table runner (csim.tables.runner)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from csim.config import CONF_DIR
from csim.errors import CsimError
from csim.runs.lock import RunLock
from csim.tables.runner import run_tables
from csim.tables.spec import load_specs


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        seeds = []
    if not seeds or len(set(seeds)) != len(seeds):
        raise CsimError(f"--seeds {text!r}: give distinct integers separated by commas, e.g. --seeds 42,43,44.")
    return seeds


def _scale_seeds(scale: str) -> str:
    """The scale's default seeds for tables (`table_seeds:` in conf/scale/<scale>.yaml; 42 when it has none)."""
    import yaml

    seeds = (yaml.safe_load((CONF_DIR / "scale" / f"{scale}.yaml").read_text()) or {}).get("table_seeds") or [42]
    return ",".join(str(s) for s in seeds)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="csim tables", description="Regenerate the paper tables (conf/tables/*.yaml) "
                                "next to the published numbers; finished cells are reused (see csim/tables/runner.py).")
    p.add_argument("--scale", help="paper | cpu | smoke (default: paper with a GPU, cpu without)")
    p.add_argument("--seeds", default=None, help="comma-separated seeds; several give mean ± sd and significance "
                   "(default: the scale's table_seeds in conf/scale/<scale>.yaml: 42,43,44 at cpu, 42 elsewhere)")
    p.add_argument("--table", action="append", help="run only this table (repeatable, or comma-separated)")
    p.add_argument("--tables-dir", default=str(CONF_DIR / "tables"), help="folder of table specs")
    p.add_argument("--results-dir", default="results/tables",
                   help="outputs go to <results-dir>/<scale>/ (default results/tables)")
    p.add_argument("--dry-run", action="store_true", help="show what each cell would do; run nothing")
    p.add_argument("--no-train", action="store_true",
                   help="write the tables from finished rows only (records, run directories); train nothing")
    p.add_argument("--jobs", type=int, default=1,
                   help="cells trained side by side, each in its own process with threads/jobs torch threads "
                        "(default 1; 2 on a 2-core CPU finishes the cpu tables ~1.4x sooner; keep 1 on one GPU)")
    p.add_argument("--print-commands", action="store_true",
                   help="print every cell as a `csim train` command line (for any scheduler); run nothing")
    p.add_argument("overrides", nargs="*",
                   help="extra Hydra overrides for every run (e.g. paths.output_root=...); hydra/launcher=NAME and "
                        "hydra.launcher.KEY=VALUE send the cells through that Hydra launcher (submitit_slurm, "
                        "submitit_local, joblib, ray; pip install -e '.[cluster]')")
    args = p.parse_args(argv)
    try:
        scale = args.scale
        if scale is None:
            import torch

            scale = "paper" if torch.cuda.is_available() else "cpu"
        scales = sorted(q.stem for q in (CONF_DIR / "scale").glob("*.yaml"))
        if scale not in scales:
            raise CsimError(f"--scale {scale!r} is not a scale; choose one of {', '.join(scales)} (conf/scale/).")
        for o in args.overrides:
            if ("=" not in o and not o.startswith("~")) or o.split("=", 1)[0].lstrip("+~") in ("scale", "seed", "exp"):
                raise CsimError(f"extra override {o!r}: give key=value overrides; scale, seed and the experiment "
                                f"are set with --scale, --seeds and the table specs.")
        if args.jobs < 1:
            raise CsimError(f"--jobs {args.jobs}: give the number of cells to train side by side, 1 or more.")
        for o in args.overrides:
            key, _, value = o.partition("=")
            if key.lstrip("+") == "threads" and not (value.isdigit() and int(value) >= 1):
                raise CsimError(f"extra override {o!r}: threads is the number of torch threads of each run, a whole "
                                f"number of 1 or more (e.g. threads=1).")
        from csim.tables.launch import split_launcher

        run_overrides, launcher = split_launcher(list(args.overrides))
        if launcher and not any(o.lstrip("+").startswith("hydra/launcher=") for o in launcher):
            raise CsimError(f"{' '.join(launcher)}: hydra.* options go to a Hydra launcher; choose one with "
                            f"hydra/launcher=submitit_slurm | submitit_local | joblib | ray.")
        names = [n for arg in args.table or [] for n in arg.split(",") if n]
        specs = load_specs(args.tables_dir, names or None)
        with RunLock(Path(args.results_dir) / scale, enabled=not args.dry_run, what="tables results folder"):
            summary = run_tables(specs, scale, _seeds(args.seeds or _scale_seeds(scale)), Path(args.results_dir),
                                 run_overrides, dry_run=args.dry_run, no_train=args.no_train, jobs=args.jobs,
                                 launcher=launcher, print_commands=args.print_commands,
                                 # a plain run's timing.md is the budget record; a run of named tables writes its own
                                 timing_name=f"timing_{'_'.join(names)}.md" if names else "timing.md")
    except CsimError as e:
        print(f"csim: error: {e}", file=sys.stderr)
        sys.exit(2)
    if summary.failed:
        sys.exit(1)
