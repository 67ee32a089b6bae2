"""Where the cells of `csim tables` train: on this machine (a pool of worker processes, csim.tables.runner), through
any Hydra launcher (`hydra/launcher=submitit_slurm | submitit_local | joblib | ray`, with the launcher's own
`hydra.launcher.*` options), or as printed `csim train` command lines for any other scheduler.

Through a launcher, the cells to train go out in two waves, each one Hydra multirun of this module
(`python -m csim.tables.launch -m +csim_cells=<manifest.json> +csim_cell=0,1,...`): first every one-stage cell and
the first stage of every two-stage cell (init_from), then the two-stage cells, which find their first stage
finished. Each job composes its cell exactly as `csim train` would (csim.config.compose_run) and trains it into its
run directory; the runner then collects the finished run directories as `--no-train` does (a job that failed leaves
its cell missing; its log is in the launcher's folder under hydra.sweep.dir).

The local pool's workers (`--jobs N`) die with the runner (Linux: PR_SET_PDEATHSIG), so killing `csim tables`
leaves no process behind, and on a machine with several GPUs each worker gets its own (CUDA_VISIBLE_DEVICES).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from csim.config import CONF_DIR
from csim.runs.processes import die_with_parent

LAUNCHER_PREFIXES = ("hydra/", "hydra.", "+hydra.", "+hydra/")


def split_launcher(overrides: list[str]) -> tuple[list[str], list[str]]:
    """(run overrides, launcher overrides): `hydra/launcher=...` and `hydra.launcher.*=...` go to the launcher."""
    run = [o for o in overrides if not o.startswith(LAUNCHER_PREFIXES)]
    return run, [o for o in overrides if o.startswith(LAUNCHER_PREFIXES)]


def first_stage_dir(cfg) -> str:
    """The run directory of a two-stage cell's first stage (what csim.train.first_stage runs)."""
    from csim.config import compose_run, first_stage_overrides
    from csim.runs.identity import run_dir_for

    return str(run_dir_for(compose_run(first_stage_overrides(cfg))))


def waves(tasks, extra: list[str]) -> list[list[list[str]]]:
    """The cells that need training as override lists, in two waves: [one-stage cells and the first stages of the
    two-stage cells (each once), two-stage cells]."""
    from csim.config import first_stage_overrides
    from csim.runs.files import read_metrics
    from csim.runs.identity import run_dir_for

    todo = [t for t in tasks if t.action == "train"]
    first = [[*t.overrides, *extra] for t in todo if not t.cfg.get("init_from")]
    seen = {str(run_dir_for(t.cfg)) for t in tasks if t.cfg is not None}
    for t in todo:
        if t.cfg.get("init_from"):
            overrides = first_stage_overrides(t.cfg)
            run_dir = first_stage_dir(t.cfg)
            if run_dir not in seen and read_metrics(run_dir) is None:
                seen.add(run_dir)
                first.append(overrides)
    second = [[*t.overrides, *extra] for t in todo if t.cfg.get("init_from")]
    return [w for w in (first, second) if w]


def commands(tasks, extra: list[str]) -> list[str]:
    """Every composable cell as a `csim train` command line; two-stage cells after a comment line, as they need
    their first stage (which they train themselves when it is missing, so run them after the others finish)."""
    cells = [t for t in tasks if t.cfg is not None]
    one = [t for t in cells if not t.cfg.get("init_from")]
    two = [t for t in cells if t.cfg.get("init_from")]
    line = lambda t: shlex.join(["csim", "train", *t.overrides, *extra])  # noqa: E731
    out = [line(t) for t in one]
    if two:
        out.append("# two-stage cells: after the commands above (each reuses its first stage's run)")
        out += [line(t) for t in two]
    return out


def launch(wave_list: list[list[list[str]]], launcher: list[str], sweep_root: Path, log) -> None:
    """Run each wave as one Hydra multirun of this module through the launcher; waits for every job."""
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    for i, cells in enumerate(wave_list, 1):
        folder = sweep_root / f"tables_{stamp}" / f"wave{i}"
        folder.mkdir(parents=True, exist_ok=True)
        manifest = folder / "cells.json"
        manifest.write_text(json.dumps(cells, indent=1))
        cmd = [sys.executable, "-m", "csim.tables.launch", "-m", f"+csim_cells={manifest}",
               f"+csim_cell={','.join(map(str, range(len(cells))))}", f"hydra.sweep.dir={folder}", *launcher]
        log(f"[tables] wave {i}/{len(wave_list)}: {len(cells)} cell(s) through {' '.join(launcher)}")
        code = subprocess.run(cmd, preexec_fn=die_with_parent if sys.platform == "linux" else None).returncode
        if code:
            log(f"[tables] wave {i}: the launcher exited with status {code}; its cells are collected as they are")


def launch_and_collect(tasks, extra: list[str], launcher: list[str], log) -> set[str]:
    """Train the cells that need it through the launcher (two waves); mark those whose run finished as finished
    run directories (the runner collects them); returns their config hashes."""
    from csim.runs.files import read_metrics
    from csim.runs.identity import run_dir_for

    roots = sorted({str(t.cfg.paths.output_root) for t in tasks if t.cfg is not None}) or ["outputs"]
    launch(waves(tasks, extra), launcher, Path(roots[0]) / "hydra", log)
    fresh = set()
    for t in tasks:
        if t.action == "train" and read_metrics(run_dir_for(t.cfg)) is not None:
            t.action = "run_dir"
            fresh.add(t.config_hash)
    return fresh


def run_cell(cfg) -> str | None:
    """One Hydra job: train the cell `csim_cell` of the manifest `csim_cells`; the error, if any (a failed cell must
    not stop the sweep: the runner reports it as missing)."""
    from csim.config import compose_run
    from csim.train import train

    overrides = json.loads(Path(cfg.csim_cells).read_text())[int(cfg.csim_cell)]
    try:
        train(compose_run(overrides))
    except Exception as e:  # noqa: BLE001
        print(f"csim: cell {overrides}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        return str(e)
    return None


def init_worker(parent: int, devices) -> None:
    """A local pool worker: die with the runner, and take one GPU from `devices` (a queue) when there are several."""
    die_with_parent()
    if os.getppid() != parent:  # the runner died before the line above ran
        os._exit(1)
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(devices.get())


def gpu_queue(jobs: int, ctx):
    """A queue of the GPU ids the `jobs` workers take, round-robin over the visible GPUs; None with fewer than 2."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        import torch

        count = torch.cuda.device_count()
    except Exception:  # noqa: BLE001
        count = 0
    ids = [i.strip() for i in visible.split(",") if i.strip()] if visible else [str(i) for i in range(count)]
    ids = ids[:count] if count else []
    if len(ids) < 2:
        return None
    q = ctx.Queue()
    for i in range(jobs):
        q.put(ids[i % len(ids)])
    return q


if __name__ == "__main__":
    import hydra

    from csim.config import install_scale_layer
    from csim.tables.launch import run_cell as _job  # by its module name, so launchers pickle it by reference

    install_scale_layer()  # before the app: the config loader Hydra creates for it (and compose_run reuses) is scaled

    hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")(_job)()
