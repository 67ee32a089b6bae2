"""Bad input is answered before any training (issue 19 items 2, 7, 9, 10): an empty run is refused, every file a run
needs is read before step 1, each bad value gets one paragraph naming the field or file:line, and neither a run
name nor a `_target_` can reach outside csim."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import DATA, compose
from csim.errors import CsimError

SHORT = ["+exp=simcse_unsup", "trainer.max_steps=10", "eval.every_n_steps=10"]


def test_fewer_examples_than_a_batch_is_refused_before_training(run_smoke, tmp_path):
    with pytest.raises(CsimError) as e:
        run_smoke(["+exp=simcse_unsup", "data.max_train_examples=16", "batch_size=32"])
    msg = str(e.value)
    assert "16 examples" in msg and "batch_size=32" in msg and "wiki1m_for_simcse.head.txt" in msg
    assert not list((tmp_path / "outputs").glob("runs/*/metrics.json"))
    assert not list((tmp_path / "outputs").glob("runs/*/checkpoints/*.ckpt"))


def _data_without(tmp_path: Path, missing: str) -> Path:
    """A data directory of links to the real one, without the file `missing` (relative path)."""
    root = tmp_path / "data"

    def mirror(src: Path, dst: Path, rel: Path):
        dst.mkdir(parents=True)
        for p in src.iterdir():
            r = rel / p.name
            if str(r) == missing:
                continue
            if missing.startswith(str(r) + "/"):
                mirror(p, dst / p.name, r)
            else:
                (dst / p.name).symlink_to(p)

    mirror(DATA, root, Path())
    return root


def test_missing_test_file_fails_before_the_first_step(run_smoke, tmp_path):
    data = _data_without(tmp_path, "stsb/original/sts-test.csv")
    with pytest.raises(CsimError, match="sts-test.csv"):
        run_smoke([*SHORT, f"paths.data_dir={data}"])
    assert not list((tmp_path / "outputs").glob("runs/*/checkpoints"))  # nothing was trained


@pytest.mark.parametrize("overrides,needle", [
    (["seed=abc"], "seed='abc'"),
    (["seed=-1"], "seed=-1"),
    (["lr=abc"], "lr='abc'"),
    (["lr=0"], "lr=0"),
    (["threads=abc"], "threads='abc'"),
    (["threads=0"], "threads=0"),
    (["trainer.max_steps=abc"], "trainer.max_steps='abc'"),
    (["batch_size=abc"], "batch_size='abc'"),
    (["eval.every_n_steps=abc"], "eval.every_n_steps='abc'"),
    (["eval.max_pairs=0"], "eval.max_pairs=0"),
    (["eval.batch_size=0"], "eval.batch_size=0"),
    (["eval.tasks=[]"], "eval.tasks=[]"),
    (["eval.test_tasks=stsb_test"], "eval.test_tasks='stsb_test'"),
    (["max_length=0"], "max_length=0"),
    (["warmup_ratio=2"], "warmup_ratio=2"),
    (["data.max_train_examples=0"], "data.max_train_examples=0"),
])
def test_bad_values_get_one_paragraph_naming_the_field(run_smoke, tmp_path, overrides, needle):
    with pytest.raises(CsimError) as e:
        run_smoke([*SHORT, *overrides])
    msg = str(e.value)
    assert needle in msg and "\n" not in msg
    assert not (tmp_path / "outputs" / "runs").exists() or not any((tmp_path / "outputs" / "runs").iterdir())


@pytest.mark.parametrize("content,needle", [
    (b"a good line\nanother \xff\xfe line\n", ":2: not valid UTF-8"),
    (b"", "is empty (0 bytes)"),
])
def test_bad_corpus_file_is_named(run_smoke, tmp_path, content, needle):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(content)
    with pytest.raises(CsimError) as e:
        run_smoke([*SHORT, f"data.source.files={corpus}"])
    assert needle in str(e.value) and str(corpus) in str(e.value) and "\n" not in str(e.value)


def test_sts_file_with_invalid_utf8_is_named(tmp_path):
    from csim.data.sts import read_sick_file, read_stsb_file

    good = "genre\tfile\t2012\t1\t2.5\tA man plays.\tA man is playing.\n"
    stsb = tmp_path / "sts-test.csv"
    stsb.write_bytes(good.encode() + b"genre\tfile\t2012\t2\t3.0\tcaf\xe9\tcafe\n")
    with pytest.raises(CsimError, match=r"sts-test.csv:2: not valid UTF-8"):
        read_stsb_file(stsb)
    sick = tmp_path / "SICK_test.txt"
    sick.write_bytes(b"pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\n1\t\xe9\tb\t3\tNEUTRAL\n")
    with pytest.raises(CsimError, match=r"SICK_test.txt:2: not valid UTF-8"):
        read_sick_file(sick)


@pytest.mark.parametrize("name", ["../escaped", "/tmp/absolute", "a/b", ".hidden"])
def test_run_name_cannot_leave_the_output_root(run_smoke, tmp_path, name):
    with pytest.raises(CsimError, match="name="):
        run_smoke([*SHORT, f"name='{name}'"])
    assert not (tmp_path / "escaped-").exists() and not list(tmp_path.glob("**/*escaped*"))


def test_target_outside_csim_lightning_torch_is_refused(run_smoke, tmp_path):
    marker = tmp_path / "opened"
    with pytest.raises(CsimError) as e:
        run_smoke([*SHORT, "+logger.x={_target_: builtins.open, file: " + str(marker) + ", mode: w}",
                   "augment._target_=builtins.print"])
    assert "_target_='builtins." in str(e.value) and "allow_any_target=true" in str(e.value)
    assert not marker.exists()


def test_allow_any_target_lifts_the_restriction(tmp_path):
    from csim.validate import validate_fields

    cfg = compose(["scale=smoke", *SHORT, "augment._target_=mypkg.MyAugment"], tmp_path)
    with pytest.raises(CsimError, match="augment._target_='mypkg.MyAugment'"):
        validate_fields(cfg)
    validate_fields(compose(["scale=smoke", *SHORT, "augment._target_=mypkg.MyAugment", "allow_any_target=true"],
                            tmp_path))


def test_sweep_reports_a_bad_value_and_runs_the_others(tmp_path, cache_dir):
    import os
    import subprocess
    import sys

    from conftest import ROOT

    cmd = [sys.executable, "-m", "csim", "train", "-m", *SHORT, "scale=smoke", "seed=abc,7", f"paths.data_dir={DATA}",
           f"paths.cache_dir={cache_dir}", f"paths.output_root={tmp_path}", "threads=1"]
    proc = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 2
    assert "seed='abc'" in proc.stderr and "1 sweep job(s) failed" in proc.stderr and "Traceback" not in proc.stderr
    (done,) = tmp_path.glob("runs/*/metrics.json")  # the good value ran after the bad one
    assert '"seed": 7' in done.read_text()
