"""Compare finished csim runs side by side: one row per run directory, then mean ± sd over seeds per setting.

usage: python scripts/compare_runs.py RUN_DIR [RUN_DIR ...] [--out results/some_comparison.md] [--title TEXT]

Every figure is read from the run's own metrics.json (best STS-B dev checkpoint, its test score, commit, finish time)
and config.yaml (encoder, lr, dropout, pooler, seed, steps). When the encoder is a folder that a csim run exported (export_dir,
e.g. an MLM pretraining run), that run is named with its step count, so builds of different lengths can be compared.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from omegaconf import OmegaConf

from csim.errors import CsimError
from csim.runs.files import write_text_atomic


def _builds(output_root: Path, models_dir: Path) -> dict[str, dict]:
    """model fingerprint -> {folder, and when a csim run exported it: run, steps} for every model folder under
    models_dir. Runs record their encoder's fingerprint (cpu scale), so a folder rebuilt since is not mistaken for
    the build a run started from."""
    from csim.runs.identity import model_fingerprint

    out = {}
    for folder in sorted(models_dir.glob("*/config.json")):
        out[model_fingerprint(str(folder.parent))] = {"folder": folder.parent.name}
    for cfg_path in output_root.glob("runs/*/config.yaml"):
        cfg = OmegaConf.load(cfg_path)
        export = cfg.get("export_dir")
        built = cfg_path.parent / "model"  # what this run built (export_dir may since hold a later build)
        if export and ((built / "config.json").exists() or (Path(export) / "config.json").exists()):
            fp = model_fingerprint(str(built if (built / "config.json").exists() else export))
            if fp in out:
                out[fp].update(run=str(cfg_path.parent), steps=cfg.trainer.max_steps, lr=float(cfg.lr),
                               emb_lr=cfg.get("module", {}).get("word_embedding_lr_scale", 1.0))
    return out


def _row(run_dir: Path, builds: dict) -> dict:
    try:
        m = json.loads((run_dir / "metrics.json").read_text())
        cfg = OmegaConf.load(run_dir / "config.yaml")
    except (OSError, json.JSONDecodeError) as e:
        raise CsimError(f"{run_dir}: not a finished csim run ({e}); pass run directories that have metrics.json "
                        "and config.yaml.") from None
    model = str(cfg.encoder.get("model_name") or "random init")
    # cpu-scale runs record the fingerprint of paths.mini_encoder: it names the build only when the run started
    # from that folder; another folder (encoder.model_name=...) is identified by its current contents
    fp = cfg.get("model_fingerprint")
    if model != "random init" and Path(model).resolve() != Path(str(cfg.paths.mini_encoder)).resolve():
        from csim.runs.identity import model_fingerprint

        fp = model_fingerprint(model) if (Path(model) / "config.json").exists() else None
    build = builds.get(str(fp)) if fp else None
    if build:
        emb = f", word embeddings at {build['emb_lr']:g} x lr" if build.get("emb_lr", 1.0) != 1.0 else ""
        start = f"models/{build['folder']}" + (f" ({build['steps']} MLM steps at lr {build['lr']:g}{emb}, "
                                               f"`{build['run']}`)" if "run" in build else "")
    else:
        start = model + (f" (fingerprint {fp}: no longer in the models folder)" if fp else "")
    return {"run": str(run_dir), "start": start, "lr": float(cfg.lr), "pooler": f"{cfg.encoder.pooler}", "dropout": cfg.encoder.get("dropout"),
            "seed": int(cfg.seed), "steps": int(cfg.trainer.max_steps), "dev": m.get("best_stsb_dev_spearman"),
            "best_step": m.get("best_step"), "test": m.get("stsb_test_spearman"),
            "commit": str(m.get("git_commit", "?"))[:7] + ("-dirty" if "dirty" in str(m.get("git_commit")) else ""),
            "finished": m.get("finished_at", "?")}


def render(rows: list[dict], title: str, note: str = "") -> str:
    f = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
    L = [f"# {title}", "", f"Written by `scripts/compare_runs.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
         " from the run directories below (each row: that run's metrics.json and config.yaml).", "",
         *([note, ""] if note else []),
         "## Per setting (mean ± sd over seeds, STS-B dev Spearman x 100 at the best dev checkpoint)", "",
         "| start | lr | dropout | pooler | steps | seeds | STS-B dev | STS-B test |", "|---|---:|---:|---|---:|---|---:|---:|"]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["start"], r["lr"], r["dropout"], r["pooler"], r["steps"]), []).append(r)

    def ms(xs):
        xs = [x for x in xs if x is not None]
        if not xs:
            return "-"
        return f"{statistics.mean(xs):.2f}" + (f" ± {statistics.stdev(xs):.2f}" if len(xs) > 1 else "")

    for (start, lr, dropout, pooler, steps), rs in groups.items():
        L.append(f"| {start} | {lr:g} | {dropout} | {pooler} | {steps} | {','.join(str(r['seed']) for r in rs)} | "
                 f"{ms([r['dev'] for r in rs])} | {ms([r['test'] for r in rs])} |")
    L += ["", "## Runs", "", "| run | start | lr | dropout | pooler | seed | best dev (step) | test | commit | finished |",
          "|---|---|---:|---:|---|---:|---:|---:|---|---|"]
    for r in rows:
        L.append(f"| `{r['run']}` | {r['start']} | {r['lr']:g} | {r['dropout']} | {r['pooler']} | {r['seed']} | {f(r['dev'])} "
                 f"({r['best_step']}) | {f(r['test'])} | `{r['commit']}` | {r['finished']} |")
    return "\n".join(L) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--title", default="Runs compared")
    ap.add_argument("--note", default="", help="a paragraph under the title (what is compared and why)")
    ap.add_argument("--output-root", type=Path, default=Path("outputs"), help="where to look for exporting runs")
    ap.add_argument("--models-dir", type=Path, default=Path("models"), help="where built models live")
    args = ap.parse_args()
    builds = _builds(args.output_root, args.models_dir)
    rows = sorted((_row(r, builds) for r in args.runs),  # settings grouped, in a stable order
                  key=lambda r: (r["start"], r["lr"], str(r["dropout"]), r["pooler"], r["steps"], r["seed"]))
    text = render(rows, args.title, args.note)
    if args.out:
        write_text_atomic(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
