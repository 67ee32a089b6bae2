"""Process lifetime: a process started for csim (a table worker, a data-parallel rank) does not outlive its parent."""

from __future__ import annotations

import sys


def die_with_parent() -> None:
    """Linux: this process gets SIGKILL when the process that started it dies (killed or not), so no worker keeps
    training after `csim tables` is gone and no rank waits forever for a rank 0 that died. Elsewhere a no-op."""
    if sys.platform != "linux":
        return
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        return
