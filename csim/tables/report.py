"""The outputs of `csim tables` for one table, under results/tables/<scale>/: <table>.md, <table>.csv and <table>.png.

Each has, per cell (row, or row x column): the paper value, the csim value (mean ± sample sd over the seeds that
finished, and their number), the difference csim - paper, the difference from the table's reference cell with Welch's
t-test over seeds (spec `reference`), the 7-task STS average where the runs tested all seven tasks, and the run
directories; the Markdown adds a header (scale, encoder, data, steps, precision, commit, date, wall time and where it
went by phase) and the rank agreement between the csim and paper columns (Spearman ρ and Kendall τ over the cells that
have both, on the seed means), which is what can be compared when the scale is not the paper's.
"""

from __future__ import annotations

import csv
import io
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from csim.runs.files import git_commit, write_text_atomic

MIN_RANK_CELLS = 3  # a rank correlation over fewer cells says nothing
ALPHA = 0.05        # significance level of the two-sided Welch's t-test against the reference cell
PHASES = ("startup", "build", "data", "dev_eval", "train", "test", "export")  # csim/runs/timing.py


@dataclass
class CellResult:
    row: str
    column: str | None
    paper: float | None
    paper_sd: float | None
    values: list[float] = field(default_factory=list)     # one per seed that finished
    run_dirs: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0
    commits: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)       # one line per failed seed
    skipped: bool = False                                  # paper-scale-only row at another scale
    notes: str | None = None
    column_key: str | None = None
    avg7: list[float] = field(default_factory=list)       # 7-task STS average per seed (runs that tested all seven)
    timing: dict = field(default_factory=dict)            # seconds per phase, summed over the seeds' runs

    @property
    def label(self) -> str:
        return self.row + (f" [{self.column}]" if self.column else "")

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def sd(self) -> float | None:
        return statistics.stdev(self.values) if len(self.values) > 1 else None

    @property
    def difference(self) -> float | None:
        return None if self.mean is None or self.paper is None else self.mean - self.paper

    @property
    def status(self) -> str:
        if self.skipped:
            return "paper scale only"
        if self.errors:
            return "failed" if not self.values else "partly failed"
        return "ok"


def fmt_duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def _decimals(values) -> int:
    got = [len(repr(float(v)).split(".")[1].rstrip("0")) for v in values if v is not None]
    return min(max(got, default=1), 2) or 1


def _num(v: float | None, decimals: int = 2, sign: bool = False) -> str:
    return "" if v is None else f"{v:+.{decimals}f}" if sign else f"{v:.{decimals}f}"


def rank_agreement(cells: list[CellResult]) -> dict:
    """Spearman ρ and Kendall τ between the paper and csim values of the cells that have both."""
    from scipy.stats import kendalltau, spearmanr

    pairs = [(c.paper, c.mean) for c in cells if c.paper is not None and c.mean is not None]
    out = {"n": len(pairs), "spearman": None, "kendall": None}
    if len(pairs) >= MIN_RANK_CELLS:
        paper, ours = zip(*pairs)
        for key, fn in (("spearman", spearmanr), ("kendall", kendalltau)):
            v = float(fn(paper, ours).statistic)
            out[key] = None if v != v else v  # NaN when a column is constant
    return out


def rank_text(r: dict) -> str:
    if r["n"] < MIN_RANK_CELLS:
        return f"n/a ({r['n']} cell(s) with both a paper and a csim value; at least {MIN_RANK_CELLS} needed)"
    if r["spearman"] is None:
        return f"n/a (one of the columns is constant over the {r['n']} cells)"
    return f"Spearman ρ = {r['spearman']:.2f}, Kendall τ = {r['kendall']:.2f} (over {r['n']} cells)"


def _mean_sd(values: list[float]) -> str:
    if not values:
        return ""
    return f"{statistics.fmean(values):.2f}" + (f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else "")


def reference_of(spec, cells: list[CellResult], cell: CellResult) -> CellResult | None:
    """The cell `cell` is compared with (spec.reference), or None (no reference, or it is the reference)."""
    ref = spec.reference or {}
    if "row" in ref:
        found = next((c for c in cells if c.row == ref["row"] and c.column_key == cell.column_key), None)
    elif "column" in ref:
        found = next((c for c in cells if c.row == cell.row and c.column_key == ref["column"]), None)
    else:
        found = None
    return None if found is cell else found


def welch(a: list[float], b: list[float]) -> float | None:
    """Two-sided p-value of Welch's t-test (unequal variances) between two sets of seed values; None when it is
    undefined (fewer than 2 values on a side, or no variance on either side)."""
    from scipy.stats import ttest_ind

    if len(a) < 2 or len(b) < 2 or (statistics.pvariance(a) == 0 and statistics.pvariance(b) == 0):
        return None
    p = float(ttest_ind(a, b, equal_var=False).pvalue)
    return None if p != p else p


def comparisons(spec, cells: list[CellResult]) -> dict[int, tuple[float, float | None]]:
    """id(cell) -> (mean difference from its reference cell, Welch p-value) for the cells that have both."""
    out = {}
    for c in cells:
        r = reference_of(spec, cells, c)
        if r is not None and c.values and r.values:
            out[id(c)] = (c.mean - r.mean, welch(c.values, r.values))
    return out


def _delta_text(d: float, p: float | None) -> str:
    if p is None:
        return f"{d:+.2f} (p n/a)"
    return f"{d:+.2f} (p={p:.3f}{', significant' if p < ALPHA else ''})"


def describe_config(cfgs) -> dict[str, str]:
    """Encoder, data and steps of the composed runs of a table (distinct values in order of appearance)."""
    from omegaconf import OmegaConf

    def get(cfg, key):
        try:
            return OmegaConf.select(cfg, key, default=None)
        except Exception:  # noqa: BLE001 - an unresolvable value is shown as unknown
            return None

    def encoder(cfg):
        name, ri = get(cfg, "encoder.model_name"), get(cfg, "encoder.random_init")
        if name:
            return str(name)
        if ri:
            return f"random-init BERT ({ri.get('num_hidden_layers')} layers, hidden {ri.get('hidden_size')})"
        return str(get(cfg, "encoder._target_") or "?").rsplit(".", 1)[-1]

    def data(cfg):
        files = get(cfg, "data.source.files")
        if files:
            return ", ".join(files) if not isinstance(files, str) else files
        return str(get(cfg, "data.source._target_") or get(cfg, "data._target_") or "?").rsplit(".", 1)[-1]

    def steps(cfg):
        s = get(cfg, "trainer.max_steps")
        return f"{s}" if s is not None and int(s) >= 0 else f"{get(cfg, 'trainer.max_epochs')} epoch(s)"

    out = {}
    for what, fn in (("encoder", encoder), ("data", data), ("steps", steps),
                     ("precision", lambda c: str(get(c, "trainer.precision")))):
        seen = list(dict.fromkeys(fn(c) for c in cfgs))
        out[what] = "; ".join(seen) if seen else "-"
    return out


def _markdown(spec, cells, scale, seeds, setup, rank, wall, invocation_seconds) -> str:
    src = spec.source or {}
    pd = _decimals([c.paper for c in cells] + [c.paper_sd for c in cells])
    has_paper = any(c.paper is not None for c in cells)
    has_avg7 = any(c.avg7 for c in cells)
    cmp = comparisons(spec, cells)
    commits = sorted({c for cell in cells for c in cell.commits})
    lines = [f"# {spec.title}", ""]
    if src.get("paper"):
        lines += [f"Paper: {src['paper']}, {src.get('table') or ''}; {src.get('split') or ''}; "
                  f"{src.get('metric') or ''}.", ""]
    elif src.get("split") or src.get("metric"):
        lines += [f"No paper column. {src.get('split') or ''}; {src.get('metric') or ''}.", ""]
    lines += [f"The csim column is `{spec.metric}` from each run's metrics.json (spec: `conf/tables/{spec.name}.yaml`; "
              f"regenerate: `make reproduce-tables SCALE={scale} TABLE={spec.name}`).", "",
              "| | |", "|---|---|",
              f"| scale | {scale} |", f"| encoder | {setup['encoder']} |", f"| data | {setup['data']} |",
              f"| steps | {setup['steps']} |", f"| precision | {setup.get('precision', '-')} |",
              f"| seeds | {', '.join(map(str, seeds))} |",
              f"| commit | {git_commit()} (tables written); runs: {', '.join(commits) or '-'} |",
              f"| date | {time.strftime('%Y-%m-%d %H:%M %Z')} |",
              f"| wall time | {fmt_duration(wall)} of runs (sum over the cells' runs); this invocation "
              f"{fmt_duration(invocation_seconds)} |", ""]
    phases = {k: sum(c.timing.get(k, 0.0) for c in cells) for k in PHASES}
    if any(phases.values()):
        lines += ["Where the runs' time went (seconds summed over every cell's runs, from metrics.json `timing`; "
                  "csim/runs/timing.py defines the phases): "
                  + ", ".join(f"{k} {v:,.0f}" for k, v in phases.items() if v) + ".", ""]
    if has_paper:
        lines += [f"Rank agreement between the csim and paper columns (seed means): {rank_text(rank)}.", ""]
    if spec.reference:
        what = (f"the row \"{spec.reference['row']}\"" if "row" in spec.reference
                else f"the same row's \"{next(c.label for c in spec.columns if c.key == spec.reference['column'])}\" cell")
        lines += [f"\"vs reference\": the csim mean minus that of {what}, and the two-sided p-value of Welch's t-test "
                  f"over the seeds; significant means p < {ALPHA}. With n = 3 seeds per cell only differences of "
                  f"several seed sds reach it.", ""]
    head = ["row"] + (["column"] if spec.multi_column else []) + (["paper"] if has_paper else []) + \
        ["csim (mean ± sd, n seeds)"] + (["difference"] if has_paper else []) + \
        (["vs reference"] if spec.reference else []) + (["7-task avg (SentEval)"] if has_avg7 else []) + \
        ["run directories"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    notes = []
    for c in cells:
        paper = "" if c.paper is None else _num(c.paper, pd) + (f" ± {_num(c.paper_sd, pd)}" if c.paper_sd else "")
        if c.skipped:
            ours = "not run (paper scale only)"
        elif not c.values:
            ours = "failed: " + "; ".join(c.errors)
        else:
            ours = f"{c.mean:.2f}" + (f" ± {c.sd:.2f}" if c.sd is not None else "") + f" (n={len(c.values)})"
            ours += "".join(f"; failed {e}" for e in c.errors)
        label = c.row.replace("|", "\\|")
        if c.notes:
            notes.append(c.notes)
            label += f" [{len(notes)}]"
        ref = ("reference" if reference_of(spec, cells, c) is None and c.values else
               _delta_text(*cmp[id(c)]) if id(c) in cmp else "")
        cols = [label] + ([c.column] if spec.multi_column else []) + ([paper] if has_paper else []) + \
            [ours.replace("|", "\\|")] + ([_num(c.difference, 2, sign=True)] if has_paper else []) + \
            ([ref] if spec.reference else []) + ([_mean_sd(c.avg7)] if has_avg7 else []) + \
            ["<br>".join(f"`{d}`" for d in c.run_dirs)]
        lines.append("| " + " | ".join(cols) + " |")
    lines.append("")
    lines += [f"[{i}] {n}" for i, n in enumerate(notes, 1)] + ([""] if notes else [])
    if spec.notes:
        lines += [" ".join(str(spec.notes).split()), ""]
    return "\n".join(lines)


def _csv(spec, cells) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["row", "column", "paper", "paper_sd", "csim_mean", "csim_sd", "n_seeds", "difference",
                "vs_reference", "welch_p", "avg7_mean", "avg7_sd", "status", "run_dirs", "errors"])
    cmp = comparisons(spec, cells)
    for c in cells:
        r4 = lambda v: "" if v is None else round(v, 4)  # noqa: E731
        d, pv = cmp.get(id(c), (None, None))
        a7 = CellResult(c.row, None, None, None, values=list(c.avg7))
        w.writerow([c.row, c.column or "", r4(c.paper), r4(c.paper_sd), r4(c.mean), r4(c.sd), len(c.values),
                    r4(c.difference), r4(d), r4(pv), r4(a7.mean), r4(a7.sd), c.status, ";".join(c.run_dirs),
                    " | ".join(c.errors)])
    return buf.getvalue()


def _png(path: Path, spec, cells, scale, seeds, rank) -> None:
    """Left: the paper and csim values with the seed sd as error bars, on an axis fitted to the values (not from 0,
    which flattens the differences that decide the ranking). Right (tables with a reference): each cell's difference
    from its reference cell with its standard error, significant ones (Welch, p < ALPHA) in a dark colour. The legend
    sits under the plot, never over a bar."""
    from matplotlib.figure import Figure

    n = len(cells)
    has_paper = any(c.paper is not None for c in cells)
    cmp = comparisons(spec, cells) if spec.reference else {}
    fig = Figure(figsize=(12 if spec.reference else 9, 2.2 + 0.42 * n))
    ax = fig.add_subplot(1, 2, 1) if spec.reference else fig.add_subplot()
    ys = list(range(n))[::-1]
    h = 0.38 if has_paper else 0.6
    off = -h / 2 if has_paper else 0
    series = [(h / 2, "paper", "#9e9e9e", [(c.paper, c.paper_sd) for c in cells])] if has_paper else []
    series.append((off, f"csim ({scale}, mean ± sd over seeds)", "#1f77b4", [(c.mean, c.sd) for c in cells]))
    shown = [v for _, _, _, vals in series for v, sd in vals if v is not None for v in (v - (sd or 0), v + (sd or 0))]
    lo, hi = (min(shown), max(shown)) if shown else (0.0, 1.0)
    pad = max(1.0, 0.08 * (hi - lo))
    for shift, label, color, vals in series:
        pts = [(y + shift, v, sd) for y, (v, sd) in zip(ys, vals) if v is not None]
        ax.plot([v for _, v, _ in pts], [y for y, _, _ in pts], "o", color=color, label=label, markersize=5)
        err = [(y, v, sd) for y, v, sd in pts if sd]
        if err:
            ax.errorbar([v for _, v, _ in err], [y for y, _, _ in err], xerr=[sd for _, _, sd in err], fmt="none",
                        ecolor=color, elinewidth=1.2, capsize=3)
    for y, c in zip(ys, cells):
        if c.mean is None:
            ax.text(lo, y + off, " not run (paper scale only)" if c.skipped else " failed", va="center", fontsize=8,
                    color="#b00020" if not c.skipped else "#555555")
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_yticks(ys, [c.label for c in cells], fontsize=8)
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_xlabel(f"{spec.metric} (Spearman x 100)")
    sub = f"scale={scale}, seeds={','.join(map(str, seeds))}"
    if has_paper:
        sub += f"; rank agreement with the paper: {rank_text(rank)}"
    fig.suptitle(f"{spec.title}\n{sub}", fontsize=9)
    if spec.reference:
        dx = fig.add_subplot(1, 2, 2, sharey=ax)
        for y, c in zip(ys, cells):
            if id(c) not in cmp:
                continue
            d, pv = cmp[id(c)]
            r = reference_of(spec, cells, c)
            se = (c.sd or 0) ** 2 / len(c.values) + (r.sd or 0) ** 2 / len(r.values)
            sig = pv is not None and pv < ALPHA
            dx.barh(y, d, height=0.5, color="#08519c" if sig else "#9ecae1")
            if se > 0:
                dx.errorbar(d, y, xerr=se ** 0.5, fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
        dx.axvline(0, color="black", linewidth=0.8)
        dx.grid(axis="x", color="#dddddd", linewidth=0.6)
        dx.tick_params(labelleft=False)
        dx.set_xlabel("difference from the reference cell (± standard error);\n"
                      f"dark: significant (Welch's t over seeds, p < {ALPHA})")
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", dpi=110)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_table(spec, cells: list[CellResult], out_dir: Path, *, scale: str, seeds: list[int], setup: dict,
                invocation_seconds: float) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    rank = rank_agreement(cells)
    wall = sum(c.wall_seconds for c in cells)
    md, cs, png = (out_dir / f"{spec.name}.{ext}" for ext in ("md", "csv", "png"))
    write_text_atomic(md, _markdown(spec, cells, scale, seeds, setup, rank, wall, invocation_seconds))
    write_text_atomic(cs, _csv(spec, cells))
    _png(png, spec, cells, scale, seeds, rank)
    return [md, cs, png]

