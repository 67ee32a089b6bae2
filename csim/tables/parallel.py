"""`csim tables --jobs N`: train the cells that need training N at a time, each in a spawned process.

A list scheduler over the cells' dependencies (concurrent.futures has no dependency graph; Hydra's local launchers
run one flat sweep):
  - a two-stage cell (`init_from`) starts once its first stage is finished: after the cell that is its first stage
    (SBERT-NLI-STSb after the SBERT-NLI cell of the same seed), or, when its first stage is not a cell
    (cross_encoder_nli), it trains that stage itself in its worker, and any other two-stage cell of the same first
    stage waits for it (two processes must not train one run directory: csim.runs.lock refuses the second);
  - the longest remaining chain goes first (its cells' mean wall time in earlier records of the same experiment,
    plus its dependents'), so that the long two-stage cross-encoder chains do not end the run alone on one core.
Before this scheduler the two-stage cells were left to the sequential pass, one at a time, at the end.
The order changes no result: every cell is a function of its config and seed.
"""

from __future__ import annotations

import os
import statistics
import time

from csim.errors import CsimError


def first_line(e: BaseException, limit: int = 300) -> str:
    """The reason a cell failed, on one line (a CsimError is one paragraph already; Hydra's errors put the cause on
    their second line, so the lines are joined)."""
    text = " ".join(ln.strip() for ln in str(e).splitlines() if ln.strip())
    text = text if isinstance(e, CsimError) else f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def log(message: str) -> None:
    print(message, flush=True)


def _train_in_worker(job: tuple) -> str | None:
    """A spawned worker of `--jobs`: train one composed cell (its run directory keeps the result); the error, if any."""
    cfg, threads = job
    from omegaconf import open_dict

    from csim.train import train

    with open_dict(cfg):
        cfg.threads = threads
    try:
        train(cfg)
    except Exception as e:  # noqa: BLE001 - reported by the sequential pass, which runs the cell again
        return first_line(e)
    return None


def dependencies(todo: list) -> list[int | None]:
    """For each task of `todo`, the index of the task that must finish before it starts (None: it can start now)."""
    from csim.runs.identity import run_dir_for
    from csim.tables.launch import first_stage_dir

    if not any(t.cfg.get("init_from") for t in todo):
        return [None] * len(todo)
    cells = {str(run_dir_for(t.cfg)): i for i, t in enumerate(todo) if not t.cfg.get("init_from")}
    trains_it: dict[str, int] = {}  # a first stage that is not a cell -> the two-stage task that trains it
    after: list[int | None] = [None] * len(todo)
    for i, t in enumerate(todo):
        if t.cfg.get("init_from"):
            stage = first_stage_dir(t.cfg)
            after[i] = cells.get(stage, trains_it.get(stage))
            trains_it.setdefault(stage, i)
    return after


def _waiting(after: list[int | None]) -> dict[int, list[int]]:
    """Task index -> the tasks that wait for it."""
    return {i: [j for j, a in enumerate(after) if a == i] for i in range(len(after))}


def priorities(todo: list, after: list[int | None], prior_seconds: dict[str, float]) -> list[float]:
    """Each task's remaining chain: its experiment's mean wall seconds in earlier records (the overall mean for an
    experiment never recorded) plus the longest chain of the tasks that wait for it."""
    fallback = statistics.fmean(prior_seconds.values()) if prior_seconds else 1.0
    own = [prior_seconds.get(getattr(t.row, "exp", None), fallback) for t in todo]
    waiting = _waiting(after)
    chain: dict[int, float] = {}

    def length(i: int) -> float:
        if i not in chain:
            chain[i] = own[i] + max((length(j) for j in waiting[i]), default=0.0)
        return chain[i]

    return [length(i) for i in range(len(todo))]


def train_in_parallel(tasks: list, jobs: int, threads: int, worker=_train_in_worker,
                      prior_seconds: dict[str, float] | None = None) -> set[str]:
    """Train the cells that need training, `jobs` at a time (spawned processes, `threads` torch threads each);
    returns the config hashes trained here. The sequential pass then finds their run directories finished and trains
    what is left (a cell whose worker failed or died, or that waited for one, so that its error is reported as usual).
    `worker`: the function a worker runs on (composed config, threads), a module-level one (spawn pickles it).
    prior_seconds: experiment name -> mean wall seconds of its earlier records (the order; see the module docstring)."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    from csim.tables.launch import gpu_queue, init_worker
    from csim.tables.report import fmt_duration

    # duplicates of a hash are 'duplicate', so each trains once
    todo = [t for t in tasks if t.action == "train"]
    if not todo:
        return set()
    after = dependencies(todo)
    rank = priorities(todo, after, prior_seconds or {})
    waiting = _waiting(after)
    ready = sorted((i for i, a in enumerate(after) if a is None), key=lambda i: -rank[i])
    t0, done, fresh, running = time.time(), 0, set(), {}
    log(f"[tables] training {len(todo)} cells, {jobs} at a time ({threads} torch thread(s) each)")

    def report(i: int, err: str | None) -> None:
        nonlocal done
        t, done = todo[i], done + 1
        left = len(todo) - done
        eta = f"ETA {fmt_duration((time.time() - t0) / done * left)}" if left else "ETA 0s"
        log(f"[tables] {done}/{len(todo)} trained: {t.spec.name}: {t.row.label}"
            f"{' [' + t.column.label + ']' if t.spec.multi_column else ''} seed {t.seed}"
            f"{': FAILED: ' + err if err else ''} | elapsed {fmt_duration(time.time() - t0)} | {eta}")

    def skip_dependents(i: int, why: str) -> None:
        for j in waiting[i]:
            report(j, why)
            skip_dependents(j, why)

    ctx = mp.get_context("spawn")  # workers die with this process; one GPU each where there are several
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=init_worker,
                             initargs=(os.getpid(), gpu_queue(jobs, ctx))) as pool:
        while ready or running:
            while ready and len(running) < jobs:
                i = ready.pop(0)
                try:
                    running[pool.submit(worker, (todo[i].cfg, threads))] = i
                except BrokenProcessPool as e:  # the pool died earlier: what is left goes to the sequential pass
                    report(i, f"a worker process died ({e}); the sequential pass trains this cell")
                    skip_dependents(i, "its first stage was not trained here; the sequential pass trains both")
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in finished:
                i = running.pop(f)
                try:
                    err = f.result()
                except BrokenProcessPool as e:  # a worker died (killed, out of memory): the pool is gone
                    err = f"a worker process died ({e}); the sequential pass trains this cell"
                report(i, err)
                if err is None:
                    fresh.add(todo[i].config_hash)
                    ready = sorted([*ready, *waiting[i]], key=lambda k: -rank[k])
                else:
                    skip_dependents(i, "its first stage failed here; the sequential pass reports it")
    return fresh
