"""The researcher's workflow: the scale layer inside Hydra's composition (--cfg job, sweeps, the command line wins),
W&B and CSV logging of a sweep, `csim compare`, run directories only for runs that start, the model card."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import DATA, ROOT, compose

# tiny and fast: a few steps, a few pairs (the smoke scale's model and tokenizer)
FAST = ["trainer.max_steps=4", "trainer.log_every_n_steps=2", "eval.every_n_steps=2", "eval.max_pairs=64", "data.max_train_examples=128"]


def _csim(args: list[str], tmp: Path, cache: Path, **env) -> subprocess.CompletedProcess:
    e = {**os.environ, "PYTHONPATH": str(ROOT), "CSIM_OUTPUT_ROOT": str(tmp / "outputs"), "CSIM_CACHE_DIR": str(cache),
         "CSIM_DATA_DIR": str(DATA), **env}
    return subprocess.run([sys.executable, "-m", "csim", *args], cwd=ROOT, env=e, capture_output=True, text=True,
                          timeout=600)


def test_cfg_job_shows_the_scaled_config(tmp_path, cache_dir):
    """`csim train --cfg job scale=smoke` prints the config that runs: the smoke model and steps, not bert-base."""
    out = _csim(["train", "+exp=simcse_unsup", "scale=smoke", "--cfg", "job"], tmp_path, cache_dir)
    assert out.returncode == 0, out.stderr
    cfg = yaml.safe_load(out.stdout)
    assert cfg["encoder"]["model_name"] is None
    assert cfg["encoder"]["random_init"]["hidden_size"] == 32
    assert cfg["trainer"]["max_steps"] == 20 and cfg["batch_size"] == 32


def test_command_line_wins_below_a_mapping_the_scale_sets():
    """`+encoder.random_init.num_hidden_layers=4 scale=smoke`: the smoke model, with 4 layers (the rest of the
    mapping the scale sets is kept)."""
    cfg = compose(["+exp=simcse_unsup", "scale=smoke", "+encoder.random_init.num_hidden_layers=4"])
    assert cfg.encoder.random_init.num_hidden_layers == 4
    assert cfg.encoder.random_init.hidden_size == 32 and cfg.encoder.model_name is None
    cfg = compose(["+exp=simcse_unsup", "scale=smoke", "trainer.max_steps=7"])
    assert cfg.trainer.max_steps == 7


def _wandb_records(path: Path) -> list:
    """The records of an offline W&B run file (run-<id>.wandb). The file is a LevelDB-style log (a 7-byte ':W&B'
    header, 32 KiB blocks of checksummed chunks) of wandb_internal_pb2.Record protobufs; this wandb release ships no
    Python reader for it, so the few lines below read it."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    ident, magic, _ = struct.unpack("<4sHB", data[:7])
    assert ident == b":W&B" and magic == 0xBEE1
    pos, buf, out, block = 7, b"", [], 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a chunk header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:
            break
        buf += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            r = pb.Record()
            r.ParseFromString(buf)
            out.append(r)
            buf = b""
    return out


def _wandb_run(path: Path) -> dict:
    run, config, summary = None, {}, {}
    for r in _wandb_records(path):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            run = r.run
        elif kind == "config":
            config.update({u.key: json.loads(u.value_json) for u in r.config.update})
        elif kind == "summary":
            summary.update({u.key: json.loads(u.value_json) for u in r.summary.update if u.key})
    return {"name": run.display_name, "group": run.run_group, "tags": list(run.tags), "config": config,
            "summary": summary}


def test_wandb_sweep_one_run_per_job(tmp_path, cache_dir):
    """A 2-job smoke sweep with logger=wandb, offline: two W&B runs named after their run directories, each with the
    resolved config (after the scale layer), group and tags, and a summary holding the run's best dev and test."""
    wandb_dir = tmp_path / "wandb"
    out = _csim(["train", "-m", "+exp=simcse_unsup", "scale=smoke", *FAST, "logger=wandb", "seed=1,2"],
                tmp_path, cache_dir, WANDB_MODE="offline", WANDB_DIR=str(wandb_dir))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Launching 2 jobs" in out.stdout and "#1 : " in out.stdout  # the sweep lists its jobs
    shown = out.stdout + out.stderr  # quiet: no Lightning banners or tips, no datasets progress bars, no W&B banners
    assert not any(s in shown for s in ("Tip:", "GPU available", "examples/s", "wandb: Run summary")), shown[-3000:]
    assert shown.count("[csim] W&B run ") == 2  # one line per W&B run instead
    files = sorted((tmp_path / "outputs" / "runs").glob("*/wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 2, files
    runs = [_wandb_run(f) for f in files]
    seeds = set()
    for f, run in zip(files, runs):
        run_dir = f.parents[2]
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert run["name"] == run_dir.name
        cfg = run["config"]
        assert cfg["trainer"]["max_steps"] == 4 and cfg["encoder"]["random_init"]["hidden_size"] == 32
        assert cfg["scale"]["name"] == "smoke" and cfg["run_dir"] == str(run_dir)
        assert run["summary"]["best_stsb_dev_spearman"] == pytest.approx(metrics["best_stsb_dev_spearman"])
        assert run["summary"]["stsb_test_spearman"] == pytest.approx(metrics["stsb_test_spearman"])
        assert {"exp:simcse_unsup", "scale:smoke", f"seed:{cfg['seed']}"} <= set(run["tags"])
        seeds.add(cfg["seed"])
    assert seeds == {1, 2} and runs[0]["name"] != runs[1]["name"]
    assert runs[0]["group"] == runs[1]["group"]  # the seeds of one setting are one W&B group


@pytest.fixture(scope="module")
def sweep_2x2(tmp_path_factory, cache_dir):
    """A 2x2 smoke sweep (augment x ratio), one seed, plus an unfinished run directory."""
    from csim.train import train

    root = tmp_path_factory.mktemp("sweep")
    dirs = []
    for aug in ("crop", "word_deletion"):
        for ratio in ("0.1", "0.3"):
            cfg = compose(["+exp=simcse_unsup", "scale=smoke", *FAST, f"augment={aug}", f"augment.ratio={ratio}"],
                          root / "outputs", cache_dir)
            dirs.append(Path(train(cfg)["run_dir"]))
    unfinished = root / "outputs" / "runs" / "simcse_unsup-0000000000"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text((dirs[0] / "config.yaml").read_text())
    return dirs, unfinished


def test_compare_2x2_sweep_gives_four_settings(sweep_2x2, tmp_path, capsys):
    from csim.cli import main

    dirs, unfinished = sweep_2x2
    main(["compare", *map(str, dirs), str(unfinished), "--out", str(tmp_path / "c.md"), "--csv",
          str(tmp_path / "c.csv"), "--baseline", "augment.ratio=0.1,augment._target_=csim.augment.crop.Crop"])
    text = capsys.readouterr().out
    assert (tmp_path / "c.md").read_text() == text
    import csv

    rows = list(csv.DictReader((tmp_path / "c.csv").open()))
    assert len(rows) == 4
    assert {r["augment.ratio"] for r in rows} == {"0.1", "0.3"}
    assert len({r["augment._target_"] for r in rows}) == 2
    assert all(r["best_stsb_dev_spearman_n"] == "1" for r in rows)  # one seed per setting here
    dev = sorted(json.loads((d / "metrics.json").read_text())["best_stsb_dev_spearman"] for d in dirs)
    assert sorted(float(r["best_stsb_dev_spearman_mean"]) for r in rows) == pytest.approx(dev)
    assert sum(r["baseline"] == "True" for r in rows) == 1
    assert str(unfinished) in text and "unfinished" in text  # listed and skipped, not a traceback


def test_compare_welch_over_seeds(tmp_path, capsys):
    """mean ± sd over seeds and Welch's t-test against the baseline (scipy's), on run directories written here."""
    from omegaconf import OmegaConf
    from scipy.stats import ttest_ind

    from csim.runs.compare import compare

    scores = {0.1: [60.0, 62.0, 61.0], 0.2: [65.0, 66.5, 64.0]}
    dirs = []
    for ratio, xs in scores.items():
        for seed, x in enumerate(xs):
            d = tmp_path / f"r{ratio}-{seed}"
            d.mkdir()
            (d / "config.yaml").write_text(OmegaConf.to_yaml({"name": "x", "seed": seed, "augment": {"ratio": ratio},
                                                              "run_identity_exclude": []}))
            (d / "metrics.json").write_text(json.dumps({"best_stsb_dev_spearman": x}))
            dirs.append(d)
    res = compare(dirs, baseline="augment.ratio=0.1")
    assert res["varying"] == ["augment.ratio"]
    base, other = res["rows"]
    assert other["best_stsb_dev_spearman_mean"] == pytest.approx(sum(scores[0.2]) / 3)
    assert other["best_stsb_dev_spearman_p"] == pytest.approx(ttest_ind(scores[0.2], scores[0.1], equal_var=False).pvalue)
    assert base["best_stsb_dev_spearman_p"] is None and "Welch" in res["markdown"]


def test_no_run_directory_for_a_run_that_cannot_start(tmp_path, cache_dir):
    """A model that cannot be loaded leaves no run directory behind (nothing for `csim compare` to trip on)."""
    from csim.errors import CsimError
    from csim.train import train

    cfg = compose(["+exp=simcse_unsup", "scale=smoke", *FAST, f"encoder.model_name={tmp_path / 'no-such-model'}",
                   "encoder.random_init=null"], tmp_path / "outputs", cache_dir)
    with pytest.raises(CsimError):
        train(cfg)
    assert not (tmp_path / "outputs" / "runs").exists() or not any((tmp_path / "outputs" / "runs").iterdir())


def test_csv_logger_has_hyperparameters_and_rows(sweep_2x2):
    """The default CSV logger: the resolved config as hparams.yaml, training rows at smoke scale, the final scores."""
    import csv

    dirs, _ = sweep_2x2
    hp = yaml.safe_load(next(dirs[0].glob("logs/version_*/hparams.yaml")).read_text())
    assert hp["trainer"]["max_steps"] == 4 and hp["encoder"]["random_init"]["hidden_size"] == 32
    rows = list(csv.DictReader(next(dirs[0].glob("logs/version_*/metrics.csv")).open()))
    assert any(r.get("train/loss") for r in rows)  # a row every trainer.log_every_n_steps
    metrics = json.loads((dirs[0] / "metrics.json").read_text())
    final = [r for r in rows if r.get("final/stsb_test_spearman")]
    assert float(final[-1]["final/stsb_test_spearman"]) == pytest.approx(metrics["stsb_test_spearman"])


def test_export_has_a_model_card(sweep_2x2):
    dirs, _ = sweep_2x2
    metrics = json.loads((dirs[0] / "metrics.json").read_text())
    card = (dirs[0] / "model" / "README.md").read_text()
    assert f"{metrics['best_stsb_dev_spearman']:.2f}" in card and f"{metrics['stsb_test_spearman']:.2f}" in card
    assert "best_stsb_dev_spearman" in card and "Spearman correlation x 100" in card  # scores with their protocol
    assert metrics["git_commit"] in card and "csim" in card and "`augment.ratio`" in card


def test_cpu_scale_without_mini_encoder_says_how_to_build_it(tmp_path):
    from csim.errors import CsimError
    from csim.validate import validate_config

    cfg = compose(["+exp=simcse_unsup", "scale=cpu", f"paths.models_dir={tmp_path}"])
    with pytest.raises(CsimError, match="make mini-encoder"):
        validate_config(cfg)


def test_tab_completion_and_help(tmp_path, cache_dir):
    script = _csim(["train", "-sc", "install=bash"], tmp_path, cache_dir)
    assert "hydra_bash_completion" in script.stdout
    q = _csim(["-sc", "query=bash"], tmp_path, cache_dir, COMP_LINE="csim train scale=")
    assert set(q.stdout.split()) == {"scale=cpu", "scale=paper", "scale=smoke"}
    q = _csim(["-sc", "query=bash"], tmp_path, cache_dir, COMP_LINE="csim co")
    assert q.stdout.split() == ["compare"]
    h = _csim(["train", "--help"], tmp_path, cache_dir)
    assert "csim train" in h.stdout and "== cli ==" not in h.stdout


def test_eval_writes_mteb_results_quietly(sweep_2x2, tmp_path, capfd):
    """`csim eval RUN --protocol mteb --mteb-json DIR`: MTEB's TaskResult files with the run's own scores (fractions); no load report
    or progress bars on the way; a capped evaluation is refused before any work (it is not MTEB's protocol)."""
    from csim.cli import main

    dirs, _ = sweep_2x2
    run = dirs[0]
    metrics = json.loads((run / "metrics.json").read_text())
    capfd.readouterr()
    main(["eval", str(run), "--protocol", "mteb", "--tasks", "stsb_test", "stsb_dev", "--data-dir", str(DATA), "--out",
          str(tmp_path / "e.json"), "--mteb-json", str(tmp_path / "mteb")])
    seen = capfd.readouterr()
    assert "LOAD REPORT" not in seen.out + seen.err and "examples/s" not in seen.out + seen.err
    res = json.loads((tmp_path / "e.json").read_text())["metrics"]
    f = tmp_path / "mteb" / run.name / "no_revision_available" / "STSBenchmark.json"
    r = json.loads(f.read_text())
    assert r["task_name"] == "STSBenchmark" and set(r["scores"]) == {"test", "validation"}
    test = r["scores"]["test"][0]
    assert test["main_score"] == test["cosine_spearman"] == pytest.approx(res["stsb_test_spearman"] / 100)
    assert r["scores"]["validation"][0]["main_score"] == pytest.approx(res["stsb_dev_spearman"] / 100)
    assert test["hf_subset"] == "default" and test["languages"] == ["eng-Latn"]
    assert (f.parent / "model_meta.json").exists()
    assert metrics["run_dir"] == str(run)
    for bad in (["--protocol", "mteb", "--max-pairs", "10"], ["--protocol", "senteval"]):
        with pytest.raises(SystemExit):
            main(["eval", str(run), "--tasks", "stsb_test", *bad, "--mteb-json", str(tmp_path / "m2")])
        assert "--protocol mteb" in capfd.readouterr().err and not (tmp_path / "m2").exists()
