"""`csim tables`: a small table at smoke scale (outputs from the runs' metrics.json, mean ± sd over two seeds, a failing
row that does not stop the others), resuming after a kill, reuse from committed records, the shipped specs and the
Makefile target."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import shutil
import statistics
import subprocess
from pathlib import Path

import pytest

from conftest import CONF, DATA, ROOT
from csim.errors import CsimError

MINI_SPEC = """\
title: "mini table"
source: {paper: "a test paper", table: "Table 9", split: STS-B dev, metric: "Spearman x 100"}
metric: best_stsb_dev_spearman
rows:
  - {label: "Unsup SimCSE", exp: simcse_unsup, paper: 80.0}
  - {label: "Hotter (tau 0.1)", exp: simcse_unsup, overrides: [loss.temperature=0.1], paper: 70.0, notes: "tau=0.1"}
  - {label: "Not built yet", exp: no_such_experiment_yet, paper: 60.0}
  - {label: "Large", exp: simcse_unsup, overrides: [encoder.model_name=bert-large-uncased], paper: 90.0,
     paper_scale_only: true}
"""
# small and fast (1 thread: 2 threads crawl when the machine is busy); none of these keys is specific to one row
FAST = ["trainer.max_steps=4", "eval.every_n_steps=2", "eval.max_pairs=64", "data.max_train_examples=64",
        "batch_size=16", "threads=1"]
RAN = re.compile(r"^\[tables\] \d+/\d+ (\S+): (.+?) seed (\d+): (.+?) \| elapsed", re.M)


def run_tables(results: Path, outputs: Path, cache: Path, seeds: str = "42,43", tables_dir: Path | None = None,
               table: str | None = None, flags: tuple[str, ...] = ()) -> tuple[int, str]:
    """`csim tables --scale smoke ...` in-process; returns (exit status, stdout)."""
    from csim.tables.cli import main

    argv = ["--scale", "smoke", "--seeds", seeds, "--results-dir", str(results)]
    argv += ["--tables-dir", str(tables_dir)] if tables_dir else []
    argv += ["--table", table] if table else []
    argv += list(flags)
    argv += [*FAST, f"paths.output_root={outputs}", f"paths.cache_dir={cache}", f"paths.data_dir={DATA}"]
    buf = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(buf):
        try:
            main(argv)
        except SystemExit as e:
            code = e.code
    return code, buf.getvalue()


def progress(stdout: str) -> dict[tuple[str, int], str]:
    """(row label, seed) -> what the progress line says happened."""
    out = {}
    for _table, label, seed, what in RAN.findall(stdout):
        kind = next((k for k in ("trained", "reused record", "reused run directory", "FAILED", "not run")
                     if k in what), what)
        out[(label, int(seed))] = kind
    return out


def read_csv(path: Path) -> dict[str, dict]:
    with open(path, newline="") as f:
        return {r["row"]: r for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def first(tmp_path_factory, cache_dir):
    """The mini table at smoke scale, seeds 42 and 43, run once for the module (4 runs of 4 steps)."""
    root = tmp_path_factory.mktemp("tables")
    (root / "specs").mkdir()
    (root / "specs" / "mini.yaml").write_text(MINI_SPEC)
    code, stdout = run_tables(root / "results", root / "outputs", cache_dir, tables_dir=root / "specs")
    return root, code, stdout


def test_table_from_runs_with_mean_sd_and_a_failing_row(first):
    root, code, stdout = first
    assert code == 1  # one row failed; the runner went on with the others
    ran = progress(stdout)
    assert [ran[("Unsup SimCSE", s)] for s in (42, 43)] == ["trained", "trained"]
    assert ran[("Not built yet", 42)] == "FAILED" and ran[("Large", 43)] == "not run"
    assert re.search(r"ETA \d", stdout)

    out = root / "results" / "smoke"
    for ext in ("md", "csv", "png"):
        assert (out / f"mini.{ext}").stat().st_size > 0
    assert (out / "mini.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = read_csv(out / "mini.csv")
    for label, paper in (("Unsup SimCSE", 80.0), ("Hotter (tau 0.1)", 70.0)):
        r = rows[label]
        run_dirs = r["run_dirs"].split(";")
        assert len(set(run_dirs)) == 2 and all(Path(d).parent == root / "outputs" / "runs" for d in run_dirs)
        values = [json.loads((Path(d) / "metrics.json").read_text())["best_stsb_dev_spearman"] for d in run_dirs]
        assert r["n_seeds"] == "2" and r["status"] == "ok" and float(r["paper"]) == paper
        assert float(r["csim_mean"]) == pytest.approx(statistics.fmean(values), abs=1e-4)
        assert float(r["csim_sd"]) == pytest.approx(statistics.stdev(values), abs=1e-4)
        assert float(r["difference"]) == pytest.approx(statistics.fmean(values) - paper, abs=1e-3)
    assert rows["Not built yet"]["status"] == "failed" and "no_such_experiment_yet" in rows["Not built yet"]["errors"]
    assert rows["Large"]["status"] == "paper scale only" and rows["Large"]["csim_mean"] == ""
    # where the invocation's time went: the runs' span, phases per table, one line per run (timing.md: no table named)
    timing = (out / "timing.md").read_text()
    assert "| span of the runs |" in timing and "| runs | 4 trained |" in timing and "Machine: " in timing
    assert re.search(r"^\| mini \| 4 \| [\d,]+ s \|", timing, re.M)
    assert len(re.findall(r"^\| mini \| (Unsup SimCSE|Hotter \(tau 0.1\)) \| 4[23] \| trained \|", timing, re.M)) == 4

    md = (out / "mini.md").read_text()
    mean, sd = float(rows["Unsup SimCSE"]["csim_mean"]), float(rows["Unsup SimCSE"]["csim_sd"])
    assert f"| Unsup SimCSE | 80.0 | {mean:.2f} ± {sd:.2f} (n=2) |" in md
    assert "| scale | smoke |" in md and "| steps | 4 |" in md and "random-init BERT" in md and "| commit |" in md
    assert "Rank agreement" in md and "2 cell(s) with both" in md  # 2 rows with both values: too few to rank
    assert "does not exist (no conf/exp/no_such_experiment_yet.yaml)" in md

    from csim.config import compose_run
    from csim.tables.runner import portable_hash

    records = sorted((out / "mini" / "rows").glob("*.json"))
    assert [p.name for p in records] == ["hotter-tau-0-1-seed42.json", "hotter-tau-0-1-seed43.json",
                                         "unsup-simcse-seed42.json", "unsup-simcse-seed43.json"]
    rec = json.loads((out / "mini" / "rows" / "hotter-tau-0-1-seed43.json").read_text())
    # composed here with the default folders (data, cache, outputs): the record's hash does not depend on them
    cfg = compose_run(["+exp=simcse_unsup", "loss.temperature=0.1", "scale=smoke", "seed=43", *FAST])
    assert rec["config_hash"] == portable_hash(cfg) and "history" not in rec["metrics"]
    assert Path(rec["run_dir"]).name == f"simcse_unsup-{rec['run_hash']}"
    assert rec["value"] == json.loads((Path(rec["run_dir"]) / "metrics.json").read_text())["best_stsb_dev_spearman"]


def test_jobs_train_cells_side_by_side_with_the_same_results(first, tmp_path, cache_dir):
    """--jobs 2: the cells train in two spawned processes; same records as the sequential run (both at 1 thread)."""
    root, _, _ = first
    code, stdout = run_tables(tmp_path / "results", tmp_path / "outputs", cache_dir, seeds="42",
                              tables_dir=root / "specs", flags=("--jobs", "2"))
    assert code == 1  # the row whose experiment does not exist still fails, and only it
    assert "training 2 cells, 2 at a time (1 torch thread(s) each)" in stdout
    ran = progress(stdout)
    assert ran[("Unsup SimCSE", 42)] == ran[("Hotter (tau 0.1)", 42)] == "trained"
    assert ran[("Not built yet", 42)] == "FAILED"
    for name in ("unsup-simcse-seed42.json", "hotter-tau-0-1-seed42.json"):
        mine = json.loads((tmp_path / "results" / "smoke" / "mini" / "rows" / name).read_text())
        seq = json.loads((root / "results" / "smoke" / "mini" / "rows" / name).read_text())
        assert mine["config_hash"] == seq["config_hash"] and mine["value"] == seq["value"]
    assert "2 trained at a time with 1 torch thread(s) each" in (tmp_path / "results" / "smoke" / "timing.md").read_text()


def test_killed_table_resumes_with_the_missing_cells_only(first, tmp_path, cache_dir):
    root, _, _ = first
    shutil.copytree(root / "results", tmp_path / "results")
    shutil.copytree(root / "outputs", tmp_path / "outputs")
    rows_dir = tmp_path / "results" / "smoke" / "mini" / "rows"
    lost = json.loads((rows_dir / "hotter-tau-0-1-seed43.json").read_text())
    # killed before this cell finished: neither its record nor a finished run directory exist
    (rows_dir / "hotter-tau-0-1-seed43.json").unlink()
    shutil.rmtree(tmp_path / "outputs" / "runs" / Path(lost["run_dir"]).name)
    # a record from an older config (another hash) is not trusted; its finished run directory is
    stale = rows_dir / "unsup-simcse-seed42.json"
    stale.write_text(json.dumps({**json.loads(stale.read_text()), "config_hash": "0000000000"}))
    kept = {p: p.stat().st_mtime_ns for p in (tmp_path / "outputs" / "runs").glob("*/metrics.json")}

    code, stdout = run_tables(tmp_path / "results", tmp_path / "outputs", cache_dir, tables_dir=root / "specs")
    assert code == 1
    ran = progress(stdout)
    assert ran[("Hotter (tau 0.1)", 43)] == "trained"
    assert ran[("Unsup SimCSE", 42)] == "reused run directory"
    assert ran[("Unsup SimCSE", 43)] == ran[("Hotter (tau 0.1)", 42)] == "reused record"
    assert sum(v == "trained" for v in ran.values()) == 1
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # no other run was touched
    again = json.loads((rows_dir / "hotter-tau-0-1-seed43.json").read_text())
    assert again["config_hash"] == lost["config_hash"]
    assert again["value"] == pytest.approx(lost["value"], abs=1e-4)  # same seed, same numbers
    assert json.loads(stale.read_text())["config_hash"] != "0000000000"  # rewritten with the current hash


def test_no_train_writes_the_table_from_finished_rows_and_marks_the_rest(first, tmp_path, cache_dir):
    root, _, _ = first
    shutil.copytree(root / "results", tmp_path / "results")
    for record in (tmp_path / "results" / "smoke" / "mini" / "rows").glob("unsup-simcse-seed43*.json"):
        record.unlink()  # one cell not computed anywhere (no record, and another output root)
    specs = tmp_path / "specs"  # plus a table whose row is that same cell (a copy of a missing cell is missing too)
    shutil.copytree(root / "specs", specs)
    (specs / "again.yaml").write_text(MINI_SPEC.replace('title: "mini table"', 'title: "again"\norder: 9'))
    code, stdout = run_tables(tmp_path / "results", tmp_path / "outputs", tmp_path / "cache", tables_dir=specs,
                              flags=("--no-train",))
    assert code == 1 and not (tmp_path / "outputs" / "runs").exists()  # nothing trained
    missing = [what for table, label, seed, what in RAN.findall(stdout) if (label, seed) == ("Unsup SimCSE", "43")]
    assert len(missing) == 2 and all("not computed yet" in w for w in missing)
    table = (tmp_path / "results" / "smoke" / "mini.md").read_text()
    assert "not computed yet" in table
    assert read_csv(tmp_path / "results" / "smoke" / "mini.csv")["Hotter (tau 0.1)"]["csim_mean"]
    # the timing report of a collection names the runs it read and their span, not a training of its own
    timing = (tmp_path / "results" / "smoke" / "timing.md").read_text()
    assert "none trained by this invocation" in timing and "| span of the runs |" in timing
    assert "| again | 3 |" in timing and "reused record" in timing


def test_fresh_clone_reuses_committed_records_without_run_directories(first, tmp_path, cache_dir):
    root, _, _ = first
    shutil.copytree(root / "results", tmp_path / "results")  # the committed results/, no outputs/, another cache
    code, stdout = run_tables(tmp_path / "results", tmp_path / "outputs", tmp_path / "cache", tables_dir=root / "specs")
    assert code == 1
    ran = progress(stdout)
    assert {k: v for k, v in ran.items() if k[0] in ("Unsup SimCSE", "Hotter (tau 0.1)")} == {
        (label, s): "reused record" for label in ("Unsup SimCSE", "Hotter (tau 0.1)") for s in (42, 43)}
    assert not (tmp_path / "outputs" / "runs").exists()
    before, after = (read_csv(r / "smoke" / "mini.csv") for r in (root / "results", tmp_path / "results"))
    for label in ("Unsup SimCSE", "Hotter (tau 0.1)"):
        assert after[label]["csim_mean"] == before[label]["csim_mean"]
        assert after[label]["csim_sd"] == before[label]["csim_sd"]


def test_shipped_loss_table_at_smoke_scale_shares_rows_with_other_tables(first, tmp_path, cache_dir):
    """The real conf/tables/losses.yaml: its InfoNCE row is the mini table's unsup SimCSE row (same config hash), so it
    comes from that table's record; the other rows run (or fail while their loss is not built)."""
    from csim.tables.spec import load_specs

    root, _, _ = first
    shutil.copytree(root / "results", tmp_path / "results")
    code, stdout = run_tables(tmp_path / "results", tmp_path / "outputs", cache_dir, seeds="42", table="losses")
    assert progress(stdout)[("InfoNCE (SimCSE)", 42)] == "reused record"
    shared = json.loads((tmp_path / "results/smoke/losses/rows/infonce-simcse-seed42.json").read_text())
    mini = json.loads((root / "results/smoke/mini/rows/unsup-simcse-seed42.json").read_text())
    assert shared["config_hash"] == mini["config_hash"] and shared["value"] == mini["value"]
    assert shared["table"] == "losses" and shared["row"] == "InfoNCE (SimCSE)"
    rows = read_csv(tmp_path / "results" / "smoke" / "losses.csv")
    assert list(rows) == [r.label for r in load_specs(CONF / "tables", ["losses"])[0].rows]
    assert all(r["paper"] == "" for r in rows.values())
    assert (tmp_path / "results" / "smoke" / "losses.png").exists()
    assert code == (1 if any(r["status"] != "ok" for r in rows.values()) else 0)


def test_shipped_specs():
    from csim.tables.spec import load_specs

    # a plain run (no table named) regenerates the two papers' tables and the loss table; successors is asked by name
    assert [s.name for s in load_specs(CONF / "tables")] == ["simcse_table1", "simcse_table2", "sbert_table2", "losses"]
    names = ["simcse_table1", "simcse_table2", "sbert_table2", "losses", "successors"]
    specs = {s.name: s for s in load_specs(CONF / "tables", names)}
    assert list(specs) == names
    assert [s.by_default for s in specs.values()] == [True, True, True, True, False]
    assert [len(specs[n].rows) for n in specs] == [11, 4, 20, 4, 12]
    assert specs["simcse_table1"].metric == specs["simcse_table2"].metric == "best_stsb_dev_spearman"
    assert specs["sbert_table2"].metric == "stsb_test_spearman"
    t2 = specs["simcse_table2"]
    assert [c.overrides for c in t2.columns] == [(), ("module.two_encoders=true",)]
    assert all(None not in r.paper.values() for r in t2.rows)
    sbert = specs["sbert_table2"]
    assert {r.label for r in sbert.rows if r.paper_scale_only} == {
        r.label for r in sbert.rows if "large" in r.label or "RoBERTa" in r.label}
    assert sum(not r.paper_scale_only for r in sbert.rows) == 9
    # SBERT Table 2 says per cpu row what its offline recipe can and cannot show; the paper scale shows no such note
    assert all(r.notes_at("cpu") and dict(r.scale_notes).get("cpu") for r in sbert.rows if not r.paper_scale_only)
    glove = next(r for r in sbert.rows if r.label == "Avg. GloVe embeddings")
    assert "50" in glove.notes_at("cpu") and glove.notes_at("paper") is None
    assert all(v is None for r in specs["losses"].rows for v in r.paper.values())


def test_shipped_rows_compose_at_cpu_scale(tmp_path):
    """Every row with overrides (its own or its column's) composes at cpu scale when its experiment and config groups
    exist (e.g. augment.ratio is a field of that augmentation; rows without overrides are the experiments themselves,
    composed by test_skeleton); only not-yet-built experiments or groups may fail."""
    from dataclasses import replace

    from csim.tables.spec import load_specs
    from csim.tables.runner import plan

    every = sorted(p.stem for p in (CONF / "tables").glob("*.yaml"))
    specs = [replace(s, rows=tuple(r for r in s.rows if r.overrides or s.multi_column))
             for s in load_specs(CONF / "tables", every)]
    tasks = plan(specs, "cpu", [42], tmp_path, [])
    bad = [(t.spec.name, t.row.label, t.error) for t in tasks
           if t.action == "failed" and "does not exist" not in t.error and "Could not find" not in t.error]
    assert bad == []
    assert sum(t.action == "skip" for t in tasks) == 11  # the large and RoBERTa rows: not composed below paper


@pytest.mark.parametrize("spec,line,field,expected", [
    ("title: t\nmetric: m\nrows:\n  - {label: a}\n", 4, "rows[0].exp", "required"),
    ("title: t\nmetric: m\nrows:\n  - label: a\n    exp: e\n    papr: 1.0\n", 6, "rows[0].papr", "unknown field"),
    ("title: t\nmetric: m\nrows:\n  - {label: a, exp: e, overrides: [seed=3]}\n", 4, "rows[0].overrides", "--seeds"),
    ("title: t\nmetric: m\nrows:\n  - {label: A b, exp: e}\n  - {label: a-B, exp: e}\n", 5, "rows[1].label",
     "same row"),
    ("title: t\nmetric: m\ncolumns:\n  - {key: x}\n  - {key: y}\nrows:\n  - {label: a, exp: e, paper: 1.0}\n", 7,
     "rows[0].paper", "give a mapping"),
    ("title: t\nmetric: m\nrows:\n  - {label: a, exp: e, paper: {x: 1.0}}\n", 4, "rows[0].paper", "column keys"),
    ("title: t\nmetric: m\nrows:\n  - {label: a, exp: e, paper: high}\n", 4, "rows[0].paper", "a number"),
    ("title: t\nmetric: m\nrows:\n  - {label: a, exp: e, scale_notes: [cpu]}\n", 4, "rows[0].scale_notes",
     "a mapping from a scale name"),
    ("title: t\nmetric: m\nby_default: no thanks\nrows:\n  - {label: a, exp: e}\n", 3, "by_default", "true or false"),
])
def test_bad_spec_names_file_line_and_field(tmp_path, spec, line, field, expected):
    from csim.tables.spec import load_spec

    path = tmp_path / "bad.yaml"
    path.write_text(spec)
    with pytest.raises(CsimError) as e:
        load_spec(path)
    msg = str(e.value)
    assert f"{path}:{line}:" in msg and f"`{field}`" in msg and expected in msg


def test_cli_refuses_bad_arguments(tmp_path, capsys):
    from csim.tables.cli import main

    for argv, expected in ((["--scale", "huge"], "not a scale"),
                           (["--table", "nope", "--scale", "smoke"], "Unknown table"),
                           (["--seeds", "42,x", "--scale", "smoke", "--dry-run"], "--seeds"),
                           (["--scale", "smoke", "seed=1"], "--seeds"),
                           (["--scale", "smoke", "--jobs", "0"], "--jobs")):
        with pytest.raises(SystemExit) as e:
            main([*argv, "--results-dir", str(tmp_path)])
        assert e.value.code == 2 and expected in capsys.readouterr().err


def test_make_reproduce_tables_command_line(tmp_path):
    def dry(*args):
        return subprocess.run(["make", "-n", "reproduce-tables", *args], cwd=ROOT, capture_output=True, text=True,
                              env={"PATH": "/usr/bin:/bin", "CSIM_MODELS_DIR": str(tmp_path)}).stdout

    smoke = dry("SCALE=smoke", "SEEDS=42,43", "TABLE=losses")
    assert ".venv/bin/csim tables --scale smoke --seeds 42,43 --jobs 1 --table losses" in smoke
    assert "mlm_pretrain" not in smoke
    cpu = dry("SCALE=cpu")  # no mini encoder under CSIM_MODELS_DIR: it is built first
    assert "+exp=mlm_pretrain" in cpu and cpu.index("+exp=mlm_pretrain") < cpu.index("csim tables --scale cpu")
    assert "--jobs 2" in cpu and "--jobs 3" in dry("SCALE=cpu", "JOBS=3")


def test_portable_hash_ignores_folders_only(tmp_path):
    from omegaconf import OmegaConf, open_dict

    from csim.config import compose_run
    from csim.runs.identity import config_hash
    from csim.tables.runner import portable_hash

    base = ["+exp=simcse_unsup", "scale=cpu"]
    here = compose_run(base)
    elsewhere = compose_run([*base, "paths.data_dir=/mnt/d", "paths.cache_dir=/mnt/c"])
    assert config_hash(here) != config_hash(elsewhere)  # the run directory's hash sees resolved folders...
    before = OmegaConf.to_yaml(here)
    assert portable_hash(here) == portable_hash(elsewhere)  # ...the record's does not
    assert OmegaConf.to_yaml(here) == before  # and computing it leaves the config alone
    assert portable_hash(compose_run([*base, "seed=43"])) != portable_hash(here)
    assert portable_hash(compose_run([*base, "encoder.dropout=0.0"])) != portable_hash(here)
    edited = compose_run(base)  # the scale file gains an entry for another group: applied values are the same
    with open_dict(edited):
        edited.scale.by_choice["some_group"] = {"some_option": {"x": 1}}
    assert portable_hash(edited) == portable_hash(here)
    assert portable_hash(compose_run([*base, "trainer.max_steps=7"])) != portable_hash(here)
    # the mini encoder's content (model_fingerprint) is part of it: another (or no) mini encoder is another row.
    # Built here, so the test does not depend on whether this checkout has models/mini-bert.
    def with_mini(weights: bytes):
        models = tmp_path / f"models{len(list(tmp_path.iterdir()))}"
        (models / "mini-bert").mkdir(parents=True)
        (models / "mini-bert" / "config.json").write_text("{}")
        (models / "mini-bert" / "model.safetensors").write_bytes(weights)
        return portable_hash(compose_run([*base, f"paths.models_dir={models}"]))

    missing = portable_hash(compose_run([*base, "paths.models_dir=/nonexistent"]))
    assert len({missing, with_mini(b"a"), with_mini(b"b")}) == 3
    assert with_mini(b"a") == with_mini(b"a")  # same content elsewhere: same row


def test_model_overrides_reach_the_first_stage_of_two_stage_rows():
    """A row that swaps the model of a two-stage experiment (NLI, then STSb) must swap it in the NLI stage too."""
    from csim.config import compose_run
    from csim.tables.spec import load_specs

    (sbert,) = load_specs(CONF / "tables", ["sbert_table2"])
    checked = 0
    for row in sbert.rows:
        model = [o for o in row.overrides if o.startswith("encoder.model_name=")]
        if model:
            cfg = compose_run([f"+exp={row.exp}", *row.overrides, "scale=paper"])
            if cfg.get("init_from"):
                assert model[0] in list(cfg.init_from), row.label
                checked += 1
    assert checked == 4


def test_threads_override_must_be_a_whole_number(tmp_path, capsys):
    from csim.tables.cli import main

    for bad in ("threads=two", "threads=0", "threads=1.5"):
        with pytest.raises(SystemExit) as e:
            main(["--scale", "smoke", "--jobs", "2", "--results-dir", str(tmp_path), bad])
        assert e.value.code == 2 and "threads" in capsys.readouterr().err
