"""results/bench.md from the figures scripts/bench measured."""

from __future__ import annotations

BUSY = 0.8  # CPU use below this (process CPU time / (threads x wall)) means other processes took the cores
TARGETS = {"train_ratio": 1.3, "encode_ratio": 1.5, "peak_fraction": 0.5, "memory_mib": 2048}
LABEL = {"mini": "mini encoder (4 x 256, FFN 1024)", "minilm": "all-MiniLM-L6-v2 (6 x 384, FFN 1536)"}


def _met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def _fmt(x: float, nd: int = 1) -> str:
    return f"{x:,.{nd}f}"


def render(facts: dict, training: dict, gemm: list[dict] | None, mlm: dict | None) -> str:
    v, cpu, plan = facts["versions"], facts["cpu"], facts["plan"]
    peak = max(g["gflops"] for g in gemm) if gemm else float("nan")
    L = ["# Benchmark: csim vs sentence-transformers", ""]
    if facts["quick"]:
        L += ["> **QUICK SETTINGS** (`--quick`: 2 windows of 3 steps, 200 encoded sentences): a check that the script",
              "> runs, not the benchmark. `make bench` writes the real figures.", ""]
    L += [f"Written by `scripts/bench` (`make bench`) on {facts['date']}, commit `{facts['commit']}`, in "
          f"{facts['wall_s'] / 60:.1f} min of wall time.", "",
          f"- CPU: {cpu['model']} ({cpu['logical_cpus']} logical CPUs; flags: {', '.join(cpu['flags']) or 'none of note'}); "
          f"torch threads: **{facts['threads']}** on both sides (torch.set_num_threads)",
          f"- load average (1 min) at start / end: {facts['load'][0][0]:.2f} / {facts['load'][1][0]:.2f} "
          f"(other processes on the machine slow both sides; the ratios are per pair of adjacent windows)",
          f"- versions: torch {v['torch']}, transformers {v['transformers']}, sentence-transformers "
          f"{v['sentence-transformers']}, pytorch-lightning {v['pytorch-lightning']}, datasets {v['datasets']}, "
          f"accelerate {v['accelerate']}, Python {v['python']}",
          f"- mini encoder: {facts['mini_note']}",
          f"- csim config overrides: {' '.join(facts.get('csim_overrides') or []) or 'none (defaults of scale=cpu)'}",
          ""]
    uses = [t[k]["cpu_use"] for t in training.values() for k in ("csim", "st")]
    uses += [t["encode"][k] for t in training.values() for k in ("csim_cpu_use", "st_cpu_use")]
    uses += [mlm["cpu_use"]] if mlm else []
    if uses and min(uses) < BUSY:
        L += [f"> **The machine was busy**: in some measurements the process ran only {min(uses):.0%} of "
              f"{facts['threads']} threads x wall time (CPU use columns below). Absolute figures are low and the "
              "ratios noisier than on a quiet machine.", ""]

    L += ["## Targets (issue 8)", "", "| target | measured | |", "|---|---|---|"]
    for name, t in training.items():
        L.append(f"| training >= {TARGETS['train_ratio']}x sentence-transformers' sentences/s, {LABEL[name]} | "
                 f"{t['ratio']:.2f}x | {_met(t['ratio'] >= TARGETS['train_ratio'])} |")
    for name, t in training.items():
        e = t["encode"]
        L.append(f"| encoding >= {TARGETS['encode_ratio']}x SentenceTransformer.encode, {LABEL[name]} | "
                 f"{e['ratio']:.2f}x | {_met(e['ratio'] >= TARGETS['encode_ratio'])} |")
    if "mini" in training and gemm:
        frac = training["mini"]["csim_gflops"] / peak
        L.append(f"| training at >= {TARGETS['peak_fraction']:.0%} of the measured matmul peak, mini encoder | "
                 f"{frac:.1%} ({_fmt(training['mini']['csim_gflops'])} of {_fmt(peak)} GFLOP/s) | "
                 f"{_met(frac >= TARGETS['peak_fraction'])} |")
    if "mini" in training:
        m = training["mini"]["csim"]["peak_rss_mib"]
        L.append(f"| peak memory of a cpu-scale SimCSE run <= 2 GiB | {_fmt(m, 0)} MiB peak RSS during csim's mini "
                 f"windows (an upper bound: the process also holds the peer's model) | "
                 f"{_met(m <= TARGETS['memory_mib'])} |")
    L += ["| cpu-scale `make reproduce-tables` inside 2 hours | not measured here (see results/tables/) | - |", ""]

    L += ["## Training: unsupervised SimCSE step loop", "",
          "Sentences per second (batch 64, max length 32; one step embeds 2 x 64 sequences), median over windows; "
          "the ratio is the median of csim/ST over adjacent window pairs. *compute* counts only batch start -> end "
          "(no data fetch or collation). Peak RSS: the process's high-water mark during that side's windows (in "
          "brackets: its RSS when that side's first window started). CPU use: process CPU time / (threads x wall).", "",
          "| encoder | csim sent/s | ST sent/s | **csim / ST** | csim compute | ST compute | csim peak RSS | ST peak RSS "
          "| CPU use csim / ST |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, t in training.items():
        c, s = t["csim"], t["st"]
        L.append(f"| {LABEL[name]} | {_fmt(c['sent_per_s'])} | {_fmt(s['sent_per_s'])} | **{t['ratio']:.2f}x** | "
                 f"{_fmt(c['compute_sent_per_s'])} | {_fmt(s['compute_sent_per_s'])} | {_fmt(c['peak_rss_mib'], 0)} "
                 f"({_fmt(c['rss_start_mib'], 0)}) MiB | {_fmt(s['peak_rss_mib'], 0)} ({_fmt(s['rss_start_mib'], 0)}) MiB | "
                 f"{c['cpu_use']:.0%} / {s['cpu_use']:.0%} |")
    L.append("")
    for name, t in training.items():
        per = ", ".join(f"{c['sent_per_s']:.1f}/{s['sent_per_s']:.1f}" for c, s in zip(t["csim"]["windows"], t["st"]["windows"]))
        L.append(f"- {name}: windows (csim/ST sent/s) {per}; {plan['train'][name]['windows']} windows of "
                 f"{plan['train'][name]['steps']} timed steps after {plan['skip']} untimed, one warm-up window of "
                 f"{plan['warmup_steps']} steps per side; mean padded length {t['mean_padded_length']:.1f} "
                 f"({t['real_token_fraction']:.0%} real tokens); csim forward: {t['csim_forward']}; "
                 f"pooling csim {t['pooling']['csim']}, ST {t['pooling']['st']}; ST optim `{t['optim']}`, "
                 f"MNRL scale {t['st_scale']:g}; dropout (hidden, attention) csim {t['dropout']['csim']}, "
                 f"ST {t['dropout']['st']}")
    L.append("")

    L += ["## Encoding: STS-B dev as the evaluator sees it", "",
          f"s1 + s2 of every STS-B dev pair, batch {facts['encode_batch']}; csim's `SentenceEncoder.encode` (what the "
          "evaluator calls: each distinct sentence once, sorted by length) vs `SentenceTransformer.encode` (every "
          "sentence, sorted by length), alternating, median; sentences/s counts all of them for both.", "",
          "| encoder | sentences (unique) | csim sent/s | ST sent/s | **csim / ST** | CPU use csim / ST |",
          "|---|---:|---:|---:|---:|---:|"]
    for name, t in training.items():
        e = t["encode"]
        L.append(f"| {LABEL[name]} | {e['sentences']} ({e['unique']}) | {_fmt(e['csim'], 0)} | {_fmt(e['st'], 0)} | "
                 f"**{e['ratio']:.2f}x** | {e['csim_cpu_use']:.0%} / {e['st_cpu_use']:.0%} |")
    L.append("")

    if gemm:
        L += ["## Matmul peak and csim's achieved FLOP/s", "",
              f"torch.mm in fp32, best of {plan['gemm_reps']} after two untimed calls; rows = 2 x 64 x the mean padded "
              "length of the mini encoder's training batches.", "",
              "| GEMM | m x k x n | GFLOP/s |", "|---|---|---:|"]
        for g in gemm:
            L.append(f"| {g['name']} | {g['m']} x {g['k']} x {g['n']} | {_fmt(g['gflops'])} |")
        L += ["", f"Measured peak: **{_fmt(peak)} GFLOP/s**.", "",
              "| encoder | non-embedding matmul params N | csim training GFLOP/s | fraction of peak |", "|---|---:|---:|---:|"]
        for name, t in training.items():
            L.append(f"| {LABEL[name]} | {t['matmul_params']:,} | {_fmt(t['csim_gflops'])} | {t['csim_gflops'] / peak:.1%} |")
        L += ["", "FLOPs of one step over a padded (rows x length) batch, backward = 2 x forward: "
              "`6 N T + 12 layers rows length^2 d`, with T = rows x length padded tokens, N = layers x (4 d^2 + 2 d f) "
              "(Q, K, V, O and the FFN); the second term is attention's Q K^T and A V. Embedding lookups, biases, "
              "LayerNorm, the pooler MLP and the similarity matrix (< 1%) are left out; time is end-to-end per step. "
              "The FLOPs counted are those csim executes: with its packed forward (encoder.unpad, the default) the "
              "linear layers run over the real tokens only, and with [CLS] pooling the last layer's Q, O and FFN at "
              "[CLS] only, its attention reassociated (no keys or values: `2 d^2 + 2 heads length d` per query instead) "
              "(scripts/bench/measure.py, encoder_train_flops), so this fraction measures how well the "
              "work done uses the hardware, not how much work is avoided.", ""]

    if mlm:
        s = mlm["shape"]
        L += ["## MLM pretraining step (csim.modules.mlm, the mini encoder)", "",
              f"Batch {mlm['batch']}, max length {mlm['max_length']}, {s['layers']} x {s['d']} (FFN {s['ffn']}), "
              f"vocabulary {s['vocab']:,}, the vocabulary projection at masked positions only"
              + ("; packed forward (encoder.unpad): the body over real tokens, its last layer at the masked positions "
                 "only." if mlm.get("packed") else "."), "",
              "| tokens/s (non-pad) | padded tokens/s | sentences/s | s/step | GFLOP/s | fraction of peak | CPU use |",
              "|---:|---:|---:|---:|---:|---:|---:|",
              f"| {_fmt(mlm['tokens_per_s'], 0)} | {_fmt(mlm['padded_tokens_per_s'], 0)} | {_fmt(mlm['sent_per_s'])} | "
              f"{mlm['s_per_step']:.3f} | {_fmt(mlm['gflops'])} | {mlm['gflops'] / peak:.1%} | {mlm['cpu_use']:.0%} |", "",
              f"{plan['mlm']['windows']} windows of {plan['mlm']['steps']} timed steps; GloVe initialisation and "
              "validation off (neither is part of the step). FLOPs: the training formula above, counted as executed "
              "(real tokens; the last layer's Q, O, FFN and reassociated attention at the masked positions), plus "
              "`6 masked (d^2 + d V)` for "
              "the MLM head.", ""]

    L += ["## How it is measured", "",
          "- One process, one machine; both sides get the same encoder folder, the same training sentences (the first "
          "lines the cpu-scale data module reads from corpus/sentences_shuffled.txt), batch 64, max length 32, AdamW "
          "with csim's LR, no warm-up, linear decay, gradient clipping 1.0, the encoder folder's own dropout on both "
          "sides (`encoder.dropout=null`; the rates are listed per encoder above).",
          "- csim: `compose_run(['+exp=simcse_unsup', 'scale=cpu', 'encoder.model_name=...'])` instantiated as "
          "csim/train.py does (SentenceModule + TrainDataModule + pytorch_lightning.Trainer, its CSV logger); no STS "
          "evaluation callback or checkpoints (not part of the step loop). Tokenisation happens once before training "
          "(datasets.map), so it is outside the steps; sentence-transformers tokenises in its collator, inside them.",
          "- sentence-transformers: SentenceTransformerTrainer + MultipleNegativesRankingLoss(scale = 1 / csim's "
          "temperature = 20) on (anchor, positive) = (s, s); its optimizer is the same torch AdamW csim runs "
          "(`--st-optim match`: fused iff csim's module.fused_adamw; transformers' own default is adamw_torch_fused).",
          "- A step's time is the interval between consecutive step ends (Lightning on_train_batch_end; transformers "
          "on_step_end), so it includes data fetch, collation, forward, backward, clipping, optimizer and logging. Each "
          "window is a fresh trainer; its first step (new optimizer state, new data iterator) is not timed.",
          f"- Peak memory: the process's VmHWM reset before each window (/proc/self/clear_refs"
          f"{'' if facts['hwm_resettable'] else ', NOT resettable here: process-wide ru_maxrss'}); process-wide "
          f"maximum RSS over the whole benchmark: {_fmt(facts['process_max_rss_mib'], 0)} MiB.", ""]
    return "\n".join(L)
