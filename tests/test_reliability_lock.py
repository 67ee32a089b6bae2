"""One writer per run directory and per tables results folder (issue 19 item 3): a second process is refused with
the holder named, a lock whose holder died is recovered, killed writers' temporary files are cleared, and temporary
names are per process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, compose
from csim.errors import CsimError

SHORT = ["+exp=simcse_unsup", "trainer.max_steps=10", "eval.every_n_steps=10"]
HOLD = ("import sys, time; from csim.runs.lock import RunLock; lock = RunLock(sys.argv[1]).__enter__(); "
        "print('held', flush=True); time.sleep(120)")


def _run_dir(overrides, tmp_path, cache_dir) -> Path:
    from csim.train import prepare

    return Path(prepare(compose(["scale=smoke", *overrides], tmp_path / "outputs", cache_dir)).run_dir)


@pytest.fixture
def holder():
    """holder(directory) -> a live process holding that directory's RunLock (killed at the end of the test)."""
    procs = []

    def _hold(directory: Path) -> subprocess.Popen:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        proc = subprocess.Popen([sys.executable, "-c", HOLD, str(directory)], stdout=subprocess.PIPE, env=env, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield _hold
    for proc in procs:
        proc.kill()
        proc.wait()


def test_second_process_on_a_live_run_directory_is_refused(run_smoke, tmp_path, cache_dir, holder):
    run_dir = _run_dir(SHORT, tmp_path, cache_dir)
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"the live run's checkpoint")
    proc = holder(run_dir)
    with pytest.raises(CsimError) as e:
        run_smoke([*SHORT, "resume=false"])  # resume=false used to delete the live run's directory
    msg = str(e.value)
    assert f"pid {proc.pid}" in msg and socket.gethostname() in msg and "started 20" in msg and "\n" not in msg
    assert (run_dir / "checkpoints" / "last.ckpt").read_bytes() == b"the live run's checkpoint"


def test_stale_lock_of_a_dead_process_is_recovered_and_partial_files_cleared(run_smoke, tmp_path, cache_dir):
    run_dir = _run_dir(SHORT, tmp_path, cache_dir)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = run_dir.with_name(run_dir.name + ".lock")
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": "2026-01-01T00:00:00"}))
    # what a writer killed mid-save leaves: a checkpoint temp file and a half-built model folder
    (run_dir / "checkpoints").mkdir(parents=True)
    partial = [run_dir / "checkpoints" / ".last.ckpt.tmp99999", run_dir / "model.tmp99999"]
    partial[0].write_bytes(b"half a checkpoint")
    partial[1].mkdir()
    metrics = run_smoke(SHORT)
    assert metrics["steps"] == 10
    assert not any(p.exists() for p in partial)
    assert not lock.exists()  # released at the end


def test_second_tables_run_on_the_same_results_is_refused(tmp_path, holder, capsys):
    from csim.tables.cli import main

    proc = holder(tmp_path / "results" / "smoke")
    with pytest.raises(SystemExit) as e:
        main(["--scale", "smoke", "--table", "losses", "--results-dir", str(tmp_path / "results"), "--no-train"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"pid {proc.pid}" in err and "in use" in err


def test_lock_is_released_and_retaken_in_one_process(tmp_path):
    from csim.runs.lock import RunLock

    with RunLock(tmp_path / "run"):
        with pytest.raises(CsimError, match=f"pid {os.getpid()}"):
            RunLock(tmp_path / "run").__enter__()  # flock conflicts between open files, even in one process
    with RunLock(tmp_path / "run"):
        pass
    with RunLock(tmp_path / "run", enabled=False):  # the non-owning DDP ranks
        assert not (tmp_path / "run.lock").exists()


def test_temporary_names_are_per_process(tmp_path):
    from csim.runs.files import atomic_dir

    with atomic_dir(tmp_path / "model") as tmp:
        assert tmp.name == f"model.tmp{os.getpid()}"
        (tmp / "weights").write_text("w")
    assert (tmp_path / "model" / "weights").read_text() == "w"
