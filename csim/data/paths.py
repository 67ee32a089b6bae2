"""The data directory: resolving a file of the layout of ../shared/data, with a clear error when it is missing."""

from __future__ import annotations

import os
from pathlib import Path

from csim.errors import CsimError


def data_path(cfg_or_dir, rel: str, what: str = "data file") -> Path:
    """Resolve `rel` inside the data directory; a missing file is a clear error naming how to get it."""
    data_dir = Path(cfg_or_dir.paths.data_dir if hasattr(cfg_or_dir, "paths") else cfg_or_dir)
    p = Path(rel) if os.path.isabs(rel) else data_dir / rel
    if not p.exists():
        raise CsimError(
            f"Missing {what}: {p} does not exist. csim reads its data from the data directory "
            f"(paths.data_dir = {data_dir}, overridable with the CSIM_DATA_DIR environment variable). "
            f"Fix it by linking the offline copy (`make data`, which links ../shared/data to ./data), by downloading "
            f"the same layout with `python scripts/fetch_data.py --out data`, or by setting CSIM_DATA_DIR to a folder "
            f"that has {rel}."
        )
    return p


def check_text_file(path: str | Path, what: str = "data file") -> None:
    """Raise a CsimError naming `path`:line when the file is empty (0 bytes) or not UTF-8; return otherwise."""
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise CsimError(f"The {what} {path} is empty (0 bytes). Point the configuration at a file with one entry "
                        f"per line, or restore the file from the data layout (`make data`).")
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise CsimError(f"{path}:{lineno}: not valid UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1} "
                                f"of the line); csim reads text files as UTF-8. Re-encode the file (e.g. `iconv -f "
                                f"latin1 -t utf-8`) or remove the line.") from None
