"""Reliability of resuming (issue 19 items 1, 5, 8): only checkpoints that load with weights_only=True are resumed
from, a damaged one gets a clear error, and the smoke tokenizer is the same in every cache (and a run refuses to
resume with another tokenizer than the one it started with)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
import torch

from conftest import compose
from csim.errors import CsimError
from test_reliability import _numbers

SHORT = ["+exp=simcse_unsup", "trainer.max_steps=10", "eval.every_n_steps=10"]


def _run_dir(overrides, tmp_path, cache_dir) -> Path:
    from csim.train import prepare

    return Path(prepare(compose(["scale=smoke", *overrides], tmp_path / "outputs", cache_dir)).run_dir)


class _Payload:
    """What an attacker pickles: unpickling calls open(marker, "w"), which creates the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_planted_checkpoint_with_code_is_refused_and_not_run(run_smoke, tmp_path, cache_dir):
    ckpt = _run_dir(SHORT, tmp_path, cache_dir) / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    marker = tmp_path / "payload_ran"
    torch.save({"state_dict": {}, "global_step": 5, "payload": _Payload(marker)}, ckpt)
    with pytest.raises(CsimError) as e:
        run_smoke(SHORT)
    assert not marker.exists(), "the checkpoint's pickle ran code"
    msg = str(e.value)
    assert "Refusing to resume" in msg and str(ckpt) in msg and "resume=false" in msg and "\n" not in msg


def test_own_checkpoints_load_with_weights_only(run_smoke, tmp_path):
    run_smoke(SHORT)
    (ckpt,) = (tmp_path / "outputs").glob("runs/*/checkpoints/last.ckpt")
    state = torch.load(ckpt, weights_only=True)  # Lightning's dict, optimizer, scheduler, RNG states, digest
    assert {"state_dict", "optimizer_states", "lr_schedulers", "csim_rng", "csim_tokenizer"} <= set(state)


def test_truncated_checkpoint_gets_a_clear_error(run_smoke, tmp_path, cache_dir):
    ckpt = _run_dir(SHORT, tmp_path, cache_dir) / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    buf = io.BytesIO()
    torch.save({"state_dict": {"w": torch.zeros(1000)}, "global_step": 5}, buf)
    ckpt.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])  # cut off, as by a full disk or a copy
    with pytest.raises(CsimError) as e:
        run_smoke(SHORT)
    msg = str(e.value)
    assert "damaged" in msg and str(ckpt) in msg and "resume=false" in msg and "\n" not in msg


def test_two_fresh_caches_give_identical_smoke_results(run_smoke, tmp_path):
    from csim.train import train

    runs = []
    for name in ("a", "b"):
        cfg = compose(["scale=smoke", "+exp=simcse_unsup"], tmp_path / name, tmp_path / f"cache_{name}")
        runs.append(train(cfg))
    assert _numbers(runs[0]) == _numbers(runs[1])


def test_resume_with_another_tokenizer_is_refused(run_smoke, tmp_path):
    from csim.encoders.tokenizer import VOCAB_DIR

    vocab = tmp_path / "vocab.txt"
    shutil.copy(VOCAB_DIR / "smoke-wordpiece-2000.txt", vocab)
    args = [*SHORT, f"encoder.tokenizer={{vocab_file: {vocab}}}"]
    finished = run_smoke(args)
    Path(finished["run_dir"], "metrics.json").unlink()  # as if killed before the end
    lines = vocab.read_text().splitlines()
    lines[500], lines[501] = lines[501], lines[500]  # the same file name, other token ids (a rebuilt vocabulary)
    vocab.write_text("\n".join(lines) + "\n")
    with pytest.raises(CsimError) as e:
        run_smoke(args)
    assert "another tokenizer" in str(e.value) and "last.ckpt" in str(e.value)


def test_resumed_run_counts_every_process_and_keeps_its_plot(run_smoke):
    """Killed after its last step (checkpoint written, metrics.json not): the rerun has nothing left to train, yet
    it draws alignment_uniformity.png, and its wall_seconds and phase timing include the time the checkpoint says was
    spent before."""
    first = run_smoke(SHORT)
    run_dir = Path(first["run_dir"])
    (run_dir / "metrics.json").unlink()
    (run_dir / "alignment_uniformity.png").unlink()
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, weights_only=True)
    assert 0 < state["csim_wall_seconds"] <= first["wall_seconds"]
    state["csim_wall_seconds"] = 1000.0  # as if the killed process had trained for 1000 s
    assert state["csim_phase_seconds"]["fit"] > 0 and set(state["csim_phase_seconds"]) >= {"build", "data", "fit"}
    state["csim_phase_seconds"] = {"startup": 5.0, "build": 100.0, "data": 200.0, "fit": 690.0}
    torch.save(state, ckpt)
    resumed = run_smoke(SHORT)
    timing = resumed["timing"]
    assert timing["build"] > 100.0 and timing["data"] > 200.0 and timing["startup"] >= 5.0
    evals = sum(h["eval_seconds"] for h in resumed["history"])
    assert timing["dev_eval"] == pytest.approx(evals, abs=0.01) and 690.0 - evals - 0.01 < timing["train"] < 700.0  # phases are rounded to 0.01 s
    assert (run_dir / "alignment_uniformity.png").exists()
    assert 1000.0 < resumed["wall_seconds"] < 1000.0 + first["wall_seconds"] + 120
    assert _numbers(resumed) == _numbers(first)


def test_failed_checkpoint_save_leaves_no_partial_file(tmp_path, monkeypatch):
    import errno

    from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

    from csim.runs.checkpoints import AtomicCheckpointIO

    io_ = AtomicCheckpointIO()
    last = tmp_path / "last.ckpt"
    io_.save_checkpoint({"state_dict": {}, "global_step": 10}, last)

    def disk_full(self, checkpoint, path, storage_options=None):
        Path(path).write_bytes(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(TorchCheckpointIO, "save_checkpoint", disk_full)
    with pytest.raises(OSError):
        io_.save_checkpoint({"state_dict": {}, "global_step": 20}, last)
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
    assert torch.load(last, weights_only=True)["global_step"] == 10
