"""`csim eval MODEL`: the STS suite (STS12-16, STS-B, SICK-R; cosine Spearman x 100) under a named protocol, plus STS-B
dev and its alignment/uniformity, for a csim run directory, a sentence-transformers folder or a Hugging Face model.

Protocols (csim.data.tasks.PROTOCOLS): `senteval` (default) scores as SimCSE's Table 5 and SBERT's Table 1 do
(SentEval's tokenized text, SICK-R's 4,927 test pairs); `mteb` as the MTEB leaderboard does (the released text, all
9,927 SICK-R pairs). The average is labelled with its protocol: `senteval_avg_spearman`, `mteb_avg_spearman`
(`custom_avg_spearman` when --text or --aggregate depart from the protocol).

It uses the same evaluator as training (csim.evaluation.sts.evaluate_sts) and the same encoding path
(SentenceEncoder.encode: sorted by length, deduplicated, padded per batch, inference mode). Prints a table and writes
a JSON file (atomically).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

from csim.errors import CsimError
from csim.data.tasks import DISPLAY, PROTOCOLS, TASKS, TEXT_VARIANTS, get_protocol
from csim.evaluation.sts import AGGREGATIONS

GEOMETRY_TASK = "stsb_dev"


def build_parser() -> argparse.ArgumentParser:
    from csim.encoders import POOLERS

    ap = argparse.ArgumentParser(
        prog="csim eval", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="STS12-16 aggregation: 'all' = one Spearman over a year's concatenated subsets (SentEval's 'all', what "
               "SimCSE and SBERT report); 'mean' = unweighted mean of the per-subset Spearmans; 'wmean' = weighted "
               "by subset size. Text: 'official' = the released sentences; 'senteval' = SentEval's lower-cased, "
               "tokenized copy.")
    ap.add_argument("model", metavar="MODEL",
                    help="csim run directory (outputs/runs/<name>-<hash>), sentence-transformers folder, or Hugging "
                         "Face model folder / hub name")
    ap.add_argument("--protocol", choices=sorted(PROTOCOLS), default="senteval",
                    help="how the suite is scored: senteval (SimCSE Table 5 / SBERT Table 1: SentEval's tokenized "
                         "text, SICK-R test 4,927 pairs) or mteb (MTEB: released text, SICK-R all 9,927 pairs); "
                         "default: senteval")
    ap.add_argument("--tasks", nargs="+", default=None, choices=sorted(TASKS), metavar="TASK",
                    help=f"tasks to run (default: the protocol's seven + stsb_dev; available: {', '.join(sorted(TASKS))})")
    ap.add_argument("--aggregate", choices=AGGREGATIONS, default=None,
                    help="STS12-16 aggregation (default: the protocol's, 'all' for both)")
    ap.add_argument("--text", choices=TEXT_VARIANTS, default=None,
                    help="text variant (default: the protocol's: senteval for senteval, official for mteb)")
    ap.add_argument("--pooler", choices=POOLERS, default=None,
                    help="pooling; default: the model's own (csim run / sentence-transformers folder); required for a "
                         "plain Hugging Face model")
    ap.add_argument("--max-length", type=int, default=None,
                    help="truncate inputs to this many tokens (default: the model's saved maximum, else the longest "
                         "input the model takes)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--data-dir", default=os.environ.get("CSIM_DATA_DIR", "data"),
                    help="the data directory (default: $CSIM_DATA_DIR or ./data)")
    ap.add_argument("--out", default=None,
                    help="JSON file to write (default: <run dir>/eval_<protocol>_<text>_<aggregate>.json for a csim "
                         "run, else <output root>/eval/<model>/<protocol>_<text>_<aggregate>.json)")
    ap.add_argument("--mteb-json", default=None, metavar="DIR",
                    help="also write the scores in MTEB's result format: DIR/<model>/no_revision_available/<Task>.json "
                         "(needs --protocol mteb and no --max-pairs: MTEB's protocol)")
    ap.add_argument("--subsets", action="store_true", help="also print the per-subset Spearmans of STS12-16")
    ap.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--max-pairs", type=int, default=None, help="cap pairs per task (quick checks only)")
    return ap


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "model"


def default_out(args, loaded) -> Path:
    tag = f"{args.protocol}_{args.text}_{args.aggregate}" + (f"_{args.pooler}" if args.pooler else "") + \
          (f"_len{args.max_length}" if args.max_length else "") + (f"_max{args.max_pairs}" if args.max_pairs else "")
    if loaded.run_dir:
        return Path(loaded.run_dir) / f"eval_{tag}.json"
    p = Path(args.model).expanduser()
    name = "-".join(p.resolve().parts[-2:]) if p.is_dir() else args.model.replace("/", "__")
    return Path(os.environ.get("CSIM_OUTPUT_ROOT", "outputs")) / "eval" / _slug(name) / f"{tag}.json"


def run_eval(args):
    """-> (result dict for the JSON file, LoadedModel)."""
    import torch

    from csim.encoders.loading import load_model
    from csim.data.tasks import load_task
    from csim.evaluation.sts import evaluate_sts, suite_average
    from csim.runs.files import git_commit

    t_start = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    resolve_protocol(args)
    protocol = get_protocol(args.protocol)
    tasks = list(dict.fromkeys(args.tasks))
    data = {t: load_task(t, args.data_dir, args.max_pairs, text=args.text) for t in tasks}  # missing data: fail first
    loaded = load_model(args.model, pooler=args.pooler, max_length=args.max_length)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    enc = loaded.encoder.to(device)
    metrics: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for name, ds in data.items():
        t0 = time.perf_counter()
        metrics.update(evaluate_sts(enc, ds, name, batch_size=args.batch_size, aggregate=args.aggregate, detail=True,
                                    geometry=name == GEOMETRY_TASK))
        seconds[name] = round(time.perf_counter() - t0, 2)
    avg = suite_average(metrics, protocol.tasks)
    if avg is not None:
        metrics[f"{average_label(args)}_avg_spearman"] = avg
    seconds["total"] = round(time.perf_counter() - t_start, 2)
    subset_pairs = {}
    for t, ds in data.items():
        if "subset" in ds.column_names:
            subset_pairs[t] = {}
            for s in ds["subset"]:
                subset_pairs[t][s] = subset_pairs[t].get(s, 0) + 1
    return {
        "model": args.model, "model_info": loaded.describe(), "protocol": args.protocol,
        "average": average_label(args), "aggregate": args.aggregate, "text": args.text,
        "tasks": tasks, "data_dir": str(args.data_dir), "device": device, "batch_size": args.batch_size,
        "max_pairs": args.max_pairs, "pairs": {t: len(ds) for t, ds in data.items()}, "subset_pairs": subset_pairs,
        "metrics": metrics, "seconds": seconds, "git_commit": git_commit(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }, loaded


def resolve_protocol(args) -> None:
    """Fill --tasks, --text and --aggregate left unset from the protocol's."""
    protocol = get_protocol(args.protocol)
    if args.tasks is None:
        args.tasks = [*protocol.tasks, GEOMETRY_TASK]
    args.text = args.text or protocol.text
    args.aggregate = args.aggregate or protocol.aggregate


def average_label(args) -> str:
    """The protocol's name, or 'custom' when the text or aggregation depart from it."""
    protocol = get_protocol(args.protocol)
    return protocol.name if (args.text, args.aggregate) == (protocol.text, protocol.aggregate) else "custom"


def _tables(result: dict, subsets: bool) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) for the terminal."""
    m, tasks = result["metrics"], result["tasks"]
    f = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    protocol = get_protocol(result["protocol"])
    label = result.get("average", protocol.name)
    avg_key = f"{label}_avg_spearman"
    suite = [t for t in protocol.tasks if t in tasks]
    out = []
    if suite:
        title = protocol.title if label == protocol.name else "custom"
        head = [DISPLAY[t] for t in suite] + ([f"Avg. ({title})"] if avg_key in m else [])
        row = [f(m.get(f"{t}_spearman")) for t in suite] + ([f(m[avg_key])] if avg_key in m else [])
        where = (f"{protocol.title} protocol" if label == protocol.name else
                 f"{protocol.title} tasks, custom text/aggregation")
        out.append((f"Spearman x 100 (cosine), {where}: text {result['text']}, STS12-16 {result['aggregate']}",
                    head, [row]))
    others = [t for t in tasks if t not in protocol.tasks]
    if others:
        g = lambda k: f"{m[k]:.3f}" if k in m else ""  # noqa: E731
        rows = [[DISPLAY.get(t, t), f(m.get(f"{t}_spearman")), g(f"{t}_alignment"), g(f"{t}_uniformity")]
                for t in others]
        out.append(("Alignment, uniformity: Wang & Isola 2020, lower is better",
                    ["task", "Spearman", "alignment", "uniformity"], rows))
    if subsets:
        for t in tasks:
            keys = [k for k in m if k.startswith(f"{t}_") and k.endswith("_spearman") and k != f"{t}_spearman"]
            if keys:
                rows = [[k[len(t) + 1: -len("_spearman")], f(m[k]), str(n) if (n := _subset_n(result, t, k)) else ""]
                        for k in keys]
                out.append((f"{DISPLAY.get(t, t)} by subset", ["subset / aggregation", "Spearman", "pairs"], rows))
    return out


def _subset_n(result, task, key) -> int | None:
    return result.get("subset_pairs", {}).get(task, {}).get(key[len(task) + 1: -len("_spearman")])


def print_result(result: dict, subsets: bool = False, file=None) -> None:
    info = result["model_info"]
    header = (f"model: {result['model']}\n  protocol: {result['protocol']}; {info['kind']}; pooler {info['pooler']}"
              f"{' + MLP' if info['mlp'] == 'always' else ''}; max length {info['max_length']}; STS12-16 aggregation: "
              f"{result['aggregate']}; text: {result['text']}")
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        Console = None
    if Console is not None:
        console = Console(file=file or sys.stdout)
        console.print(header, highlight=False, markup=False, soft_wrap=True)
        for title, head, rows in _tables(result, subsets):
            console.print(title, highlight=False, markup=False, soft_wrap=True)
            table = Table()
            for h in head:
                table.add_column(h, justify="left" if h in ("task", "subset / aggregation") else "right")
            for r in rows:
                table.add_row(*r)
            console.print(table)
        for note in info["notes"]:
            console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
        return
    out = file or sys.stdout
    print(header, file=out)
    for title, head, rows in _tables(result, subsets):
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        print(f"\n{title}", file=out)
        for r in (head, *rows):
            print("  ".join(str(x).rjust(w) for x, w in zip(r, widths)), file=out)
    for note in info["notes"]:
        print(f"note: {note}", file=out)


def main(argv: list[str] | None = None) -> dict | None:
    args = build_parser().parse_args(argv)
    from csim.runs.files import write_json_atomic

    try:
        if args.mteb_json:
            from csim.evaluation.mteb_format import check_protocol

            resolve_protocol(args)  # the protocol's text and aggregation, as the evaluation will use them
            check_protocol(args.protocol, args.aggregate, args.text, args.max_pairs)  # before any work
        result, loaded = run_eval(args)
        out = Path(args.out) if args.out else default_out(args, loaded)
        write_json_atomic(out, result)
        if args.mteb_json:
            from csim.evaluation.mteb_format import write_mteb_results

            name = Path(loaded.run_dir).name if loaded.run_dir else args.model.rstrip("/")
            mteb_files = write_mteb_results(result, Path(args.mteb_json), name)
    except CsimError as e:
        print(f"csim: error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    print_result(result, subsets=args.subsets)
    s = result["seconds"]
    print(f"[csim] {sum(result['pairs'].values())} pairs in {s['total']:.1f} s; results: {out}", flush=True)
    if args.mteb_json:
        print(f"[csim] MTEB results: {', '.join(str(p) for p in mteb_files)}", flush=True)
    return result

