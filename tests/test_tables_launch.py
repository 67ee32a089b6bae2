"""`csim tables` beyond its own process pool: the cells through Hydra launchers (submitit_local, joblib) give the
rows of the default local run, two-stage cells go in a wave after their first stage, every cell prints as a
`csim train` command line that composes to the same run, and a killed runner leaves no worker behind."""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import DATA, ROOT
from test_ddp_runs import _alive, _env, left_behind
from test_tables import FAST, read_csv

SPEC = """\
title: "launcher table"
source: {paper: "a test paper", table: "Table 9", split: STS-B dev, metric: "Spearman x 100"}
metric: best_stsb_dev_spearman
rows:
  - {label: "Unsup SimCSE", exp: simcse_unsup, paper: 80.0}
  - {label: "Hotter", exp: simcse_unsup, overrides: [loss.temperature=0.1], paper: 70.0}
"""


def _tables(argv: list[str]) -> tuple[int, str]:
    from csim.tables.cli import main

    buf, code = io.StringIO(), 0
    with contextlib.redirect_stdout(buf):
        try:
            main(argv)
        except SystemExit as e:
            code = e.code
    return code, buf.getvalue()


def _mini(root: Path, cache: Path, name: str, launcher: list[str] = ()) -> dict:
    specs = root / "specs"
    specs.mkdir(exist_ok=True)
    (specs / "mini.yaml").write_text(SPEC)
    code, out = _tables(["--scale", "smoke", "--tables-dir", str(specs), "--results-dir", str(root / name), *FAST,
                         f"paths.output_root={root / ('out_' + name)}", f"paths.cache_dir={cache}",
                         f"paths.data_dir={DATA}", *launcher])
    assert code == 0, out
    return {label: (r["csim_mean"], r["status"]) for label, r in read_csv(root / name / "smoke" / "mini.csv").items()}


@pytest.fixture(scope="module")
def local_rows(tmp_path_factory, cache_dir):
    root = tmp_path_factory.mktemp("launch")
    return root, _mini(root, cache_dir, "local")


@pytest.mark.parametrize("launcher", [["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
                                      ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"]])
def test_hydra_launchers_give_the_rows_of_the_local_run(local_rows, cache_dir, launcher, monkeypatch):
    pytest.importorskip("hydra_plugins." + ("hydra_joblib_launcher" if "joblib" in launcher[0]
                                            else "hydra_submitit_launcher"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    root, rows = local_rows
    name = launcher[0].split("=")[1]
    got = _mini(root, cache_dir, name, launcher)
    assert got == rows and all(status == "ok" for _, status in got.values())
    assert list((root / f"out_{name}" / "hydra").glob("tables_*/wave1/cells.json"))  # the launcher's sweep ran


TWO_STAGE = """\
title: "two-stage table"
source: {paper: "a test paper", table: "Table 9", split: STS-B test, metric: "Spearman x 100"}
metric: stsb_test_spearman
rows:
  - {label: "SBERT-NLI", exp: sbert_nli, paper: 77.0}
  - {label: "SBERT-NLI-STSb", exp: sbert_nli_stsb, paper: 85.4}
  - {label: "BERT-NLI-STSb", exp: cross_encoder_nli_stsb, paper: 88.3}
"""


@pytest.fixture(scope="module")
def two_stage(tmp_path_factory):
    from csim.tables.runner import plan
    from csim.tables.spec import load_specs

    root = tmp_path_factory.mktemp("two_stage")
    (root / "specs").mkdir()
    (root / "specs" / "two.yaml").write_text(TWO_STAGE)
    extra = [f"paths.output_root={root / 'out'}", f"paths.data_dir={DATA}"]
    return root, extra, plan(load_specs(root / "specs"), "smoke", [42], root / "results", extra, {})


def test_two_stage_cells_go_after_their_first_stage(two_stage):
    from csim.config import compose_run
    from csim.runs.identity import run_dir_for
    from csim.config import first_stage_overrides
    from csim.tables.launch import waves

    _, extra, tasks = two_stage
    first, second = waves(tasks, extra)
    dirs = {str(run_dir_for(compose_run(o))): o for o in first}
    assert len(first) == 2 and len(dirs) == 2  # the SBERT-NLI cell (also a first stage) once, the NLI cross-encoder
    assert sorted(o[0] for o in second) == ["+exp=cross_encoder_nli_stsb", "+exp=sbert_nli_stsb"]
    for o in second:
        assert str(run_dir_for(compose_run(first_stage_overrides(compose_run(o))))) in dirs


def test_print_commands_give_every_cell_as_a_csim_train_line(two_stage):
    from csim.config import compose_run
    from csim.tables.runner import portable_hash

    root, extra, tasks = two_stage
    code, out = _tables(["--scale", "smoke", "--tables-dir", str(root / "specs"), "--results-dir",
                         str(root / "results"), "--print-commands", *extra])
    assert code == 0
    lines = out.strip().splitlines()
    comment = next(i for i, line in enumerate(lines) if line.startswith("#"))
    commands = [shlex.split(line) for line in lines if not line.startswith("#")]
    assert len(commands) == 3 and all(c[:2] == ["csim", "train"] for c in commands)
    # each line composes to its cell (same config hash); two-stage lines after the comment line
    assert [portable_hash(compose_run(c[2:])) for c in commands] == [t.config_hash for t in tasks]
    assert [i >= comment for i in range(3)] == [bool(t.cfg.get("init_from")) for t in tasks]
    assert not list(root.glob("out/runs/*"))  # nothing ran


def _visible(_):
    time.sleep(0.5)
    return os.getpid(), os.getenv("CUDA_VISIBLE_DEVICES")


def test_each_local_worker_gets_its_own_gpu(monkeypatch):
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    import torch

    from csim.tables.launch import gpu_queue, init_worker

    ctx = mp.get_context("spawn")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert gpu_queue(2, ctx) is None  # one GPU (or none): nothing to assign
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    q = gpu_queue(3, ctx)
    with ProcessPoolExecutor(2, mp_context=ctx, initializer=init_worker, initargs=(os.getpid(), q)) as pool:
        seen = dict(pool.map(_visible, range(4)))
    assert set(seen.values()) <= {"3", "5"}
    assert q.get(timeout=5) == "3" and q.empty()  # the two workers took "3" and "5", one each


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_runner_leaves_no_worker_behind(tmp_path, cache_dir, sig):
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "mini.yaml").write_text(SPEC)
    log = tmp_path / "log.txt"
    cmd = [sys.executable, "-m", "csim", "tables", "--scale", "smoke", "--jobs", "2", "--tables-dir",
           str(tmp_path / "specs"), "--results-dir", str(tmp_path / "results"), "threads=1",
           "trainer.max_steps=2000", "eval.every_n_steps=1000", f"paths.output_root={tmp_path / 'out'}",
           f"paths.cache_dir={cache_dir}", f"paths.data_dir={DATA}"]
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), start_new_session=True, stdout=f, stderr=subprocess.STDOUT)
    deadline = time.time() + 300  # until a worker trains a cell (and the other is up)
    while time.time() < deadline and not list(tmp_path.glob("out/runs/*/config.yaml")):
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.2)
    assert list(tmp_path.glob("out/runs/*/config.yaml")), "no worker started training"
    assert len(_alive(proc.pid)) >= 3  # the runner and its two workers (and multiprocessing's resource tracker)
    proc.send_signal(sig)
    proc.wait()
    left = left_behind(proc.pid, 60)
    assert not left, f"processes left behind by the killed runner: {left}"


def test_make_reproduce_tables_passes_a_launcher_through(tmp_path):
    launcher = "hydra/launcher=submitit_slurm hydra.launcher.partition=gpu"
    out = subprocess.run(["make", "-n", "reproduce-tables", "SCALE=smoke", f"LAUNCHER={launcher}"], cwd=ROOT,
                         capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "CSIM_MODELS_DIR": str(tmp_path)}).stdout
    assert f"csim tables --scale smoke  --jobs 1  {launcher}" in out  # seeds: the scale's table_seeds


def test_launcher_options_without_a_launcher_are_refused(tmp_path, capsys):
    code, _ = _tables(["--scale", "smoke", "--results-dir", str(tmp_path), "hydra.launcher.partition=gpu"])
    assert code == 2 and "hydra/launcher=submitit_slurm" in capsys.readouterr().err

def _die(job):
    """A --jobs worker that dies without raising, as one killed by the kernel's out-of-memory killer."""
    import os

    os._exit(3)


def test_a_dying_worker_leaves_its_cells_to_the_sequential_pass(capsys):
    from types import SimpleNamespace

    from csim.tables.parallel import train_in_parallel

    spec = SimpleNamespace(name="t", multi_column=False)
    tasks = [SimpleNamespace(action="train", cfg={"init_from": None}, config_hash=f"h{i}", spec=spec,
                             row=SimpleNamespace(label=f"row {i}"), column=None, seed=42) for i in range(2)]
    assert train_in_parallel(tasks, 2, 1, worker=_die) == set()  # nothing trained: the sequential pass does both
    out = capsys.readouterr().out
    assert out.count("a worker process died") == 2 and "2/2 trained" in out



def _cell(label, exp, seed=42, *overrides):
    from types import SimpleNamespace

    from csim.config import compose_run

    spec = SimpleNamespace(name="t", multi_column=False)
    cfg = compose_run([f"+exp={exp}", *overrides, "scale=smoke", f"seed={seed}", f"paths.data_dir={DATA}"])
    return SimpleNamespace(action="train", cfg=cfg, config_hash=label, spec=spec, seed=seed,
                           row=SimpleNamespace(label=label, exp=exp), column=None)


def _log_order(job):
    """A --jobs worker that only writes when it starts and ends (the order the scheduler chose)."""
    cfg, _ = job
    with open(os.environ["CSIM_TEST_ORDER"], "a") as f:
        f.write(f"start {cfg.name}-{cfg.seed}\n")
    time.sleep(0.2)
    with open(os.environ["CSIM_TEST_ORDER"], "a") as f:
        f.write(f"end {cfg.name}-{cfg.seed}\n")


def test_two_stage_cells_start_after_their_first_stage_longest_chain_first(tmp_path, monkeypatch, capsys):
    """--jobs: SBERT-NLI-STSb waits for the SBERT-NLI cell of its seed; a second cross-encoder cell on the same NLI
    stage (not a cell) waits for the first, which trains that stage; the longest chain by earlier records goes first."""
    from csim.tables.parallel import dependencies, priorities, train_in_parallel

    todo = [_cell("stsb", "sbert_nli_stsb"), _cell("ce", "cross_encoder_nli_stsb"), _cell("nli", "sbert_nli"),
            _cell("ce-lr", "cross_encoder_nli_stsb", 42, "lr=1e-4"), _cell("nli43", "sbert_nli", 43)]
    after = dependencies(todo)
    assert after == [2, None, None, 1, None]
    prior = {"sbert_nli": 100.0, "sbert_nli_stsb": 50.0, "cross_encoder_nli_stsb": 300.0}
    assert priorities(todo, after, prior) == [50.0, 600.0, 150.0, 300.0, 100.0]

    monkeypatch.setenv("CSIM_TEST_ORDER", str(tmp_path / "order.txt"))
    trained = train_in_parallel(todo, 1, 1, worker=_log_order, prior_seconds=prior)
    assert trained == {"stsb", "ce", "nli", "ce-lr", "nli43"}
    lines = (tmp_path / "order.txt").read_text().split()[1::2]
    # one at a time, by remaining chain: ce (600), what it released (ce-lr 300), nli (150), then nli43 (100)
    # before stsb (50), which nli released
    assert lines[::2] == ["cross_encoder_nli_stsb-42", "cross_encoder_nli_stsb-42", "sbert_nli-42",
                          "sbert_nli-43", "sbert_nli_stsb-42"]
    assert "5/5 trained" in capsys.readouterr().out
