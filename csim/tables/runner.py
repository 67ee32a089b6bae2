"""`csim tables`: regenerate the paper tables (conf/tables/*.yaml) next to the published numbers.

Each cell of a table (a row, times a column where the table has columns, times a seed) is one run, composed with
`csim.config.compose_run(["+exp=<exp>", *row overrides, *column overrides, "scale=<scale>", "seed=<seed>"])` and
run in this process with `csim.train.train` (one import for the whole table). Reuse, cheapest first:
  1. a result record with the same config hash (`portable_hash`: csim.runs.identity.config_hash, independent of this
     machine's folders): results/tables/<scale>/<table>/rows/<row>[--<column>]-seed<seed>.json (small, committed;
     so a fresh clone, here or elsewhere, resumes from the committed rows without running anything). A record of
     another table with the same hash (e.g. unsup SimCSE, a row of three tables) is reused too;
  2. a finished run directory (metrics.json): `train` returns it without recomputing;
  3. otherwise the run trains (resuming from its last checkpoint when it was interrupted).
Records are written atomically as soon as a cell finishes, so a killed runner loses at most the cell it was running.
`--jobs N` trains the cells that need training N at a time (csim/tables/parallel.py: two-stage cells after their
first stage, the longest chains first), each in its own process with `threads` / N torch threads
(on this 2-core CPU, two 1-thread runs side by side computed all four cpu tables in 1h01m, against about 1.5 h one
2-thread run at a time; on one GPU leave it at 1). `threads` is not part of a run's identity: the records are the same
cells either way (a different thread count can change the sums' order in the GEMMs, so figures may differ slightly).
A cell that fails (an experiment that does not exist yet, a CsimError) is shown as failed with its reason and the
runner goes on; the exit status is 1 when any cell failed. Outputs per table: csim/tables/report.py.
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from csim.config import CONF_DIR
from csim.errors import CsimError
from csim.runs.files import shown_dir, write_json_atomic
from csim.tables.parallel import first_line as _first_line, log as _log, train_in_parallel
from csim.tables.report import CellResult, describe_config, fmt_duration, write_table
from csim.tables.timing import RunTime, write_timing
from csim.tables.spec import Column, Row, TableSpec, slug


SCALE_TABLES = ("scale.set", "scale.by_choice")  # applied by csim.config.apply_scale; their effect is in the values


@dataclass
class Task:
    """One (row, column, seed) of a table, composed (or failed to compose) before anything runs."""
    spec: TableSpec
    row: Row
    column: Column
    seed: int
    record_path: Path
    overrides: list[str]
    cfg: object = None
    config_hash: str | None = None
    error: str | None = None
    action: str = "train"           # skip | failed | record | duplicate | run_dir | train
    reuse: dict | None = None       # the matching record


@dataclass
class Outcome:
    value: float | None = None
    run_dir: str | None = None
    wall_seconds: float = 0.0
    error: str | None = None
    commit: str | None = None
    how: str = ""
    metrics: dict = field(default_factory=dict)  # the run's metrics.json (7-task average, timing)


@dataclass
class Summary:
    counts: dict = field(default_factory=dict)
    failed: int = 0
    outputs: list = field(default_factory=list)


def portable_hash(cfg) -> str:
    """`config_hash` of the config with every `run_identity_exclude` key (paths, threads, ...) replaced by a placeholder
    before resolving: values interpolated from them (encoder.data_dir: ${paths.data_dir}, model_name:
    ${paths.mini_encoder}) then do not tie a record to one machine's folders, and a clone elsewhere (other
    CSIM_DATA_DIR or CSIM_CACHE_DIR) still finds it. The scale's own tables (scale.set, scale.by_choice) are left out
    too: they have already been applied to the values that count, so an edit for another config group (a new
    by_choice entry) does not orphan every committed record. The run directory keeps its own hash (run_dir_for)."""
    from omegaconf import DictConfig, OmegaConf, open_dict

    from csim.runs.identity import config_hash

    def placeholders(value, name):
        return {k: placeholders(v, f"{name}.{k}") for k, v in value.items()} if isinstance(value, dict) else f"<{name}>"

    c = copy.deepcopy(cfg)  # DictConfig.copy() is shallow: nested updates would reach the caller's config
    with open_dict(c):
        # a content digest (the mini encoder's files) is read where the folders are, before they are blanked:
        # the same model elsewhere gives the same record, a rebuilt one another
        if c.get("model_fingerprint") is not None:
            c.model_fingerprint = str(cfg.model_fingerprint)
        for key in c.get("run_identity_exclude", []):  # same shape, so ${paths.data_dir} still resolves
            node = OmegaConf.select(c, key, default=None, throw_on_resolution_failure=False)
            value = OmegaConf.to_container(node, resolve=False) if isinstance(node, DictConfig) else None
            OmegaConf.update(c, key, placeholders(value, key), merge=False, force_add=True)
        for key in SCALE_TABLES:
            OmegaConf.update(c, key, f"<{key}>", merge=False, force_add=True)
    return config_hash(c)


def _records(scale_dir: Path) -> dict[str, dict]:
    """Every readable record under results/tables/<scale>/, by config hash."""
    index = {}
    for p in sorted(scale_dir.glob("*/rows/*.json")):
        try:
            rec = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # a damaged record is as good as none: the cell runs again and rewrites it
        if isinstance(rec, dict) and rec.get("config_hash"):
            index.setdefault(rec["config_hash"], {**rec, "_path": str(p)})
    return index


def plan(specs: list[TableSpec], scale: str, seeds: list[int], results_dir: Path, extra: list[str],
         index: dict[str, dict] | None = None) -> list[Task]:
    """Compose every cell and decide what it needs (see the module docstring); `index`: the records by hash."""
    from omegaconf import open_dict

    from csim.config import compose_run
    from csim.runs.identity import run_dir_for
    from csim.runs.files import read_metrics

    index = _records(results_dir / scale) if index is None else index
    tasks, first_of = [], {}
    for spec in specs:
        rows_dir = results_dir / scale / spec.name / "rows"
        for seed in seeds:
            for row in spec.rows:
                for col in spec.columns:
                    name = slug(row.label) + (f"--{slug(col.key)}" if spec.multi_column else "")
                    t = Task(spec, row, col, seed, rows_dir / f"{name}-seed{seed}.json",
                             [f"+exp={row.exp}", *row.overrides, *col.overrides, f"scale={scale}", f"seed={seed}"])
                    tasks.append(t)
                    if not row.runs_at(scale):
                        t.action = "skip"
                        continue
                    if not (CONF_DIR / "exp" / f"{row.exp}.yaml").exists():
                        t.action = "failed"
                        t.error = f"experiment {row.exp!r} does not exist (no conf/exp/{row.exp}.yaml)"
                        continue
                    try:
                        t.cfg = compose_run([*t.overrides, *extra])
                        t.config_hash = portable_hash(t.cfg)
                        with open_dict(t.cfg):  # labels for the loggers (W&B tags, the row); not in the identity
                            t.cfg.tracking.table, t.cfg.tracking.row = spec.name, name
                    except Exception as e:  # noqa: BLE001 - a row that does not compose is reported, not fatal
                        t.action, t.error = "failed", _first_line(e)
                        continue
                    rec = index.get(t.config_hash)
                    if rec is not None and spec.metric in rec.get("metrics", {}):
                        t.action, t.reuse = "record", rec
                    elif t.config_hash in first_of:
                        t.action = "duplicate"
                    elif read_metrics(run_dir_for(t.cfg)) is not None:
                        t.action = "run_dir"
                    first_of.setdefault(t.config_hash, t)
    return tasks


def _record(t: Task, metrics: dict) -> dict:
    from csim.runs.identity import config_hash, identity

    metrics = {**metrics, "run_dir": shown_dir(metrics.get("run_dir"))}
    return {
        "table": t.spec.name, "row": t.row.label, "column": t.column.key if t.spec.multi_column else None,
        "exp": t.row.exp, "overrides": [*t.row.overrides, *t.column.overrides], "scale": t.cfg.scale.name,
        "seed": t.seed, "config_hash": t.config_hash, "run_hash": config_hash(t.cfg), "metric": t.spec.metric,
        "value": metrics.get(t.spec.metric), "run_dir": metrics.get("run_dir"),
        "git_commit": metrics.get("git_commit"), "finished_at": metrics.get("finished_at"),
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "wall_seconds": metrics.get("wall_seconds"),
        "metrics": {k: v for k, v in metrics.items() if k != "history"},
        "config": identity(t.cfg),
    }


def execute(t: Task, index: dict[str, dict], fresh: set[str] = frozenset()) -> Outcome:
    """Run (or reuse) one cell; write its record; never raises except on KeyboardInterrupt. `fresh`: the config
    hashes trained by this invocation's parallel workers (reported as trained, not as reused)."""
    from csim.train import train

    if t.action in ("skip", "failed"):
        return Outcome(error=t.error, how=t.action)
    rec = t.reuse or (index.get(t.config_hash) if t.action == "duplicate" else None)
    if rec is not None and t.spec.metric in rec.get("metrics", {}):
        if Path(rec["_path"]) != t.record_path:  # another table's record: keep a copy under this table
            write_json_atomic(t.record_path, {**{k: v for k, v in rec.items() if k != "_path"},
                                              "table": t.spec.name, "row": t.row.label,
                                              "column": t.column.key if t.spec.multi_column else None,
                                              "metric": t.spec.metric, "value": rec["metrics"][t.spec.metric]})
        m = rec["metrics"]
        return Outcome(m[t.spec.metric], shown_dir(m.get("run_dir")), float(m.get("wall_seconds") or 0), None,
                       m.get("git_commit"), "reused record", m)
    from csim.runs.identity import run_dir_for
    from csim.runs.files import read_metrics

    finished_before = read_metrics(run_dir_for(t.cfg)) is not None
    try:
        metrics = train(t.cfg)
        if t.spec.metric not in metrics:
            raise CsimError(f"the run's metrics.json has no {t.spec.metric!r} (it has {sorted(metrics)}); fix the "
                            f"table's metric or the experiment's eval settings.")
    except Exception as e:  # noqa: BLE001 - one failing row must not stop the table
        if not isinstance(e, CsimError):
            traceback.print_exc(file=sys.stderr)
        return Outcome(error=_first_line(e), how="failed")
    rec = _record(t, metrics)
    write_json_atomic(t.record_path, rec)
    index[t.config_hash] = {**rec, "_path": str(t.record_path)}
    how = "reused run directory" if finished_before and t.config_hash not in fresh else "trained"
    return Outcome(metrics[t.spec.metric], shown_dir(metrics.get("run_dir")), float(metrics.get("wall_seconds") or 0),
                   None, metrics.get("git_commit"), how, metrics)


def _summed_timing(metrics: list[dict]) -> dict[str, float]:
    out: dict[str, float] = {}
    for m in metrics:
        for k, v in (m.get("timing") or {}).items():
            out[k] = out.get(k, 0.0) + float(v)
    return out


def run_tables(specs: list[TableSpec], scale: str, seeds: list[int], results_dir: Path, extra: list[str],
               dry_run: bool = False, no_train: bool = False, jobs: int = 1, launcher: list[str] = (),
               print_commands: bool = False, timing_name: str = "timing.md") -> Summary:
    """launcher: Hydra launcher overrides (hydra/launcher=..., hydra.launcher.*): the cells to train go through it
    (csim.tables.launch), then the tables are collected from the run directories. print_commands: print each cell
    as a `csim train` command line and run nothing. timing_name: results/tables/<scale>/<it> (csim/tables/timing.py)."""
    t_start = time.time()
    index = _records(results_dir / scale)
    tasks = plan(specs, scale, seeds, results_dir, extra, index)
    if print_commands:
        from csim.tables.launch import commands

        return print("\n".join(commands(tasks, extra)), flush=True) or Summary()
    prior = [float(r["wall_seconds"]) for r in index.values() if r.get("wall_seconds")]
    to_train = sum(t.action == "train" for t in tasks)
    by = {a: sum(t.action == a for t in tasks) for a in ("train", "run_dir", "record", "duplicate", "skip", "failed")}
    _log(f"[tables] scale={scale} seeds={','.join(map(str, seeds))}: {len(tasks)} cells in {len(specs)} table(s): "
         f"{by['train']} to train, {by['record'] + by['duplicate']} from records or shared with another row, "
         f"{by['run_dir']} finished run directories, {by['skip']} paper-scale only, {by['failed']} failing")
    summary = Summary()
    if dry_run:
        for t in tasks:
            _log(f"  {t.spec.name} | {t.row.label}{' | ' + t.column.label if t.spec.multi_column else ''} | "
                 f"seed {t.seed} | {t.action}{': ' + t.error if t.error else ''} | {t.config_hash or ''}")
        return summary
    fresh, threads = set(), None
    if launcher and not no_train:  # the cells go through a Hydra launcher; then collected as with --no-train
        from csim.tables.launch import launch_and_collect

        fresh, no_train = launch_and_collect(tasks, extra, list(launcher), _log), True
    elif jobs > 1 and not no_train:
        threads = next((int(o.split("=", 1)[1]) for o in extra if o.split("=", 1)[0].lstrip("+") == "threads"),
                       None) or max(1, _cores() // jobs)
        by_exp: dict[str, list[float]] = {}
        for r in index.values():
            if r.get("wall_seconds") and r.get("exp"):
                by_exp.setdefault(r["exp"], []).append(float(r["wall_seconds"]))
        fresh = train_in_parallel(tasks, jobs, threads,
                                  prior_seconds={e: statistics.fmean(v) for e, v in by_exp.items()})
        for t in tasks:  # finished by a worker: the sequential pass reads its run directory (and the ETA skips it)
            if t.action == "train" and t.config_hash in fresh:
                t.action = "run_dir"
    to_train = sum(t.action == "train" for t in tasks)
    trained: list[float] = []
    run_times: list[RunTime] = []
    done = 0
    for spec in specs:
        t_table = time.time()
        outcomes: dict[tuple[str, str], list[tuple[int, Outcome]]] = {}
        for t in (t for t in tasks if t.spec is spec):
            # --no-train writes the tables from what exists; the rest (and copies of it in other rows) is marked missing
            if no_train and (t.action == "train" or (t.action == "duplicate" and t.config_hash not in index)):
                out = Outcome(error="not computed yet (make reproduce-tables computes it)", how="missing")
            else:
                out = execute(t, index, fresh)
            done += 1
            if out.how == "trained":
                trained.append(out.wall_seconds)
            to_train -= t.action == "train"
            outcomes.setdefault((t.row.label, t.column.key), []).append((t.seed, out))
            if out.metrics and out.error is None:
                run_times.append(RunTime.of(spec, t, out))
            summary.counts[out.how] = summary.counts.get(out.how, 0) + 1
            per_run = statistics.fmean(trained or prior) if (trained or prior) else None
            eta = "ETA 0s" if to_train == 0 else (f"ETA {fmt_duration(per_run * to_train)} ({to_train} to train)"
                                                  if per_run else f"ETA unknown ({to_train} to train)")
            if out.how == "skip":
                what = f"not run (paper scale only; scale={scale})"
            elif out.error is not None:
                what = f"FAILED: {out.error}"
            else:
                what = f"{out.value:.2f} {out.how}" + (f" in {fmt_duration(out.wall_seconds)}"
                                                       if out.how == "trained" else "")
            col = f" [{t.column.label}]" if spec.multi_column else ""
            _log(f"[tables] {done}/{len(tasks)} {spec.name}: {t.row.label}{col} seed {t.seed}: {what} | "
                 f"elapsed {fmt_duration(time.time() - t_start)} | {eta}")
        cells = []
        for row in spec.rows:
            for col in spec.columns:
                seeds_out = outcomes[(row.label, col.key)]
                cells.append(CellResult(
                    row=row.label, column=col.label if spec.multi_column else None,
                    paper=row.paper[col.key], paper_sd=row.paper_sd[col.key],
                    values=[o.value for _, o in seeds_out if o.value is not None],
                    run_dirs=[o.run_dir for _, o in seeds_out if o.run_dir],
                    wall_seconds=sum(o.wall_seconds for _, o in seeds_out),
                    commits=sorted({o.commit for _, o in seeds_out if o.commit}),
                    errors=[f"seed {s}: {o.error}" if len(seeds_out) > 1 else o.error
                            for s, o in seeds_out if o.error is not None and o.how != "skip"],
                    skipped=not row.runs_at(scale), notes=row.notes_at(scale), column_key=col.key,
                    avg7=[o.metrics["sts7_senteval_avg"] for _, o in seeds_out if "sts7_senteval_avg" in o.metrics],
                    timing=_summed_timing([o.metrics for _, o in seeds_out])))
        summary.failed += sum(bool(c.errors) for c in cells)
        cfgs = [t.cfg for t in tasks if t.spec is spec and t.cfg is not None]
        summary.outputs += write_table(spec, cells, results_dir / scale, scale=scale, seeds=seeds,
                                       setup=describe_config(cfgs), invocation_seconds=time.time() - t_table)
    if run_times:
        summary.outputs.append(write_timing(results_dir / scale / timing_name, run_times, scale=scale, seeds=seeds,
                                            tables=[s.name for s in specs], jobs=jobs, threads=threads,
                                            invocation_seconds=time.time() - t_start))
    _log(f"[tables] done in {fmt_duration(time.time() - t_start)}: "
        + ", ".join(f"{n} {k}" for k, n in sorted(summary.counts.items()))
        + (f"; {summary.failed} cell(s) failed" if summary.failed else "")
        + "".join(f"\n  {p}" for p in summary.outputs if str(p).endswith(".md")))
    return summary


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

