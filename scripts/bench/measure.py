"""Measurement helpers for scripts/bench: step timers, window statistics, process memory, the fp32 GEMM peak, FLOP
counts of a BERT encoder step, and the machine/software description for the report."""

from __future__ import annotations

import gc
import os
import platform
import resource
import statistics
import time
from importlib import metadata

import pytorch_lightning as pl
import torch
from transformers import TrainerCallback

from csim.encoders.unpadded import reassociates


# --- step timers -----------------------------------------------------------------------------------------------------
class StepLog:
    """Per optimizer step: when it began (after its batch was fetched), when it ended (after the optimizer step), and
    what the caller's `measure(batch)` said about its batch (token counts); `cpu` is the process's CPU time (all
    threads) at each step end, which shows how much of the wall time the process actually ran."""

    def __init__(self):
        self.begin: list[float] = []
        self.end: list[float] = []
        self.cpu: list[float] = []
        self.info: list[dict] = []

    def step_end(self, info: dict) -> None:
        self.end.append(time.perf_counter())
        self.cpu.append(time.process_time())
        self.info.append(info)


class LightningStepTimer(pl.Callback):
    """on_train_batch_start / on_train_batch_end of a pytorch_lightning.Trainer."""

    def __init__(self, steps: StepLog, measure=None):
        self.steps, self.measure = steps, measure

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.steps.begin.append(time.perf_counter())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps.step_end(self.measure(batch) if self.measure else {})


class HFStepTimer(TrainerCallback):
    """on_step_begin / on_step_end of a transformers Trainer (sentence-transformers' trainer is one)."""

    def __init__(self, steps: StepLog):
        self.steps = steps

    def on_step_begin(self, args, state, control, **kwargs):
        self.steps.begin.append(time.perf_counter())

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.step_end({})


def window_stats(log: StepLog, skip: int, batch: int) -> dict:
    """Throughput of one window: the steps after the first `skip` (which pay for the new optimizer and data iterator).
    Step time = end-to-end interval between consecutive step ends (data fetch, collation, forward, backward, clipping,
    optimizer, logging: what a user waits for); `compute` = begin -> end only (no data fetch); `cpu_use` = process CPU
    time / (wall time x torch threads): near 1 on a quiet machine, well below it when other processes took the cores."""
    if skip < 1:
        raise ValueError("skip must be >= 1: the first step has no previous step end to time it from")
    n = len(log.end) - skip
    if n < 1:
        raise RuntimeError(f"the window ran {len(log.end)} steps; at least {skip + 1} were needed")
    seconds = log.end[-1] - log.end[skip - 1]
    compute = sum(e - b for b, e in zip(log.begin[skip:], log.end[skip:]))
    cpu = log.cpu[-1] - log.cpu[skip - 1]
    return {"steps": n, "seconds": seconds, "sent_per_s": n * batch / seconds, "compute_sent_per_s": n * batch / compute,
            "cpu_seconds": cpu, "cpu_use": cpu / seconds / torch.get_num_threads(), "info": log.info[skip:]}


class Stopwatch:
    """Wall and process CPU time of a block: `with Stopwatch() as sw: ...; sw.seconds, sw.cpu_use`."""

    def __enter__(self):
        self.t0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        self.cpu_seconds = time.process_time() - self.c0
        self.cpu_use = self.cpu_seconds / self.seconds / torch.get_num_threads()
        return False


def median(xs) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


# --- memory --------------------------------------------------------------------------------------------------------
def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_mib() -> float:
    kib = _status_kib("VmRSS")
    return kib / 1024 if kib is not None else float("nan")


def reset_peak_rss() -> bool:
    """Reset the process's resident-set high-water mark (VmHWM) to its current RSS (Linux >= 4.0: writing 5 to
    /proc/self/clear_refs). False where that is not possible; then the peak is the process-wide ru_maxrss."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    """VmHWM since the last reset_peak_rss(), else the process's ru_maxrss (KiB on Linux)."""
    kib = _status_kib("VmHWM")
    if kib is None:
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024


def process_max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- the machine's fp32 GEMM peak -------------------------------------------------------------------------------------
def gemm_gflops(m: int, k: int, n: int, reps: int) -> float:
    """Best of `reps` timed torch.mm (m x k) @ (k x n) in fp32, after two untimed calls: 2mkn / seconds."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(m, k, generator=g), torch.randn(k, n, generator=g)
    c = torch.empty(m, n)
    for _ in range(2):
        torch.mm(a, b, out=c)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * m * k * n / best / 1e9


def gemm_table(tokens: int, hidden: int, ffn: int, reps: int, squares=(512, 1024, 2048)) -> list[dict]:
    """The model's own GEMM shapes (a step's `tokens` rows times the FFN and attention projections) and a few
    squares; the largest GFLOP/s of all is the machine's measured peak."""
    shapes = [("FFN in (tokens x d @ d x 4d)", tokens, hidden, ffn),
              ("FFN out (tokens x 4d @ 4d x d)", tokens, ffn, hidden),
              ("projection (tokens x d @ d x d)", tokens, hidden, hidden)]
    shapes += [(f"square {s}", s, s, s) for s in squares]
    return [{"name": name, "m": m, "k": k, "n": n, "gflops": gemm_gflops(m, k, n, reps)} for name, m, k, n in shapes]


# --- FLOP counts -----------------------------------------------------------------------------------------------------
def bert_shape(config) -> dict:
    return {"d": int(config.hidden_size), "layers": int(config.num_hidden_layers), "heads": int(config.num_attention_heads),
            "ffn": int(config.intermediate_size), "vocab": int(config.vocab_size)}


def matmul_params(shape: dict) -> int:
    """Weights that multiply every token: per layer Q, K, V, O (4 d^2) and the FFN (2 d f); no embeddings, biases, LN."""
    return shape["layers"] * (4 * shape["d"] ** 2 + 2 * shape["d"] * shape["ffn"])


def encoder_train_flops(shape: dict, rows: int, length: int, real_tokens: int | None = None,
                        last_queries: int | None = None, queries_per_row: int = 1) -> float:
    """One training step of a BERT encoder over a (rows x length) padded batch, backward = 2 x forward:
        6 * N * T  +  12 * layers * rows * length^2 * d
    N = matmul_params (non-embedding weights), T = rows * length padded tokens; the second term is attention's two
    batched matmuls (Q K^T and A V, 2 * rows * length^2 * d FLOPs each per layer forward). The pooler MLP and the
    N x N similarity matrix are below 1% and left out.
    What csim's packed forward (encoder.unpad) executes instead: the linear layers over the `real_tokens` only, and
    with `last_queries` the last layer's K and V over every real token but its Q, O and FFN at that many positions
    only (the rows' [CLS] for [CLS] pooling, the masked tokens for MLM; attention there: those queries only). When
    unpadded.reassociates(queries_per_row, ...) holds (it does for [CLS] pooling and for MLM at 15% masking) the last
    layer forms no keys and values at all: per query it multiplies by Wk and Wv (2 d^2) and takes two dot products
    with each of the row's `length` inputs per head (2 heads length d) instead."""
    d, f, layers = shape["d"], shape["ffn"], shape["layers"]
    per_token = matmul_params(shape) / layers  # 4 d^2 + 2 d f
    attn = 12.0 * rows * length**2 * d
    if real_tokens is None:
        return 6.0 * per_token * layers * rows * length + layers * attn
    full = layers - 1 if last_queries is not None else layers
    flops = 6.0 * per_token * full * real_tokens + full * attn
    if last_queries is None:
        return flops
    if reassociates(queries_per_row, shape["heads"], length, d):
        return flops + 6.0 * (4 * d * d + 2 * d * f) * last_queries + 12.0 * last_queries * shape["heads"] * length * d
    return flops + 6.0 * (2 * d * d * real_tokens + (2 * d * d + 2 * d * f) * last_queries) + 12.0 * last_queries * length * d


def mlm_train_flops(shape: dict, rows: int, length: int, masked: int, real_tokens: int | None = None,
                    masked_per_row: int = 1) -> float:
    """encoder_train_flops plus the MLM head on the masked positions only (csim.modules.mlm): the transform (d x d) and
    the vocabulary projection (d x V), 6 * masked * (d^2 + d V). With `real_tokens` (the packed forward,
    encoder.unpad) the encoder's FLOPs are those it executes: real tokens, the last layer at the masked positions."""
    d = shape["d"]
    body = encoder_train_flops(shape, rows, length, real_tokens, masked if real_tokens is not None else None,
                               masked_per_row)
    return body + 6.0 * masked * (d * d + d * shape["vocab"])


# --- description of the machine and software -------------------------------------------------------------------------
from csim.runs.hardware import cpu_description  # noqa: E402  (shared with the table runner's timing report)


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "sentence-transformers", "pytorch-lightning", "datasets", "accelerate"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
