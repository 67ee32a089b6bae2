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
