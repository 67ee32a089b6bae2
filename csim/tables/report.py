"""The outputs of `csim tables` for one table, under results/tables/<scale>/: <table>.md, <table>.csv and <table>.png.

Each has, per cell (row, or row x column): the paper value, the csim value (mean ± sample sd over the seeds that
finished, and their number), the difference csim - paper, and the run directories; the Markdown adds a header (scale,
encoder, data, steps, commit, date, wall time) and the rank agreement between the csim and paper columns (Spearman ρ
and Kendall τ over the cells that have both), which is what can be compared when the scale is not the paper's.
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
    for what, fn in (("encoder", encoder), ("data", data), ("steps", steps)):
        seen = list(dict.fromkeys(fn(c) for c in cfgs))
        out[what] = "; ".join(seen) if seen else "-"
    return out


def _markdown(spec, cells, scale, seeds, setup, rank, wall, invocation_seconds) -> str:
    src = spec.source or {}
    pd = _decimals([c.paper for c in cells] + [c.paper_sd for c in cells])
    has_paper = any(c.paper is not None for c in cells)
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
              f"| steps | {setup['steps']} |", f"| seeds | {', '.join(map(str, seeds))} |",
              f"| commit | {git_commit()} (tables written); runs: {', '.join(commits) or '-'} |",
              f"| date | {time.strftime('%Y-%m-%d %H:%M %Z')} |",
              f"| wall time | {fmt_duration(wall)} of runs (sum over the cells' runs); this invocation "
              f"{fmt_duration(invocation_seconds)} |", ""]
    if has_paper:
        lines += [f"Rank agreement between the csim and paper columns: {rank_text(rank)}.", ""]
    head = ["row"] + (["column"] if spec.multi_column else []) + (["paper"] if has_paper else []) + \
        ["csim (mean ± sd, n seeds)"] + (["difference"] if has_paper else []) + ["run directories"]
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
        cols = [label] + ([c.column] if spec.multi_column else []) + ([paper] if has_paper else []) + \
            [ours.replace("|", "\\|")] + ([_num(c.difference, 2, sign=True)] if has_paper else []) + \
            ["<br>".join(f"`{d}`" for d in c.run_dirs)]
        lines.append("| " + " | ".join(cols) + " |")
    lines.append("")
    lines += [f"[{i}] {n}" for i, n in enumerate(notes, 1)] + ([""] if notes else [])
    if spec.notes:
        lines += [" ".join(str(spec.notes).split()), ""]
    return "\n".join(lines)


def _csv(cells) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["row", "column", "paper", "paper_sd", "csim_mean", "csim_sd", "n_seeds", "difference", "status",
                "run_dirs", "errors"])
    for c in cells:
        r4 = lambda v: "" if v is None else round(v, 4)  # noqa: E731
        w.writerow([c.row, c.column or "", r4(c.paper), r4(c.paper_sd), r4(c.mean), r4(c.sd), len(c.values),
                    r4(c.difference), c.status, ";".join(c.run_dirs), " | ".join(c.errors)])
    return buf.getvalue()


def _png(path: Path, spec, cells, scale, seeds, rank) -> None:
    from matplotlib.figure import Figure

    n = len(cells)
    has_paper = any(c.paper is not None for c in cells)
    fig = Figure(figsize=(9, 1.8 + 0.42 * n))
    ax = fig.add_subplot()
    ys = list(range(n))[::-1]
    h = 0.38 if has_paper else 0.6
    off = -h / 2 if has_paper else 0
    bars = [(h / 2, "paper", "#9e9e9e", [(c.paper, c.paper_sd) for c in cells])] if has_paper else []
    bars.append((off, f"csim ({scale}, mean ± sd)", "#1f77b4", [(c.mean, c.sd) for c in cells]))
    for shift, label, color, vals in bars:
        ax.barh([y + shift for y in ys], [v or 0 for v, _ in vals], height=h, color=color, label=label)
        err = [(y + shift, v, sd) for y, (v, sd) in zip(ys, vals) if v is not None and sd]
        if err:
            ax.errorbar([v for _, v, _ in err], [y for y, _, _ in err], xerr=[sd for _, _, sd in err], fmt="none",
                        ecolor="black", elinewidth=0.8, capsize=2)
    for y, c in zip(ys, cells):
        if c.mean is None:
            ax.text(0.5, y + off, "not run (paper scale only)" if c.skipped else "failed", va="center", fontsize=8,
                    color="#b00020" if not c.skipped else "#555555")
    ax.set_yticks(ys, [c.label for c in cells], fontsize=8)
    ax.set_xlabel(f"{spec.metric} (Spearman x 100)")
    sub = f"scale={scale}, seeds={','.join(map(str, seeds))}"
    if has_paper:
        sub += f"\nrank agreement with the paper: {rank_text(rank)}"
    ax.set_title(f"{spec.title}\n{sub}", fontsize=9)
    ax.axvline(0, color="black", linewidth=0.6)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
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
    write_text_atomic(cs, _csv(cells))
    _png(png, spec, cells, scale, seeds, rank)
    return [md, cs, png]
