"""Run outputs: atomic writes (temporary name + rename, so no reader sees a truncated file) and provenance."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable


@contextlib.contextmanager
def _atomic_file(path: str | Path):
    """An open text file at a temporary name beside `path`, renamed over `path` only when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp creates 0600; results and data files are for everyone to read
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    with _atomic_file(path) as f:
        f.write(text)


def write_lines_atomic(path: str | Path, lines: Iterable[str]) -> int:
    """Stream lines (without their newline) to `path` atomically; returns how many were written."""
    n = 0
    with _atomic_file(path) as f:
        for line in lines:
            f.write(line)
            f.write("\n")
            n += 1
    return n


def write_json_atomic(path: str | Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_metrics(run_dir: str | Path) -> dict | None:
    """A run directory without a complete metrics.json is unfinished."""
    p = Path(run_dir) / "metrics.json"
    if not p.exists():
        return None
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, OSError):
        return None


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the code this process runs: read once, at the first call (a process that runs many cells, like
    `csim tables`, keeps the code it imported even when HEAD moves meanwhile). "-dirty" when tracked files other than
    results/ (which the runs themselves write) differ from it."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)",
                                ":(top,exclude)results"], cwd=here, capture_output=True, text=True,
                               timeout=10).stdout.strip()
        return (sha or "unknown") + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@contextlib.contextmanager
def atomic_dir(directory: str | Path):
    """Build a folder under a temporary name and rename it into place only when the block succeeds: a reader never
    sees a half-written model folder, and a failure leaves the previous one as it was."""
    directory = Path(directory)
    tmp = directory.with_name(f"{directory.name}.tmp{os.getpid()}")  # per process: two writers never share it
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(directory, ignore_errors=True)
    os.replace(tmp, directory)


def copy_tree_atomic(src: str | Path, dst: str | Path) -> None:
    dst = Path(dst)
    tmp = dst.with_name(f"{dst.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    old = dst.with_name(f"{dst.name}.old{os.getpid()}")
    if dst.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)
    os.replace(tmp, dst)
    shutil.rmtree(old, ignore_errors=True)


def shown_dir(path: str | None) -> str | None:
    """A run directory as tables and records show it: relative to the working directory when it is under it
    (outputs/runs/<name>-<hash>), so committed records name the project's folders, not this machine's."""
    if not path:
        return path
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel
