"""One writer per run directory (and per `csim tables` results folder): `RunLock`, held for the run's whole life.

The lock is `fcntl.flock` on a file beside the directory (`<dir>.lock`, so that `resume=false` may delete the
directory while holding it). flock rather than an O_EXCL file plus a pid check because the kernel drops the lock when
its holder dies, however it dies (SIGKILL, OOM, power cut of the process): a crashed run never leaves a lock that the
next one must judge stale by guessing whether a pid is still the same program, and a pid reused by an unrelated
process cannot keep a directory locked. The file's text (pid, host, start time) is only there to name the holder in
the refusal. No library in the dependencies offers this (filelock would, but adds a package for 40 lines).

Under DDP only the process that owns the run directory (global rank 0) enters the lock: `RunLock(path,
enabled=False)` is a no-op for the other ranks.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import time
from pathlib import Path

from csim.errors import CsimError


class RunLock:
    """`with RunLock(run_dir):` refuses (CsimError naming the holder) when another process holds `run_dir`, and on
    entry removes the temporary files a killed writer left in it (they can only be a dead writer's: we are the only
    writer now)."""

    def __init__(self, directory: str | Path, enabled: bool = True, what: str = "run directory"):
        self.directory, self.enabled, self.what = Path(directory), enabled, what
        self.path = self.directory.with_name(self.directory.name + ".lock")
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        if not self.enabled:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read(fd)
                os.close(fd)
                raise CsimError(
                    f"The {self.what} {self.directory} is in use by another csim process ({_describe(holder)}); two "
                    f"writers would overwrite each other's checkpoints and outputs. Wait for it to finish (or stop "
                    f"it), or give this run other outputs (e.g. paths.output_root=...). A lock whose holder has died "
                    f"is released by the operating system, so this one is live.") from None
            # the previous holder may have unlinked the file between our open and our flock: lock the file that is
            # at the path now, not an orphaned inode
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                  "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode(), 0)
        self._fd = fd
        remove_partial_files(self.directory)
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)  # while still held: a waiter re-checks the inode (above)
        os.close(self._fd)
        self._fd = None


def _read(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (ValueError, OSError):
        return {}


def _describe(holder: dict) -> str:
    if not holder:
        return "holder not yet recorded"
    return f"pid {holder.get('pid')} on host {holder.get('host')}, started {holder.get('started')}"


# the temporary names csim's atomic writers use: mkstemp's ".<name>.XXXX.tmp", ".<name>.tmp<pid>" (checkpoints) and
# "<name>.tmp<pid>" (folders)
def _is_partial(name: str) -> bool:
    stem, dot, tail = name.rpartition(".tmp")
    return bool(dot) and bool(stem) and (tail == "" or tail.isdigit())


def remove_partial_files(directory: Path) -> list[Path]:
    """Delete what killed writers left half-written under `directory` (temporary files and folders); returns them."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.rglob("*") if _is_partial(p.name)]
    for p in found:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return found
