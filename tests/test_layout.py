"""The floor plan: lower layers never import higher ones, no import cycles, no oversized file, and every conf group's
`_target_` lives in the package that mirrors the group (conf/augment -> csim.augment, ...)."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CSIM = ROOT / "csim"

# lowest first; a module may import its own layer and those below it
LAYERS = [
    ("csim.errors", "csim.hub", "csim.runs", "csim.verbosity"),
    ("csim.data", "csim.losses"),
    ("csim.encoders",),
    ("csim.augment",),  # augment=mlm fills masks with an encoder
    ("csim.modules",),
    ("csim.evaluation",),
    ("csim.config", "csim.validate"),
    ("csim.train",),
    ("csim.tables",),
    ("csim.cli", "csim.__main__"),
]
# the package each conf group's classes and functions must come from
GROUP_PACKAGES = {"augment": "csim.augment.", "encoder": "csim.encoders.", "loss": "csim.losses.",
                  "module": "csim.modules.", "data": "csim.data.", "logger": "pytorch_lightning.loggers."}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    for i, names in enumerate(LAYERS):
        if any(module == n or module.startswith(n + ".") for n in names):
            return i
    raise AssertionError(f"{module} is in no layer of tests/test_layout.py: add it to LAYERS")


def _imports(path: Path, modules) -> set[str]:
    """Every csim module imported anywhere in the file (top level or inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("csim"):
            subs = {f"{node.module}.{a.name}" for a in node.names} & modules  # `from csim.data import sts`
            out.update(subs or {node.module})
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("csim"))
    return out


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in CSIM.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        graph[name] = {m for m in _imports(path, set(files)) if m in files and m != name}
    return graph


def test_no_import_goes_up_a_layer():
    bad = [f"{a} -> {b}" for a, deps in _graph().items() for b in deps if _layer(b) > _layer(a)]
    assert not bad, "lower layers import higher ones:\n" + "\n".join(sorted(bad))


def test_no_import_cycles():
    graph, state, cycles = _graph(), {}, []

    def visit(n, stack):
        state[n] = "open"
        for m in graph[n]:
            if state.get(m) == "open":
                cycles.append(" -> ".join(stack[stack.index(m):] + [m]))
            elif m not in state:
                visit(m, stack + [m])
        state[n] = "done"

    for n in graph:
        if n not in state:
            visit(n, [n])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_source_file_over_400_lines():
    long = [f"{p.relative_to(ROOT)}: {n}" for p in [*CSIM.rglob("*.py"), *(ROOT / "scripts").rglob("*.py"),
                                                    *(ROOT / "tests").rglob("*.py")]
            if (n := len(p.read_text().splitlines())) > 400]
    assert not long, long


def _targets(node, where):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "_target_":
                yield where, v
            else:
                yield from _targets(v, where)
    elif isinstance(node, list):
        for v in node:
            yield from _targets(v, where)


def test_every_conf_target_lives_in_its_groups_package():
    import importlib

    seen = 0
    for group, prefix in GROUP_PACKAGES.items():
        for f in sorted((ROOT / "conf" / group).glob("*.yaml")):
            for where, target in _targets(yaml.safe_load(f.read_text()) or {}, f):
                seen += 1
                assert target.startswith(prefix), f"{where.relative_to(ROOT)}: {target} is not in {prefix}*"
                module, _, attr = target.rpartition(".")
                assert hasattr(importlib.import_module(module), attr), f"{where}: {target} does not exist"
    # experiments may swap a group's class: the same rule by the key they set it under
    for f in sorted((ROOT / "conf" / "exp").glob("*.yaml")):
        doc = yaml.safe_load(f.read_text()) or {}
        for group, prefix in GROUP_PACKAGES.items():
            for where, target in _targets(doc.get(group, {}), f):
                seen += 1
                assert target.startswith(prefix), f"{where.relative_to(ROOT)} ({group}): {target} is not in {prefix}*"
    assert seen > 25
