"""What the tables say beyond the means: the reference cell and Welch's t-test, the 7-task average, where the runs'
time went, the precision a cpu run trains in, and the scale's default seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scipy.stats import ttest_ind

from conftest import CONF
from csim.errors import CsimError


def _spec(tmp_path, text: str):
    from csim.tables.spec import load_spec

    path = tmp_path / "t.yaml"
    path.write_text(text)
    return load_spec(path)


ROWS = "rows:\n  - {label: base, exp: e}\n  - {label: other, exp: e}\n"


def test_reference_row_and_welch_test_in_the_report(tmp_path):
    from csim.tables.report import CellResult, comparisons, write_table

    spec = _spec(tmp_path, "title: t\nmetric: m\nreference: {row: base}\n" + ROWS)
    base = CellResult("base", None, None, None, values=[60.0, 60.5, 59.5], column_key="value",
                      avg7=[50.0, 51.0, 52.0], timing={"train": 10.0, "dev_eval": 2.0})
    far = CellResult("other", None, None, None, values=[65.0, 65.4, 64.6], column_key="value",
                     timing={"train": 11.0})
    cmp = comparisons(spec, [base, far])
    assert id(base) not in cmp  # the reference is not compared with itself
    d, p = cmp[id(far)]
    assert d == pytest.approx(5.0) and p == pytest.approx(ttest_ind(far.values, base.values, equal_var=False).pvalue)
    md, csv_path, png = write_table(spec, [base, far], tmp_path / "out", scale="smoke", seeds=[42, 43, 44],
                                    setup={"encoder": "x", "data": "y", "steps": "1", "precision": "bf16-mixed"},
                                    invocation_seconds=1.0)
    text = md.read_text()
    assert "| precision | bf16-mixed |" in text and "Welch's t-test" in text
    assert "| reference |" in text and f"+5.00 (p={p:.3f}, significant)" in text
    assert "51.00 ± 1.00" in text  # the 7-task average column
    assert "train 21" in text and "dev_eval 2" in text  # phases summed over the cells
    assert png.stat().st_size > 0 and "welch_p" in csv_path.read_text().splitlines()[0]


def test_reference_column_compares_within_the_row(tmp_path):
    from csim.tables.report import CellResult, comparisons

    spec = _spec(tmp_path, "title: t\nmetric: m\nreference: {column: a}\ncolumns:\n  - {key: a}\n  - {key: b}\n"
                           "rows:\n  - {label: r1, exp: e}\n  - {label: r2, exp: e}\n")
    cells = [CellResult(r, c, None, None, values=v, column_key=c)
             for r, c, v in (("r1", "a", [1.0, 2.0]), ("r1", "b", [3.0, 4.0]), ("r2", "a", [10.0, 11.0]),
                             ("r2", "b", [10.0, 11.0]))]
    cmp = comparisons(spec, cells)
    assert set(cmp) == {id(cells[1]), id(cells[3])}
    assert cmp[id(cells[1])][0] == pytest.approx(2.0) and cmp[id(cells[3])][0] == pytest.approx(0.0)


def test_welch_is_undefined_without_spread_or_seeds():
    from csim.tables.report import welch

    assert welch([1.0], [2.0, 3.0]) is None
    assert welch([1.0, 1.0], [2.0, 2.0]) is None  # no variance on either side (e.g. average GloVe, untrained)
    assert welch([1.0, 1.0], [2.0, 3.0]) is not None


@pytest.mark.parametrize("ref,expected", [("{row: nope}", "row labels"), ("{column: x}", "column keys"),
                                          ("[base]", "give {row: LABEL}")])
def test_bad_reference_names_the_field(tmp_path, ref, expected):
    with pytest.raises(CsimError, match=expected) as e:
        _spec(tmp_path, f"title: t\nmetric: m\nreference: {ref}\n" + ROWS)
    assert "`reference`" in str(e.value)


def test_shipped_tables_name_their_reference():
    from csim.tables.spec import load_specs

    refs = {s.name: s.reference for s in load_specs(CONF / "tables")}
    assert refs["simcse_table1"] == {"row": "None (unsup SimCSE)"}
    assert refs["simcse_table2"] == {"column": "shared"}
    assert refs["sbert_table2"] == {"row": "Avg. GloVe embeddings"}


def test_cpu_precision_is_measured_and_explicit(monkeypatch):
    from csim.runs import hardware

    monkeypatch.setattr(hardware, "bf16_gemm_speedup", lambda: 10.0)   # an AMX Xeon
    assert hardware.cpu_precision("auto") == "bf16-mixed"
    monkeypatch.setattr(hardware, "bf16_gemm_speedup", lambda: 0.05)   # a CPU without bf16 units
    assert hardware.cpu_precision("auto") == "32-true"
    assert hardware.cpu_precision("32-true") == "32-true"
    with pytest.raises(CsimError, match="choose one of"):
        hardware.cpu_precision("fp8")


def test_cpu_scale_resolves_precision_into_the_identity(tmp_path):
    from conftest import compose
    from csim.runs.identity import identity

    cfg = compose(["+exp=simcse_unsup", "scale=cpu", f"paths.models_dir={tmp_path}"])
    assert identity(cfg)["trainer"]["precision"] in ("32-true", "bf16-mixed")  # never "auto"
    assert list(cfg.eval.test_tasks) == ["sts12", "sts13", "sts14", "sts15", "sts16", "stsb_test", "sickr_test"]
    forced = compose(["+exp=simcse_unsup", "scale=cpu", f"paths.models_dir={tmp_path}", "trainer.precision=32-true"])
    assert forced.trainer.precision == "32-true"  # the command line wins over the scale


def test_run_records_timing_and_the_seven_task_average(run_smoke):
    from csim.runs.timing import PHASES

    m = run_smoke(["+exp=simcse_unsup", "eval.test_tasks=[sts12,sts13,sts14,sts15,sts16,stsb_test,sickr_test]",
                   "eval.max_pairs=40", "trainer.max_steps=4", "eval.every_n_steps=2"])
    assert set(m["timing"]) <= set(PHASES) and {"build", "data", "dev_eval", "train", "test", "export"} <= set(m["timing"])
    assert sum(v for k, v in m["timing"].items() if k != "startup") <= m["wall_seconds"] + 0.5
    tasks = [m[f"{t}_spearman"] for t in ("sts12", "sts13", "sts14", "sts15", "sts16", "stsb_test", "sickr_test")]
    assert m["sts7_senteval_avg"] == pytest.approx(sum(tasks) / 7)
    assert json.loads((Path(m["run_dir"]) / "metrics.json").read_text())["timing"] == m["timing"]


def test_tables_default_to_the_scales_seeds():
    from csim.tables.cli import _scale_seeds

    assert _scale_seeds("cpu") == "42,43,44" and _scale_seeds("smoke") == "42" and _scale_seeds("paper") == "42"
