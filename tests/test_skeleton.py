"""The skeleton: every experiment composes, a smoke run writes sane outputs, readers, InfoNCE and the evaluator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from conftest import CONF, DATA, compose
from csim.errors import CsimError

EXPERIMENTS = sorted(p.stem for p in (CONF / "exp").glob("*.yaml"))


@pytest.mark.parametrize("exp", EXPERIMENTS)
@pytest.mark.parametrize("scale", ["paper", "cpu", "smoke"])
def test_every_experiment_composes(exp, scale):
    from omegaconf import OmegaConf

    cfg = compose([f"+exp={exp}", f"scale={scale}"])
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    assert cfg.scale.name == scale


def test_paper_recipe_values():
    cfg = compose(["+exp=simcse_unsup"])
    assert cfg.encoder.model_name == "bert-base-uncased" and cfg.encoder.pooler == "cls"
    assert cfg.encoder.mlp == "train_only" and cfg.loss.temperature == 0.05
    assert (cfg.batch_size, cfg.lr, cfg.max_length, cfg.trainer.max_steps) == (64, 3e-5, 32, 15625)
    assert cfg.eval.every_n_steps == 250 and cfg.optim.gradient_clip_val == 1.0 and cfg.warmup_ratio == 0.0


def test_cpu_scale_unsup_dropout():
    """The cpu scale raises unsup SimCSE's dropout to 0.2 (conf/exp/simcse_unsup.yaml) for every experiment built on
    it; the paper scale keeps p = 0.1, and a row or command line that sets encoder.dropout keeps its own value."""
    assert compose(["+exp=simcse_unsup"]).encoder.dropout == 0.1
    for exp in ("simcse_unsup", "simcse_crop", "simcse_delete_one_word"):
        assert compose([f"+exp={exp}", "scale=cpu"]).encoder.dropout == 0.2
    assert compose(["+exp=simcse_delete_one_word", "scale=cpu", "encoder.dropout=0"]).encoder.dropout == 0
    assert compose(["+exp=sbert_nli", "scale=cpu"]).encoder.dropout == 0.1


def test_command_line_beats_scale_layer():
    cfg = compose(["+exp=simcse_unsup", "scale=smoke", "trainer.max_steps=7", "eval.every_n_steps=7"])
    assert cfg.trainer.max_steps == 7
    assert compose(["+exp=simcse_unsup", "scale=smoke"]).trainer.max_steps == 20


def test_smoke_run_end_to_end(run_smoke, tmp_path):
    metrics = run_smoke(["+exp=simcse_unsup"])
    run_dirs = list((tmp_path / "outputs" / "runs").iterdir())
    assert len(run_dirs) == 1
    run = run_dirs[0]
    on_disk = json.loads((run / "metrics.json").read_text())
    assert on_disk["steps"] == 20 and on_disk["scale"] == "smoke" and on_disk["seed"] == 42
    for key in ("best_stsb_dev_spearman", "stsb_test_spearman"):
        assert -100.0 <= on_disk[key] <= 100.0
    assert on_disk["best_step"] in (10, 20) and on_disk["git_commit"] and on_disk["wall_seconds"] > 0
    assert (run / "config.yaml").exists()
    assert (run / "model" / "config.json").exists() and (run / "model" / "modules.json").exists()
    assert metrics["stsb_test_spearman"] == on_disk["stsb_test_spearman"]


STSB_GOOD = "main-captions\tMSRvid\t2012test\t0001\t5.000\tA man is dancing.\tA man dances.\n" \
            "main-forums\tdeft\t2014\t0002\t1.5\tSay \"hi\".\tHello there.\tsrc\tlicense\n"


def test_stsb_reader_good(tmp_path):
    from csim.data.sts import read_stsb_file

    p = tmp_path / "sts.csv"
    p.write_text(STSB_GOOD)
    ds = read_stsb_file(p)
    assert ds["score"] == [5.0, 1.5]
    assert ds["s1"][1] == 'Say "hi".'  # no csv quoting: quotes are literal


def test_stsb_reader_real_files():
    from csim.data.sts import read_stsb

    assert [len(read_stsb(DATA, s)) for s in ("train", "dev", "test")] == [5749, 1500, 1379]


@pytest.mark.parametrize("bad,expected", [
    ("a\tb\tc\td\t3.0\tonly one sentence\n", "found 6"),
    ("a\tb\tc\td\t7.5\tx\ty\n", "outside [0.0, 5.0]"),
    ("a\tb\tc\td\tfive\tx\ty\n", "not a number"),
])
def test_stsb_reader_malformed(tmp_path, bad, expected):
    from csim.data.sts import read_stsb_file

    p = tmp_path / "sts.csv"
    p.write_text(STSB_GOOD + bad)
    with pytest.raises(CsimError) as e:
        read_stsb_file(p)
    assert f"{p}:3" in str(e.value) and expected in str(e.value)


def test_infonce_hand_computed_3x3():
    from csim.losses.infonce import InfoNCE

    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    b = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    tau = 0.5
    # cos matrix by hand: rows a_i, columns b_j
    r = 1 / np.sqrt(2)
    cos = np.array([[1, r, 0], [0, r, 1], [r, 1, r]])
    logits = cos / tau
    expected = np.mean([-(logits[i, i] - np.log(np.exp(logits[i]).sum())) for i in range(3)])
    got = InfoNCE(temperature=tau)(a, b).item()
    assert got == pytest.approx(expected, rel=1e-6)


def test_infonce_hard_negatives_shape():
    from csim.losses.infonce import InfoNCE

    torch.manual_seed(0)
    a, b, n = torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 8)
    with_neg = InfoNCE(0.05)(a, b, emb_neg=n)
    assert torch.isfinite(with_neg) and with_neg > InfoNCE(0.05)(a, b) - 1e-6  # more negatives, never easier


def test_evaluator_matches_scipy():
    import datasets

    from csim.evaluation.sts import evaluate_sts

    class Fixed:
        def score_pairs(self, s1, s2, batch_size=128):
            return np.array([0.1, 0.4, 0.35, 0.9, 0.2])

    ds = datasets.Dataset.from_dict({"s1": list("abcde"), "s2": list("vwxyz"), "score": [0.0, 2.0, 3.0, 5.0, 1.0]})
    expected = spearmanr([0.1, 0.4, 0.35, 0.9, 0.2], [0.0, 2.0, 3.0, 5.0, 1.0]).correlation * 100
    assert evaluate_sts(Fixed(), ds, "toy") == {"toy_spearman": pytest.approx(expected)}
    assert expected == pytest.approx(90.0)


def test_offline_paper_model_stops_with_message():
    from csim.encoders.transformer import TransformerEncoder

    with pytest.raises(CsimError) as e:
        TransformerEncoder(model_name="bert-base-uncased")
    msg = str(e.value)
    assert "bert-base-uncased" in msg and "unreachable" in msg and "scale=cpu" in msg


def test_pretrained_encoder_trains_with_dropout(run_smoke, tmp_path):
    """A model loaded with from_pretrained comes back in eval mode; training must still see dropout (the whole
    noise of unsup SimCSE): two forward passes of the same batch differ in training mode, not in eval mode."""
    from csim.encoders.transformer import TransformerEncoder

    metrics = run_smoke(["+exp=simcse_unsup"])
    enc = TransformerEncoder(model_name=str(Path(metrics["run_dir"]) / "model"), pooler="cls", dropout=0.1)
    assert all(m.training for m in enc.modules())
    batch = enc.collate([{"input_ids": ids} for ids in enc.tokenize(["a man is dancing", "two dogs run"])["input_ids"]])
    a, b = enc(batch), enc(batch)
    assert not torch.allclose(a, b)
    enc.eval()
    assert torch.allclose(enc(batch), enc(batch))
