"""`csim compare RUN_DIR...`: finished runs side by side, grouped into settings, mean ± sd over seeds, and Welch's
t-test of every setting against a baseline setting.

A setting is the value of every identity key (csim.runs.identity: the part of the resolved config that determines
the results) that differs across the given runs, the seed excepted: runs that differ only in their seed are one
setting. So `csim compare outputs/runs/simcse_unsup-*` after `-m augment=crop,word_deletion augment.ratio=0.1,0.2`
gives four settings whatever changed, with the keys that tell them apart as columns. Scores are read from each run's
metrics.json (STS Spearman x 100: `best_*` at the best dev evaluation, the others at the checkpoint tested).
Significance: Welch's unequal-variances t-test (scipy.stats.ttest_ind, equal_var=False, two-sided) of the per-seed
scores of a setting against those of the baseline; it needs at least 2 seeds on both sides. Run directories
without metrics.json (unfinished, failed or still running) are listed and skipped.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from csim.errors import CsimError
from csim.runs.files import write_text_atomic


@dataclass
class Run:
    path: Path
    keys: dict          # flattened identity, dotted keys
    metrics: dict


@dataclass
class Group:
    values: tuple
    runs: list[Run] = field(default_factory=list)

    def scores(self, metric: str) -> list[float]:
        return [float(r.metrics[metric]) for r in self.runs if isinstance(r.metrics.get(metric), (int, float))]


def _flatten(node, prefix: str = "") -> dict:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out or {prefix[:-1]: "{}"}
    return {prefix[:-1]: json.dumps(node, sort_keys=True) if isinstance(node, list) else node}


def load(paths: list[Path]) -> tuple[list[Run], list[tuple[Path, str]]]:
    """-> (finished runs, [(path, why skipped)])."""
    from omegaconf import OmegaConf

    from csim.runs.identity import identity

    runs, skipped = [], []
    for p in paths:
        if not (p / "config.yaml").is_file():
            skipped.append((p, "not a csim run directory (no config.yaml)"))
            continue
        if not (p / "metrics.json").is_file():
            skipped.append((p, "unfinished (no metrics.json: failed, killed or still running)"))
            continue
        try:
            metrics = json.loads((p / "metrics.json").read_text())
            cfg = OmegaConf.load(p / "config.yaml")
            keys = _flatten(identity(cfg))
        except Exception as e:  # noqa: BLE001 - one unreadable directory is reported, not fatal
            skipped.append((p, f"unreadable ({type(e).__name__}: {str(e).splitlines()[0][:120]})"))
            continue
        runs.append(Run(p, keys, metrics))
    return runs, skipped


def group(runs: list[Run]) -> tuple[list[str], list[Group]]:
    """-> (the keys that tell settings apart, the settings in a stable order)."""
    all_keys = sorted({k for r in runs for k in r.keys})
    # the seed, and keys that follow it (data.seed: ${seed}), tell seeds apart, not settings
    seedlike = {k for k in all_keys if all(r.keys.get(k) == r.keys.get("seed") for r in runs)}
    # the scale's own tables: their effect is already in the values they set
    seedlike |= {k for k in all_keys if k.startswith(("scale.set.", "scale.by_choice."))}
    varying = [k for k in all_keys if k not in seedlike and len({json.dumps(r.keys.get(k), default=str) for r in runs}) > 1]
    groups: dict[tuple, Group] = {}
    for r in runs:
        values = tuple(r.keys.get(k) for k in varying)
        groups.setdefault(values, Group(values)).runs.append(r)
    ordered = sorted(groups.values(), key=lambda g: [json.dumps(v, default=str) for v in g.values])
    for g in ordered:
        g.runs.sort(key=lambda r: (r.keys.get("seed", 0), str(r.path)))
    return varying, ordered


def metric_names(runs: list[Run]) -> list[str]:
    names = {k for r in runs for k, v in r.metrics.items() if k.endswith("_spearman") and isinstance(v, (int, float))}
    return sorted(names, key=lambda k: (not k.startswith("best_"), k))  # dev (best_*) first


def select_baseline(varying: list[str], groups: list[Group], spec: str | None) -> Group:
    if not spec:
        return groups[0]
    wanted = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in varying:
            raise CsimError(f"--baseline {spec!r}: give KEY=VALUE[,KEY=VALUE] with keys that tell the settings apart "
                            f"({', '.join(varying) or 'none: all runs are one setting'}).")
        wanted[key.strip()] = value.strip()
    hits = [g for g in groups if all(str(g.values[varying.index(k)]) == v for k, v in wanted.items())]
    if len(hits) != 1:
        raise CsimError(f"--baseline {spec!r} matches {len(hits)} settings; it must match exactly one. The settings: "
                        + "; ".join(", ".join(f"{k}={v}" for k, v in zip(varying, g.values)) for g in groups) + ".")
    return hits[0]


def welch_p(a: list[float], b: list[float]) -> float | None:
    """Two-sided p-value of Welch's t-test; None when either side has fewer than 2 seeds or no variance at all."""
    if len(a) < 2 or len(b) < 2:
        return None
    from scipy.stats import ttest_ind

    p = float(ttest_ind(a, b, equal_var=False).pvalue)
    return None if math.isnan(p) else p


def mean_sd(xs: list[float]) -> tuple[float | None, float | None]:
    if not xs:
        return None, None
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else None)


def table(varying, groups, metrics, baseline) -> list[dict]:
    """One row per setting: its key values, seeds, and per metric mean, sd, n and p against the baseline."""
    rows = []
    for g in groups:
        row = {k: v for k, v in zip(varying, g.values)}
        row["baseline"] = g is baseline
        row["seeds"] = [r.keys.get("seed") for r in g.runs]
        row["runs"] = [str(r.path) for r in g.runs]
        for m in metrics:
            xs = g.scores(m)
            row[f"{m}_mean"], row[f"{m}_sd"] = mean_sd(xs)
            row[f"{m}_n"] = len(xs)
            row[f"{m}_p"] = None if g is baseline else welch_p(xs, baseline.scores(m))
        rows.append(row)
    return rows


def render_markdown(varying, rows, metrics, skipped) -> str:
    f = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
    L = ["# Runs compared", "",
         "Settings are told apart by " + (", ".join(f"`{k}`" for k in varying) or "nothing: every run is one setting")
         + "; each cell is the mean ± sd over the setting's seeds (STS Spearman x 100, from metrics.json). p: "
         "Welch's t-test over seeds against the baseline setting (two-sided, unequal variances; needs 2+ seeds on "
         "both sides).", ""]
    head = [*varying, "seeds", *[m for m in metrics], *[f"p {m}" for m in metrics]]
    L += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [f"{r[k]}" + (" (baseline)" if r["baseline"] and i == 0 else "") for i, k in enumerate(varying)]
        if not varying and r["baseline"]:
            cells = []
        cells.append(",".join(str(s) for s in r["seeds"]))
        for m in metrics:
            mu, sd = r[f"{m}_mean"], r[f"{m}_sd"]
            cells.append(f(mu) + (f" ± {sd:.2f}" if sd is not None else ""))
        for m in metrics:
            p = r[f"{m}_p"]
            cells.append("baseline" if r["baseline"] else ("n/a" if p is None else f"{p:.3g}"))
        L.append("| " + " | ".join(cells) + " |")
    if skipped:
        L += ["", f"Skipped ({len(skipped)}):", ""] + [f"- `{p}`: {why}" for p, why in skipped]
    return "\n".join(L) + "\n"


def render_csv(varying, rows, metrics) -> str:
    buf = io.StringIO()
    cols = [*varying, "baseline", "seeds", *[f"{m}_{s}" for m in metrics for s in ("mean", "sd", "n", "p")], "runs"]
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({**r, "seeds": " ".join(str(s) for s in r["seeds"]), "runs": " ".join(r["runs"])})
    return buf.getvalue()


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="csim compare", description=__doc__.split("\n\n")[0],
                                 epilog="Example: csim compare outputs/runs/simcse_unsup-* --baseline augment.ratio=0.1 "
                                        "--out compare.md --csv compare.csv")
    ap.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run directories (outputs/runs/<name>-<hash>)")
    ap.add_argument("--baseline", default=None, metavar="KEY=VALUE[,KEY=VALUE]",
                    help="the setting the others are tested against (default: the first setting listed)")
    ap.add_argument("--out", type=Path, default=None, help="also write the Markdown table here")
    ap.add_argument("--csv", type=Path, default=None, help="also write one CSV row per setting here")
    return ap


def compare(paths: list[Path], baseline: str | None = None) -> dict:
    runs, skipped = load(paths)
    if not runs:
        raise CsimError("No finished run among the given directories (a finished run has metrics.json and "
                        "config.yaml): " + "; ".join(f"{p}: {why}" for p, why in skipped) + ".")
    varying, groups = group(runs)
    metrics = metric_names(runs)
    base = select_baseline(varying, groups, baseline)
    rows = table(varying, groups, metrics, base)
    return {"varying": varying, "rows": rows, "metrics": metrics, "skipped": skipped,
            "markdown": render_markdown(varying, rows, metrics, skipped), "csv": render_csv(varying, rows, metrics)}


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        result = compare(args.runs, args.baseline)
    except CsimError as e:
        print(f"csim: error: {e}", file=sys.stderr)
        sys.exit(2)
    if args.out:
        write_text_atomic(args.out, result["markdown"])
    if args.csv:
        write_text_atomic(args.csv, result["csv"])
    print(result["markdown"], end="")
