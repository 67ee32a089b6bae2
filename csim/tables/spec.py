"""Table specs (conf/tables/<name>.yaml): which experiment produces each row of a paper table, and the published value.

    title: "SimCSE Table 1: data augmentations (STS-B dev)"
    source: {paper: "...", table: "Table 1", split: STS-B development set, metric: "Spearman x 100"}
    metric: best_stsb_dev_spearman       # the key of each run's metrics.json that fills the csim column
    order: 1                             # optional: tables run in this order (then by name)
    by_default: true                     # optional: false leaves the table out of a run that names no table
                                         #   (`make reproduce-tables`); TABLE=<name> runs it
    columns:                             # optional; each column adds its overrides to every row
      - {key: shared, label: "fθ", overrides: []}
      - {key: two_encoders, label: "(fθ1, fθ2)", overrides: [module.two_encoders=true]}
    rows:
      - label: "Crop 10%"                # unique within the table
        exp: simcse_crop                 # conf/exp/<exp>.yaml, composed as +exp=<exp>
        overrides: [augment.ratio=0.1]   # Hydra overrides after the experiment (before scale and seed)
        paper: 77.8                      # null where none; with columns, a mapping column key -> value
        paper_sd: null                   # the paper's standard deviation over seeds, same shape as paper
        paper_scale_only: false          # true: listed with its paper value, run only at scale=paper
        notes: null                      # shown under the table
        scale_notes: {cpu: "..."}        # optional: shown under the table at that scale only (what its recipe
                                         #   can and cannot show)
    reference: {row: "Unsup. SimCSE"}    # optional: every other row is compared with this row (same column), or
    # reference: {column: shared}        #   every cell with the same row's cell in this column (Welch's t over seeds)

A bad spec is a CsimError naming the file, line and field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from csim.errors import CsimError

PAPER_SCALE = "paper"  # the scale at which paper_scale_only rows run (the published recipes)


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    overrides: tuple[str, ...]


@dataclass(frozen=True)
class Row:
    label: str
    exp: str
    overrides: tuple[str, ...]
    paper: dict            # column key -> published value or None
    paper_sd: dict         # column key -> published sd or None
    paper_scale_only: bool
    notes: str | None
    scale_notes: tuple[tuple[str, str], ...] = ()   # (scale, note): shown only at that scale

    def notes_at(self, scale: str) -> str | None:
        """The row's notes, then its note for this scale."""
        parts = [self.notes, dict(self.scale_notes).get(scale)]
        return " ".join(p for p in parts if p) or None

    def runs_at(self, scale: str) -> bool:
        return not self.paper_scale_only or scale == PAPER_SCALE


@dataclass(frozen=True)
class TableSpec:
    name: str
    path: Path
    title: str
    source: dict
    metric: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    notes: str | None
    order: int = 100
    by_default: bool = True          # run when no table is named (`csim tables` without --table)
    reference: dict | None = None   # {"row": label} or {"column": key}: what each cell's significance is tested against

    @property
    def multi_column(self) -> bool:
        return len(self.columns) > 1


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "row"


_TOP = {"title", "source", "metric", "columns", "rows", "notes", "order", "by_default", "reference"}
_SOURCE = {"paper", "table", "split", "metric"}
_COLUMN = {"key", "label", "overrides"}
_ROW = {"label", "exp", "overrides", "paper", "paper_sd", "paper_scale_only", "notes", "scale_notes"}


class _Where:
    """Line numbers of the fields of one YAML file, for error messages."""

    def __init__(self, path: Path, text: str):
        self.path = path
        try:
            self.root = yaml.compose(text)
        except yaml.YAMLError:
            self.root = None

    def line(self, *keys) -> int:
        node, line = self.root, 1
        for key in keys:
            if isinstance(node, yaml.MappingNode):
                node = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
                node = node.value[key]
            else:
                node = None
            if node is None:
                break
            line = node.start_mark.line + 1
        return line

    def error(self, keys: tuple, message: str) -> CsimError:
        field = "".join(f"[{k}]" if isinstance(k, int) else (f".{k}" if i else k) for i, k in enumerate(keys))
        return CsimError(f"{self.path}:{self.line(*keys)}: table spec field `{field or '(top level)'}`: {message}")


def _overrides(where: _Where, keys: tuple, value) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and ("=" in v or v.startswith("~")) for v in value):
        raise where.error(keys, f"expected a list of Hydra overrides such as [augment.ratio=0.1, ~loss.temperature], "
                                f"got {value!r}.")
    for v in value:
        if v.split("=", 1)[0].lstrip("+~") in ("scale", "seed", "exp"):
            raise where.error(keys, f"{v!r}: scale, seed and the experiment are set by the runner (--scale, "
                                    f"--seeds, the row's exp); remove it from the overrides.")
    return tuple(value)


def _by_column(where: _Where, keys: tuple, value, columns: tuple[Column, ...]) -> dict:
    col_keys = [c.key for c in columns]

    def number(v, k):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise where.error(k, f"expected a number or null, got {v!r}.")
        return None if v is None else float(v)

    if isinstance(value, dict):
        unknown = set(value) - set(col_keys)
        if unknown or len(columns) == 1:
            raise where.error(keys, f"keys {sorted(map(str, unknown or value))} are not column keys of this table "
                                    f"(columns: {col_keys}); give one number per column key, or a single number "
                                    f"for a one-column table.")
        return {c: number(value.get(c), (*keys, c)) for c in col_keys}
    if len(columns) > 1 and value is not None:
        raise where.error(keys, f"this table has columns {col_keys}: give a mapping such as "
                                f"{{{col_keys[0]}: 67.1, {col_keys[1]}: 68.9}}.")
    return {c: number(value, keys) for c in col_keys}


def load_spec(path: str | Path) -> TableSpec:
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    where = _Where(path, text)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise CsimError(f"{path}: not valid YAML ({str(e).splitlines()[0]}); fix the syntax.") from None
    if not isinstance(raw, dict):
        raise where.error((), "a table spec is a mapping with title, source, metric and rows.")
    for key in sorted(set(raw) - _TOP):
        raise where.error((key,), f"unknown field; a table spec has {sorted(_TOP)}.")
    for key in ("title", "metric", "rows"):
        if not raw.get(key):
            raise where.error((key,), "missing; it is required.")
    if not isinstance(raw.get("order", 100), int) or isinstance(raw.get("order"), bool):
        raise where.error(("order",), "an integer: tables run in increasing order.")
    if not isinstance(raw.get("by_default", True), bool):
        raise where.error(("by_default",), "true or false: false leaves the table out of a run that names no table.")
    if not isinstance(raw["metric"], str):
        raise where.error(("metric",), "the key of metrics.json to read, e.g. best_stsb_dev_spearman.")
    source = raw.get("source") or {}
    if not isinstance(source, dict) or set(source) - _SOURCE:
        raise where.error(("source",), f"a mapping with fields {sorted(_SOURCE)}.")

    columns = []
    for i, c in enumerate(raw.get("columns") or [{"key": "value", "label": "", "overrides": []}]):
        if not isinstance(c, dict) or set(c) - _COLUMN or not isinstance(c.get("key"), str):
            raise where.error(("columns", i), f"a column is a mapping with a string key and fields {sorted(_COLUMN)}.")
        columns.append(Column(c["key"], str(c.get("label") or c["key"]), _overrides(where, ("columns", i, "overrides"),
                                                                                     c.get("overrides"))))
    if len({c.key for c in columns}) != len(columns):
        raise where.error(("columns",), "column keys must be unique.")
    columns = tuple(columns)

    if not isinstance(raw["rows"], list):
        raise where.error(("rows",), "a list of rows.")
    rows, slugs = [], {}
    for i, r in enumerate(raw["rows"]):
        if not isinstance(r, dict):
            raise where.error(("rows", i), "a row is a mapping with at least label and exp.")
        for key in sorted(set(r) - _ROW):
            raise where.error(("rows", i, key), f"unknown field; a row has {sorted(_ROW)}.")
        for key in ("label", "exp"):
            if not isinstance(r.get(key), str) or not r[key].strip():
                raise where.error(("rows", i, key), "missing or not a string; it is required.")
        s = slug(r["label"])
        if s in slugs:
            raise where.error(("rows", i, "label"), f"{r['label']!r} names the same row as {slugs[s]!r} (labels "
                                                    f"must differ in more than punctuation and case).")
        slugs[s] = r["label"]
        if not isinstance(r.get("paper_scale_only", False), bool):
            raise where.error(("rows", i, "paper_scale_only"), "true or false.")
        scale_notes = r.get("scale_notes") or {}
        if not isinstance(scale_notes, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                        for k, v in scale_notes.items()):
            raise where.error(("rows", i, "scale_notes"), "a mapping from a scale name to a note, e.g. "
                                                          "{cpu: \"what the cpu recipe can and cannot show\"}.")
        rows.append(Row(label=r["label"], exp=r["exp"], overrides=_overrides(where, ("rows", i, "overrides"),
                                                                               r.get("overrides")),
                        paper=_by_column(where, ("rows", i, "paper"), r.get("paper"), columns),
                        paper_sd=_by_column(where, ("rows", i, "paper_sd"), r.get("paper_sd"), columns),
                        paper_scale_only=bool(r.get("paper_scale_only", False)),
                        notes=" ".join(str(r["notes"]).split()) if r.get("notes") else None,
                        scale_notes=tuple((k, " ".join(v.split())) for k, v in sorted(scale_notes.items()))))
    return TableSpec(name=path.stem, path=path, title=str(raw["title"]), source=dict(source), metric=raw["metric"],
                     columns=columns, rows=tuple(rows), notes=raw.get("notes"), order=raw.get("order", 100),
                     by_default=raw.get("by_default", True), reference=_reference(where, raw.get("reference"), rows, columns))


def _reference(where: _Where, value, rows: list[Row], columns: tuple[Column, ...]) -> dict | None:
    if value is None:
        return None
    labels, keys = [r.label for r in rows], [c.key for c in columns]
    if isinstance(value, dict) and set(value) == {"row"} and value["row"] in labels:
        return dict(value)
    if isinstance(value, dict) and set(value) == {"column"} and value["column"] in keys and len(keys) > 1:
        return dict(value)
    raise where.error(("reference",), f"{value!r}: give {{row: LABEL}} with one of the row labels {labels}, or "
                                      f"{{column: KEY}} with one of the column keys {keys} (tables with columns).")


def load_specs(tables_dir: str | Path, names: list[str] | None = None) -> list[TableSpec]:
    tables_dir = Path(tables_dir)
    available = sorted(p.stem for p in tables_dir.glob("*.yaml"))
    if not available:
        raise CsimError(f"No table specs (*.yaml) in {tables_dir}; pass --tables-dir with the folder that has them.")
    unknown = [n for n in names or [] if n not in available]
    if unknown:
        raise CsimError(f"Unknown table {', '.join(map(repr, unknown))}: the tables in {tables_dir} are "
                        f"{', '.join(available)}. Use one of them with --table (TABLE= in make).")
    specs = [load_spec(tables_dir / f"{n}.yaml") for n in (names or available)]
    if not names:   # no table named: the tables a plain `make reproduce-tables` regenerates
        specs = [s for s in specs if s.by_default]
    return sorted(specs, key=lambda s: (s.order, s.name))
