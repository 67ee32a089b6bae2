"""Reliability: resume after SIGKILL, atomic outputs, clear validation errors, NaN stops, determinism."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import DATA, ROOT, compose
from csim.errors import CsimError

NUMBERS = ("best_stsb_dev_spearman", "best_step", "stsb_test_spearman", "steps")


def _numbers(metrics: dict) -> dict:
    return {k: metrics[k] for k in NUMBERS} | {"history": [{k: v for k, v in h.items() if k != "eval_seconds"}
                                                          for h in metrics["history"]]}


def test_same_seed_same_numbers(run_smoke, tmp_path):
    a = run_smoke(["+exp=simcse_unsup"], output_root=tmp_path / "a")
    b = run_smoke(["+exp=simcse_unsup"], output_root=tmp_path / "b")
    assert _numbers(a) == _numbers(b)
    c = run_smoke(["+exp=simcse_unsup", "seed=7"], output_root=tmp_path / "c")
    assert _numbers(c) != _numbers(a)


def test_resume_after_sigkill_matches_uninterrupted(tmp_path, cache_dir, run_smoke):
    # threads=1 on both sides: a different thread count changes float reduction order, hence the numbers
    args = ["+exp=simcse_unsup", "scale=smoke", "trainer.max_steps=40", "eval.every_n_steps=10",
            f"paths.data_dir={DATA}", f"paths.cache_dir={cache_dir}", "threads=1"]
    reference = run_smoke(args[:1] + args[2:], output_root=tmp_path / "reference")
    out = tmp_path / "killed"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "csim", "train", *args, f"paths.output_root={out}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    ckpt = None
    while time.time() < deadline and proc.poll() is None:
        found = list(out.glob("runs/*/checkpoints/last.ckpt"))
        if found:
            ckpt = found[0]
            break
        time.sleep(0.02)
    assert ckpt is not None, "the run finished or failed before its first checkpoint"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_dir = ckpt.parent.parent
    assert not (run_dir / "metrics.json").exists()  # unfinished: no metrics.json
    resumed = run_smoke(args[:1] + args[2:], output_root=out)
    assert _numbers(resumed) == _numbers(reference)


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    from csim.runs import files as outputs

    target = tmp_path / "metrics.json"
    outputs.write_json_atomic(target, {"a": 1})

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        outputs.write_json_atomic(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_unfinished_run_dir_is_unfinished(tmp_path):
    from csim.runs.files import read_metrics

    assert read_metrics(tmp_path) is None
    (tmp_path / "metrics.json").write_text('{"best_stsb_dev')  # truncated by some other writer
    assert read_metrics(tmp_path) is None


@pytest.mark.parametrize("overrides,needle", [
    (["loss.temperature=0"], "loss.temperature=0"),
    (["loss.temperature=-1"], "must be > 0"),
    (["batch_size=1"], "batch_size=1"),
    (["eval.every_n_steps=500"], "eval.every_n_steps=500"),
    (["paths.data_dir=/nonexistent"], "make data"),
    (["encoder.dropout=1.5"], "encoder.dropout=1.5"),
])
def test_validation_errors_are_one_clear_paragraph(run_smoke, overrides, needle):
    with pytest.raises(CsimError) as e:
        run_smoke(["+exp=simcse_unsup", *overrides])
    msg = str(e.value)
    assert needle in msg and "\n" not in msg


def test_empty_corpus_is_refused(run_smoke, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    with pytest.raises(CsimError, match="empty"):
        run_smoke(["+exp=simcse_unsup", f"data.source.files={empty}"])


def test_nan_loss_stops_with_step_and_keeps_checkpoint(run_smoke, tmp_path, monkeypatch):
    import torch

    from csim.losses.infonce import InfoNCE

    calls = {"n": 0}
    real = InfoNCE.forward

    def poisoned(self, *a, **k):
        calls["n"] += 1
        loss = real(self, *a, **k)
        return loss * float("nan") if calls["n"] > 12 else loss

    monkeypatch.setattr(InfoNCE, "forward", poisoned)
    with pytest.raises(CsimError) as e:
        run_smoke(["+exp=simcse_unsup", "trainer.max_steps=20", "eval.every_n_steps=10"])
    assert "at step 12" in str(e.value)
    ckpts = list((tmp_path / "outputs").glob("runs/*/checkpoints/last.ckpt"))
    assert len(ckpts) == 1
    assert torch.load(ckpts[0], weights_only=False)["global_step"] == 10
    assert not list((tmp_path / "outputs").glob("runs/*/metrics.json"))


def test_step_bounded_run_crosses_epoch_boundaries_between_evaluations(run_smoke):
    """3 batches per epoch, evaluation every 2 steps, 7 steps: epochs end at steps 3 and 6, between evaluations (the
    mini encoder's pretraining crossed its epoch boundary that way). The run finishes on its every-N cadence."""
    m = run_smoke(["+exp=simcse_unsup", "data.max_train_examples=48", "batch_size=16", "trainer.max_steps=7",
                   "eval.every_n_steps=2"])
    assert m["steps"] == 7
    assert [h["step"] for h in m["history"]] == [2, 4, 6, 7]
