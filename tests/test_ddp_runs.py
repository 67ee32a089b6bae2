"""`csim train` with trainer.devices=2 on CPU (gloo): Lightning's subprocess launcher re-executes the command line,
ddp_spawn gives the same numbers, one run directory with one metrics.json and one model/, and a SIGKILL mid run
followed by a rerun ends with the numbers of the uninterrupted 2-process run, leaving no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import DATA, ROOT

NUMBERS = ("best_stsb_dev_spearman", "best_step", "stsb_test_spearman", "steps")


def _cmd(out: Path, cache: Path, strategy: str) -> list[str]:
    return [sys.executable, "-m", "csim", "train", "+exp=simcse_unsup", "scale=smoke", "trainer.accelerator=cpu",
            "trainer.devices=2", f"trainer.strategy={strategy}", "threads=1", f"paths.data_dir={DATA}",
            f"paths.cache_dir={cache}", f"paths.output_root={out}"]


def _env() -> dict:
    return dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
                PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


def _numbers(run_dirs: list[Path]) -> dict:
    assert len(run_dirs) == 1, run_dirs  # one run directory
    m = json.loads((run_dirs[0] / "metrics.json").read_text())
    assert (run_dirs[0] / "model" / "model.safetensors").exists()
    return {k: m[k] for k in NUMBERS} | {"history": [{k: v for k, v in h.items() if k != "eval_seconds"}
                                                      for h in m["history"]]}


def left_behind(pgid: int, seconds: float) -> list[int]:
    """Wait up to `seconds` for a killed process group to end; SIGKILL and return whatever of it is still alive."""
    deadline = time.time() + seconds
    while _alive(pgid) and time.time() < deadline:
        time.sleep(0.2)
    left = _alive(pgid)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


def _alive(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out, cache = tmp_path_factory.mktemp("ddp_ref"), tmp_path_factory.mktemp("ddp_cache")
    subprocess.run(_cmd(out, cache, "ddp"), cwd=ROOT, env=_env(), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=600)
    return cache, _numbers(list(out.glob("runs/*")))


def test_ddp_spawn_gives_the_subprocess_launchers_numbers(reference, tmp_path):
    cache, numbers = reference
    subprocess.run(_cmd(tmp_path, cache, "ddp_spawn"), cwd=ROOT, env=_env(), check=True, timeout=600,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dirs = list(tmp_path.glob("runs/*"))
    assert _numbers(run_dirs) == numbers
    assert list(tmp_path.rglob("metrics.json")) == [run_dirs[0] / "metrics.json"]


def test_sigkill_mid_run_resumes_to_the_uninterrupted_numbers(reference, tmp_path):
    cache, numbers = reference
    proc = subprocess.Popen(_cmd(tmp_path, cache, "ddp"), cwd=ROOT, env=_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, ckpt = time.time() + 300, None
    while time.time() < deadline and proc.poll() is None:
        found = list(tmp_path.glob("runs/*/checkpoints/last.ckpt"))
        if found:
            ckpt = found[0]
            break
        time.sleep(0.02)
    assert ckpt is not None, "the run finished or failed before its first checkpoint"
    proc.send_signal(signal.SIGKILL)  # rank 0 only: rank 1 must not outlive it
    proc.wait()
    left = left_behind(proc.pid, 120)
    assert not left, f"processes left behind by the killed run: {left}"
    assert not (ckpt.parent.parent / "metrics.json").exists()
    subprocess.run(_cmd(tmp_path, cache, "ddp"), cwd=ROOT, env=_env(), check=True, timeout=600,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert _numbers(list(tmp_path.glob("runs/*"))) == numbers
