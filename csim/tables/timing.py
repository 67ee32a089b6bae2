"""timing.md of `csim tables`: where one invocation's time went (span of its runs, phases per table, one line per run,
the CPU), the record of the cpu tables' 2-hour budget."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from csim.runs.files import git_commit, write_text_atomic
from csim.tables.report import PHASES, fmt_duration


@dataclass
class RunTime:
    """One run behind a table cell, for the invocation's timing report."""
    table: str
    cell: str                 # row (and column) label
    seed: int
    how: str                  # trained | reused run directory | reused record
    run_dir: str | None
    wall_seconds: float
    finished_at: str | None   # metrics.json finished_at (ISO 8601)
    timing: dict

    @classmethod
    def of(cls, spec, task, out) -> RunTime:
        """The run behind one cell outcome of csim.tables.runner."""
        cell = task.row.label + (f" [{task.column.label}]" if spec.multi_column else "")
        return cls(spec.name, cell, task.seed, out.how, out.run_dir, out.wall_seconds,
                   out.metrics.get("finished_at"), out.metrics.get("timing") or {})


def _when(iso: str | None) -> float | None:
    from datetime import datetime

    try:
        return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S%z").timestamp() if iso else None
    except ValueError:
        return None


def timing_markdown(runs: list[RunTime], *, scale: str, seeds: list[int], tables: list[str], jobs: int,
                    threads: int | None, invocation_seconds: float, cpu: str) -> str:
    """Where the time of one `csim tables` invocation went: the span of its runs (first start to last finish, from
    each run's finished_at - wall_seconds, so a later --no-train collection reports the training run's span), the
    runs' summed phases per table, and one line per run. A run shared by two tables counts once in the totals."""
    distinct = list({(r.run_dir or f"{r.table}/{r.cell}/{r.seed}"): r for r in runs}.values())
    trained = [r for r in distinct if r.how == "trained"]  # records reused from earlier invocations would stretch
    ends = [(_when(r.finished_at), r.wall_seconds) for r in (trained or distinct)]  # the span back to their day
    ends = [(e, w) for e, w in ends if e is not None]
    fmt = "%Y-%m-%d %H:%M UTC"
    lines = [f"# Where the time of `csim tables --scale {scale}` went", "",
             f"Tables: {', '.join(tables)}; seeds {', '.join(map(str, seeds))}; {len(distinct)} distinct runs "
             f"(a run shared by two tables counts once), "
             + (f"{jobs} trained at a time" + (f" with {threads} torch thread(s) each" if threads else "")
                if any(r.how == "trained" for r in distinct) else "none trained by this invocation (it collected "
                "finished runs; the span below is theirs)")
             + f". Machine: {cpu}. Written by "
             f"`csim tables` (csim/tables/report.py) at commit {git_commit()}, "
             f"{time.strftime('%Y-%m-%d %H:%M %Z')}.", "", "| | |", "|---|---|"]
    if ends:
        first, last = min(e - w for e, w in ends), max(e for e, _ in ends)
        lines.append(f"| span of the runs | {time.strftime(fmt, time.gmtime(first))} to "
                     f"{time.strftime(fmt, time.gmtime(last))}: **{fmt_duration(last - first)}** (first start to "
                     f"last finish{' of the runs trained here' if trained else ''}, from each run's "
                     f"metrics.json) |")
    hows = {h: sum(r.how == h for r in distinct) for h in sorted({r.how for r in distinct})}
    lines += [f"| runs | {', '.join(f'{n} {h}' for h, n in hows.items())} |",
              f"| sum of the runs' wall time | {fmt_duration(sum(r.wall_seconds for r in distinct))} |",
              f"| this invocation | {fmt_duration(invocation_seconds)} |", "",
              "Seconds by phase (csim/runs/timing.py; a resumed run counts every process it ran in):", "",
              "| table | runs | mean wall per run | " + " | ".join(PHASES) + " |",
              "|---|---|---|" + "---|" * len(PHASES)]

    def row(name: str, rs: list[RunTime]) -> str:
        sums = [sum(float(r.timing.get(k, 0.0)) for r in rs) for k in PHASES]
        mean = statistics.fmean(r.wall_seconds for r in rs) if rs else 0.0
        return f"| {name} | {len(rs)} | {mean:,.0f} s | " + " | ".join(f"{v:,.0f}" for v in sums) + " |"

    for t in tables:
        lines.append(row(t, [r for r in runs if r.table == t]))
    total = [float(sum(r.timing.get(k, 0.0) for r in distinct)) for k in PHASES]
    share = sum(total) or 1.0
    lines += [row("all (distinct runs)", distinct),
              "| share of all | | | " + " | ".join(f"{100 * v / share:.0f}%" for v in total) + " |", "",
              "Per run:", "", "| table | cell | seed | how | wall | " + " | ".join(PHASES) + " |",
              "|---|---|---|---|---|" + "---|" * len(PHASES)]
    for r in runs:
        lines.append(f"| {r.table} | {r.cell} | {r.seed} | {r.how} | {r.wall_seconds:,.0f} s | "
                     + " | ".join(f"{float(r.timing.get(k, 0.0)):,.0f}" for k in PHASES) + " |")
    return "\n".join(lines) + "\n"


def write_timing(path: Path, runs: list[RunTime], **kwargs) -> Path:
    from csim.runs.hardware import cpu_text

    write_text_atomic(path, timing_markdown(runs, cpu=cpu_text(), **kwargs))
    return path
