"""Finding a pretrained model: a local folder, the Hugging Face cache, or the hub when it is reachable.
Offline with none of these, stop before any work with one paragraph saying how to proceed."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from csim.errors import CsimError


def hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def in_hf_cache(name: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:
        return False


def resolve_model(name: str, field: str = "encoder.model_name") -> str:
    """Return `name` if it can be loaded here; otherwise raise the offline message. Sets HF_HUB_OFFLINE when the
    model is only in the cache so transformers does not spend ~25 s failing to reach the hub."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    if in_hf_cache(name):
        if not hub_reachable():
            os.environ["HF_HUB_OFFLINE"] = "1"
        return name
    if Path(name).expanduser().is_absolute() or name.startswith((".", "~")) or not hub_reachable():
        raise CsimError(
            f"Cannot load the model {name!r} ({field}): it is not a local folder, not in the Hugging Face cache, and "
            f"the hub is unreachable from this machine. To proceed, either give a local copy "
            f"({field}=/path/to/{Path(name).name}, a folder with config.json and weights), run on a machine that can "
            f"reach the hub once to fill the cache, or use the offline cpu scale (scale=cpu, which starts from the "
            f"mini encoder that `make mini-encoder` builds)."
        )
    return name
