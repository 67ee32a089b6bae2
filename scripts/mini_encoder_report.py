"""Write results/mini_encoder.md from the mini encoder's pretraining run (`csim train +exp=mlm_pretrain`).

It reads the pretraining run's logs (MLM loss, held-out masked-token accuracy, STS-B dev during pretraining, wall
time), then measures STS-B dev Spearman of mean-pooled and [CLS] embeddings before and after a short cpu-scale
unsupervised SimCSE run, for the pretrained mini encoder and for a randomly initialised encoder of the same shape
(same tokenizer), next to the average-GloVe baseline, with the 7-task STS average (SentEval protocol) of every
SimCSE run against the published small-model anchor. Where the cpu scale trains in bf16 (csim/runs/hardware.py), the
same SimCSE runs in fp32 show what the precision moves. Every number comes from runs of the committed code; the
previous build's row is quoted from its committed report (`--previous REV`), whose weights are not kept.

usage: python scripts/mini_encoder_report.py [--out results/mini_encoder.md] [--seed 42] [--systems main|all]
                                             [--previous REV] [--pretrain-run DIR] [overrides...]
"""

from __future__ import annotations

import argparse
import csv
import re
import statistics
import subprocess
import time
from pathlib import Path

from omegaconf import OmegaConf


def curve(run_dir: Path) -> list[dict]:
    """The logged curve; a resumed run has one CSV per segment (logs/version_N/metrics.csv)."""
    rows: dict[int, dict] = {}
    files = sorted((run_dir / "logs").glob("**/metrics.csv"), key=lambda p: p.stat().st_mtime)
    for path in files:
        with open(path) as f:
            for r in csv.DictReader(f):
                step = int(r["step"]) + 1
                rows.setdefault(step, {}).update(
                    {k: float(v) for k, v in r.items() if v not in ("", None) and k not in ("epoch", "step")})
    return [{"step": s, **rows[s]} for s in sorted(rows)]


def cell(row: dict, key: str, digits: int) -> str:
    """A curve value, or a dash where that step logged none (the last step has no validation unless it falls on one)."""
    return f"{row[key]:.{digits}f}" if key in row else "–"


def glove_rows(tokenizer) -> int:
    """How many whole-word tokens GloVe initialised (the rule of csim.modules.mlm.glove_init)."""
    from csim.encoders.glove import load_glove

    index, _ = load_glove(None)
    return sum(1 for t in tokenizer.get_vocab() if not t.startswith(("##", "[")) and t in index)


def stsb_dev(model_dir: str, pooler: str, data_dir: str) -> float:
    from csim.encoders.transformer import TransformerEncoder
    from csim.data.tasks import load_task
    from csim.evaluation.sts import evaluate_sts

    enc = TransformerEncoder(model_name=model_dir, pooler=pooler, mlp="none", max_length=32)
    return evaluate_sts(enc, load_task("stsb_dev", data_dir), "stsb_dev")["stsb_dev_spearman"]


def simcse_from(job) -> dict:
    """STS-B dev of mean / [CLS] embeddings after `csim train +exp=simcse_unsup scale=cpu` from a folder."""
    from csim.config import compose_run
    from csim.train import train

    path, overrides, data_dir = job
    run = train(compose_run(["+exp=simcse_unsup", "scale=cpu", f"encoder.model_name={path}", *overrides]))
    model = str(Path(run["run_dir"]) / "model")
    after = {p: stsb_dev(model, p, data_dir) for p in ("mean", "cls_before_pooler")}
    seed = next(int(o.split("=", 1)[1]) for o in overrides if o.startswith("seed="))
    return {"after": after, "run": run, "seed": seed}


# Unsupervised SimCSE from Google's fully pretrained BERT-Mini (4 layers, hidden 256: the mini encoder's shape), 7-task
# STS average (STS12-16, STS-B, SICK-R), as published in ConGen's README (KornWtp/ConGen, "BERT-Mini" row)
ANCHOR_7TASK = 65.94
TARGET_DEV = 72.0


def previous_row(rev: str) -> str | None:
    """The 'pretrained mini encoder' row of results/mini_encoder.md as committed at `rev` (best dev, test), or None."""
    try:
        text = subprocess.run(["git", "show", f"{rev}:results/mini_encoder.md"], capture_output=True, text=True,
                              check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    m = re.search(r"^\| pretrained mini encoder \| ([^|]+) \|.*?\*\*([^*]+)\*\* \|[^|]*\| ([^|]+) \|", text, re.M)
    steps = re.search(r"^- (\d+) steps of batch", text, re.M)
    if not m:
        return None
    return (f"| previous build ({steps.group(1) if steps else '?'} MLM steps; results/mini_encoder.md at `{rev}`, "
            f"weights not kept) | {m.group(1).strip()} | | | | | **{m.group(2).strip()}** | | {m.group(3).strip()} | "
            f"n/a | |")


def mean_sd(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.2f}" + (f" ± {statistics.stdev(xs):.2f}" if len(xs) > 1 else "")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="results/mini_encoder.md")
    ap.add_argument("--seed", type=int, default=42, help="seed of the pretraining run and the random encoder")
    ap.add_argument("--seeds", default="42,43,44", help="SimCSE seeds for the pretrained and random rows")
    ap.add_argument("--jobs", type=int, default=2, help="SimCSE runs side by side (each with one torch thread)")
    ap.add_argument("--note", default="", help="a remark about how this particular build went, printed in the report")
    ap.add_argument("--systems", choices=("pretrained", "main", "all"), default="all",
                    help="pretrained: the cpu recipe from the pretrained encoder only (a quick look at a new build); "
                         "main: also from the random encoder (+ fp32 where the cpu scale trains in bf16); all: also "
                         "the paper dropout and lr rows behind the cpu scale's choices")
    ap.add_argument("--previous", default=None, help="a commit whose results/mini_encoder.md row to quote as the "
                                                     "previous build")
    ap.add_argument("--pretrain-run", default=None,
                    help="a finished pretraining run directory to report on (its config.yaml and metrics.json; the "
                         "encoder is its export_dir, else its model/ folder); default: the run `csim train "
                         "+exp=mlm_pretrain` composes to, reused when finished")
    ap.add_argument("overrides", nargs="*", help="extra overrides for every run (e.g. paths.output_root=...)")
    args = ap.parse_args()
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    t0 = time.time()

    from csim.config import compose_run
    from csim.runs.files import git_commit, write_text_atomic
    from csim.train import train

    common = [f"seed={args.seed}", *args.overrides]
    if args.pretrain_run:
        import json

        run = Path(args.pretrain_run)
        pre_cfg = OmegaConf.load(run / "config.yaml")
        pre = json.loads((run / "metrics.json").read_text())
        mini = str(Path(pre_cfg.get("export_dir") or run / "model").resolve())
    else:
        pre_cfg = compose_run(["+exp=mlm_pretrain", *common])
        pre = train(pre_cfg)  # reuses the finished pretraining run (or runs it)
        mini = str(Path(pre_cfg.paths.mini_encoder).resolve())
    data_dir = pre_cfg.paths.data_dir
    enc_cfg = pre_cfg.encoder
    random_init = "{" + ", ".join(f"{k}: {v}" for k, v in enc_cfg.random_init.items()) + "}"

    # a randomly initialised encoder of the same shape and tokenizer, saved as a folder like the mini encoder
    import pytorch_lightning as pl

    from csim.encoders.transformer import TransformerEncoder

    pl.seed_everything(args.seed, verbose=False)
    rand = TransformerEncoder(random_init=OmegaConf.to_container(enc_cfg.random_init), tokenizer={"name_or_path": mini},
                              pooler="mean", mlp="none", max_length=32)
    rand_dir = Path(pre_cfg.paths.models_dir) / f"random-mini-bert-seed{args.seed}"
    rand.save(rand_dir)

    # (label, starting folder, extra overrides, seeds): the cpu recipe from each start over --seeds, the paper's
    # dropout from the mini encoder over --seeds, and the paper's learning rate and 1e-4 from it, one seed each (the
    # measurements behind the cpu scale's dropout and lr)
    cpu = compose_run(["+exp=simcse_unsup", "scale=cpu"])
    systems = [("pretrained mini encoder", mini, [], seeds)]
    if args.systems != "pretrained":
        systems.append(("random init (same shape)", str(rand_dir.resolve()), [], seeds))
    if cpu.trainer.precision != "32-true" and args.systems != "pretrained":  # what bf16 moves, against the seed spread
        systems.append(("pretrained mini encoder, fp32", mini, ["trainer.precision=32-true"], seeds))
    if args.systems == "all":
        systems += [("pretrained mini encoder, paper dropout 0.1", mini, ["encoder.dropout=0.1"], seeds),
                    ("pretrained mini encoder, lr 1e-4", mini, ["lr=1e-4"], seeds[:1]),
                    ("pretrained mini encoder, paper lr 3e-5", mini, ["lr=3e-5"], seeds[:1])]
    jobs = [(path, [*extra, f"seed={s}", *args.overrides], data_dir) for _, path, extra, ss in systems for s in ss]
    if args.jobs > 1:  # independent runs side by side, one torch thread each (2 x 1 thread beats 1 x 2 on 2 cores)
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
            done = list(pool.map(simcse_from, [(p, [*o, "threads=1"], d) for p, o, d in jobs]))
    else:
        done = [simcse_from(j) for j in jobs]
    # the starting folders' own scores: once per folder (they do not depend on the SimCSE seed)
    before = {path: {p: stsb_dev(path, p, data_dir) for p in ("mean", "cls_before_pooler")}
              for path in dict.fromkeys(path for _, path, _, _ in systems)}
    rows, k = [], 0
    for label, path, _, ss in systems:
        rows.append((label, before[path], done[k : k + len(ss)]))
        k += len(ss)
    glove = None
    try:
        glove = train(compose_run(["+exp=avg_glove", "scale=cpu", *common]))
    except Exception as e:  # the baseline experiment is optional for this report
        print(f"[report] avg_glove baseline not available: {e}")

    c = curve(Path(pre["run_dir"]))
    nsp = bool(pre_cfg.module.get("next_sentence", False))
    walls = ", ".join(f"{r['run']['wall_seconds']:.0f} s" for _, _, rs in rows for r in rs)
    lines = [
        "# The cpu-scale mini encoder",
        "",
        f"Generated by `scripts/mini_encoder_report.py` (via `make mini-encoder`) at commit `{git_commit()}`, "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}; report wall time {time.time() - t0:.0f} s.",
        "",
        "## Pretraining (`csim train +exp=mlm_pretrain`)",
        "",
        f"- Shape: {random_init}, max length {pre_cfg.max_length}, vocabulary {len(rand.tokenizer)} WordPiece tokens "
        f"(bert-base-uncased's). Token embeddings initialised from GloVe 6B-50d through a fixed orthonormal 50->"
        f"{enc_cfg.random_init.hidden_size} projection: {glove_rows(rand.tokenizer)} of them; they (and the MLM "
        f"decoder tied to them) train at {pre_cfg.module.word_embedding_lr_scale} x the lr.",
        f"- Data: {', '.join(pre_cfg.data.source.files)} (STS-B/STS12-16/SICK sentences removed), "
        f"{pre_cfg.data.heldout} {'pairs' if nsp else 'sentences'} held out."
        + (f" Sentence pairs as BERT's (consecutive sentences, {pre_cfg.data.source.random_next:.0%} of second sentences "
           f"random; token types 0/1), MLM + next-sentence prediction on [CLS] through the pooler." if nsp else ""),
        f"- {pre['steps']} steps of batch {pre_cfg.batch_size}, lr {pre_cfg.lr} (warm-up {pre_cfg.warmup_ratio}, linear "
        f"decay), 15% masking 80/10/10, precision {OmegaConf.load(Path(pre['run_dir']) / 'config.yaml').trainer.precision}; "
        f"wall time {pre['wall_seconds'] / 60:.1f} min with {OmegaConf.load(Path(pre['run_dir']) / 'config.yaml').threads} threads; "
        f"commit `{pre['git_commit']}`; run `{pre['run_dir']}`.",
        "",
        *([f"- Note: {args.note}"] if args.note else []),
        "",
        "| step | train MLM loss | held-out MLM loss | held-out masked-token acc | STS-B dev (mean pool) |"
        + (" held-out next-sentence acc |" if nsp else ""),
        "|---:|---:|---:|---:|---:|" + ("---:|" if nsp else ""),
    ]
    for r in c:
        if "val/mlm_loss" in r or r["step"] == c[-1]["step"]:
            cells = [cell(r, "train/mlm_loss", 3), cell(r, "val/mlm_loss", 3), cell(r, "val/mlm_acc", 3),
                     cell(r, "stsb_dev_spearman", 2), *([cell(r, "val/nsp_acc", 3)] if nsp else [])]
            lines.append(f"| {r['step']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## What the pretraining gives SimCSE (STS-B dev Spearman x100)",
        "",
        f"Short unsup SimCSE = `csim train +exp=simcse_unsup scale=cpu` from each starting point (lr {cpu.lr}, dropout "
        f"{cpu.encoder.dropout}, precision {cpu.trainer.precision} unless the row says otherwise); 'after' is the best "
        f"dev checkpoint; STS-B test and the 7-task average (STS12-16, STS-B test, SICK-R test; SentEval protocol) at "
        f"that checkpoint. Wall time per SimCSE run: {walls}.",
        "",
        "| start | seeds | mean before | [CLS] before | mean after | [CLS] after | SimCSE best dev (its pooler) | per seed | "
        "STS-B test | 7-task avg | steps |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for label, b, rs in rows:
        col = lambda f: mean_sd([f(r) for r in rs])  # noqa: E731
        per_seed = " / ".join(f"{r['run']['best_stsb_dev_spearman']:.2f}" for r in rs)
        lines.append(f"| {label} | {','.join(str(r['seed']) for r in rs)} | {b['mean']:.2f} | "
                     f"{b['cls_before_pooler']:.2f} | {col(lambda r: r['after']['mean'])} | "
                     f"{col(lambda r: r['after']['cls_before_pooler'])} | "
                     f"**{col(lambda r: r['run']['best_stsb_dev_spearman'])}** | {per_seed} | "
                     f"{col(lambda r: r['run']['stsb_test_spearman'])} | "
                     f"{col(lambda r: r['run'].get('sts7_senteval_avg', float('nan')))} | {rs[0]['run']['steps']} |")
    if args.previous and (prev := previous_row(args.previous)):
        lines.append(prev)
    best = {label: statistics.mean(r["run"]["best_stsb_dev_spearman"] for r in rs) for label, _, rs in rows}
    mini_best = best["pretrained mini encoder"]
    mini_test = statistics.mean(r["run"]["stsb_test_spearman"] for r in rows[0][2])
    mini_avg7 = [r["run"]["sts7_senteval_avg"] for r in rows[0][2] if "sts7_senteval_avg" in r["run"]]
    if (rand_best := best.get("random init (same shape)")) is not None:
        lines += ["", f"Unsup SimCSE from the pretrained mini encoder vs from the random encoder: {mini_best:.2f} vs "
                      f"{rand_best:.2f} ({mini_best - rand_best:+.2f})."]
    else:
        lines += ["", "Only the pretrained encoder's rows were run (`--systems pretrained`): no random-encoder or fp32 "
                      "comparison in this report."]
    lines += ["", f"Targets: STS-B dev >= {TARGET_DEV:.0f} (mean of 3 seeds): {mini_best:.2f}, "
                  f"{'met' if mini_best >= TARGET_DEV else 'not met'}. Stretch: 7-task average >= {ANCHOR_7TASK} (unsup "
                  f"SimCSE from Google's fully pretrained BERT-Mini, the same shape, ConGen's README): "
                  + (f"{statistics.mean(mini_avg7):.2f}, {'met' if statistics.mean(mini_avg7) >= ANCHOR_7TASK else 'not met'}."
                     if mini_avg7 else "not measured.")]
    fp32 = next((rs for label, _, rs in rows if label.endswith(", fp32")), None)
    if fp32:
        a = [r["run"]["best_stsb_dev_spearman"] for r in rows[0][2]]
        b = [r["run"]["best_stsb_dev_spearman"] for r in fp32]
        sd = max(statistics.stdev(a) if len(a) > 1 else 0.0, statistics.stdev(b) if len(b) > 1 else 0.0)
        wa = statistics.mean(r["run"]["wall_seconds"] for r in rows[0][2])
        wb = statistics.mean(r["run"]["wall_seconds"] for r in fp32)
        lines += ["", f"Precision: {cpu.trainer.precision} vs fp32 from the same encoder and seeds: STS-B dev "
                      f"{statistics.mean(a):.2f} vs {statistics.mean(b):.2f} ({statistics.mean(a) - statistics.mean(b):+.2f}; "
                      f"the larger seed sd is {sd:.2f}), wall time per run {wa:.0f} s vs {wb:.0f} s."]
    if glove is not None:
        g, gt = glove.get("best_stsb_dev_spearman", float("nan")), glove.get("stsb_test_spearman", float("nan"))
        ga = glove.get("sts7_senteval_avg")
        lines += ["", f"Average GloVe baseline (`+exp=avg_glove scale=cpu`): STS-B dev {g:.2f}, test {gt:.2f}"
                      + (f", 7-task average {ga:.2f}" if ga is not None else "") + "; unsup "
                      f"SimCSE from the pretrained mini encoder: dev {mini_best:.2f} ({mini_best - g:+.2f}), test "
                      f"{mini_test:.2f} ({mini_test - gt:+.2f})."]
    write_text_atomic(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
