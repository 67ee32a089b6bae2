"""What the fetcher downloads through, and how it writes files.

The three download functions (`load_hub`, `hub_revision`, `nltk_download`) are the only places that touch the
network; the builders call them as attributes of this module, so tests replace them with in-memory stand-ins.
"""

from __future__ import annotations

import hashlib
import re
import socket
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from csim.errors import CsimError

_SCRIPT_ERROR = "scripts are no longer supported"


def load_hub(path: str, split: str, data_files: str | None = None, cache_dir: str | None = None):
    """One split of a hub dataset as a `datasets.Dataset`. A repo that still holds a loading script (datasets >= 4
    refuses those) is read from the hub's automatic parquet export instead (branch refs/convert/parquet, config
    folder `default`)."""
    import datasets

    try:
        return datasets.load_dataset(path, data_files=data_files, split=split, cache_dir=cache_dir)
    except RuntimeError as e:
        if _SCRIPT_ERROR not in str(e):
            raise
    return datasets.load_dataset(path, revision="refs/convert/parquet", data_dir="default", split=split,
                                 cache_dir=cache_dir)


def hub_revision(path: str) -> str:
    """The commit the hub serves for a dataset now (for PROVENANCE.md), or 'unknown'."""
    try:
        from huggingface_hub import HfApi

        return HfApi().dataset_info(path, timeout=30).sha or "unknown"
    except Exception:  # noqa: BLE001 - provenance detail only; the data itself was already loaded
        return "unknown"


def nltk_server() -> str:
    """The host NLTK's downloader fetches its index and packages from."""
    from nltk.downloader import Downloader

    return urlparse(Downloader.DEFAULT_URL).hostname or "raw.githubusercontent.com"


def host_reachable(host: str, timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def nltk_download(package: str, download_dir: Path) -> Path:
    """NLTK's downloader -> `<download_dir>/corpora/<package>/`. The index leaves some packages zipped (wordnet):
    NLTK >= 3.10 unpacks them itself when asked (`extract=True`); older versions' archives are unzipped here."""
    import inspect

    import nltk

    download_dir.mkdir(parents=True, exist_ok=True)
    folder = download_dir / "corpora" / package
    extra = {"extract": True} if "extract" in inspect.signature(nltk.download).parameters else {}
    ok = nltk.download(package, download_dir=str(download_dir), quiet=True, raise_on_error=False, **extra)
    zipped = download_dir / "corpora" / f"{package}.zip"
    if not folder.is_dir() and zipped.is_file():
        with zipfile.ZipFile(zipped) as z:
            z.extractall(download_dir / "corpora")
    if not folder.is_dir():
        raise CsimError(f"NLTK's downloader did not deliver the package {package!r} into {download_dir}/corpora "
                        f"(nltk.download returned {ok}). Check that {nltk_server()} is reachable from this machine "
                        f"and rerun; already finished folders are kept.")
    zipped.unlink(missing_ok=True)
    return folder


# --- writing ----------------------------------------------------------------------------------------------------------
_BREAKS = re.compile(r"[\t\r\n]")


def field(text, where: str) -> str:
    """A sentence as one tab-free field of a line (tabs and line breaks become spaces); an empty one is an error."""
    text = _BREAKS.sub(" ", "" if text is None else str(text))
    if not text.strip():
        raise CsimError(f"{where}: the sentence is empty. The hub copy differs from the release this layout expects; "
                        f"report it, or use the offline copy of the data.")
    return text


def scores(ds, column: str) -> list[str]:
    """The column's numbers, each in the shortest text that reads back to the same value in the column's own float
    type (so a float32 3.3 is written '3.3', not '3.299999952316284'); whole numbers without a decimal point."""
    dtype = np.float32 if getattr(ds.features[column], "dtype", "") == "float32" else np.float64
    values = ds.select_columns([column]).with_format("arrow")[:][column].to_numpy().astype(dtype)
    return [np.format_float_positional(v, trim="-") for v in values]


def file_table(folder: Path) -> str:
    """sha256, bytes and lines of every file under `folder` (the table PROVENANCE.md ends with)."""
    rows = []
    for p in sorted(q for q in folder.rglob("*") if q.is_file() and q.name != "PROVENANCE.md"):
        h, size, lines = hashlib.sha256(), 0, 0
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
                size += len(chunk)
                lines += chunk.count(b"\n")
        name = p.relative_to(folder).as_posix()
        rows.append(f"{h.hexdigest()}  ./{name:<60} {size:>10} bytes {lines:>8} lines")
    return "```\n" + "\n".join(rows) + "\n```\n"
